//! What the window remembers between runs: the nickname and the last few
//! servers, as TOML (`gui.toml`) in the platform config directory, next
//! to the known_hosts file the terminal client and the GUI share. The
//! password is never stored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tlschat_client_core::trust::KnownHosts;
use tlschat_fs::{write_atomic, Mode};

/// How many recent servers are kept.
pub const RECENT: usize = 5;

/// The file names the GUI uses.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `gui.toml`; `None` if the platform has no config directory.
    pub settings: Option<PathBuf>,
    /// The shared known_hosts file.
    pub known_hosts: Option<PathBuf>,
}

impl Paths {
    /// The platform's config directory (`~/.config/tlschat/` on Linux).
    pub fn platform() -> Paths {
        let known_hosts = KnownHosts::default_path();
        let settings = known_hosts
            .as_deref()
            .and_then(Path::parent)
            .map(|dir| dir.join("gui.toml"));
        Paths {
            settings,
            known_hosts,
        }
    }

    /// Both files in `dir` (tests).
    pub fn in_dir(dir: &Path) -> Paths {
        Paths {
            settings: Some(dir.join("gui.toml")),
            known_hosts: Some(dir.join("known_hosts")),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(default)]
    pub nickname: String,
    /// Newest first, at most [`RECENT`].
    #[serde(default)]
    pub recent_servers: Vec<String>,
}

impl Settings {
    /// A missing or unreadable file gives the defaults: settings are a
    /// convenience, never a reason not to start.
    pub fn load(path: Option<&Path>) -> Settings {
        path.and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| toml::from_str(&text).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = toml::to_string(self).map_err(std::io::Error::other)?;
        write_atomic(path, text.as_bytes(), Mode::Private)
    }

    /// A connection was made: `server` goes to the front of the list.
    pub fn remember(&mut self, server: &str, nickname: &str) {
        nickname.clone_into(&mut self.nickname);
        self.recent_servers.retain(|s| s != server);
        self.recent_servers.insert(0, server.to_owned());
        self.recent_servers.truncate(RECENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_servers_are_newest_first_and_bounded() {
        let mut s = Settings::default();
        for i in 0..8 {
            s.remember(&format!("h{i}:1"), "ålice");
        }
        s.remember("h5:1", "bob");
        assert_eq!(s.recent_servers, ["h5:1", "h7:1", "h6:1", "h4:1", "h3:1"]);
        assert_eq!(s.nickname, "bob");
    }

    #[test]
    fn settings_round_trip_and_survive_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("gui.toml");
        assert_eq!(Settings::load(Some(&path)), Settings::default());
        let mut s = Settings::default();
        s.remember("чат.example:7000", "bob");
        s.save(&path).unwrap();
        assert_eq!(Settings::load(Some(&path)), s);
        std::fs::write(&path, "nickname = [").unwrap();
        assert_eq!(Settings::load(Some(&path)), Settings::default());
    }
}
