//! Validated server configuration: what [`Server::bind`](crate::server::Server::bind)
//! needs, built by the binary from its command line (or by tests directly).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::protocol::DEFAULT_PORT;

/// Where the server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// `<data-dir>/certs/{cert,key}.pem`, generated on first run with these
    /// extra subject alternative names.
    Generated { extra_sans: Vec<String> },
    /// Existing PEM files (e.g. from Let's Encrypt).
    Files { cert: PathBuf, key: PathBuf },
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub cert: CertSource,
    /// Replaces the stored admin password when set.
    pub admin_password: Option<String>,
    /// One deadline from TCP accept for TLS, nickname and password.
    pub handshake_timeout: Duration,
    /// Bytes a client's outgoing queue holds before the client is dropped
    /// as not reading.
    pub outbound_queue_bytes: usize,
    /// Logged-in and handshaking clients at once; `0` = no limit.
    pub max_clients: usize,
}

impl ServerConfig {
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_OUTBOUND_QUEUE_BYTES: usize = 256 * 1024;
    pub const DEFAULT_MAX_CLIENTS: usize = 4096;

    /// Defaults for everything but the data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            data_dir: data_dir.into(),
            cert: CertSource::Generated {
                extra_sans: Vec::new(),
            },
            admin_password: None,
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
            outbound_queue_bytes: Self::DEFAULT_OUTBOUND_QUEUE_BYTES,
            max_clients: Self::DEFAULT_MAX_CLIENTS,
        }
    }

    pub fn certs_dir(&self) -> PathBuf {
        certs_dir(&self.data_dir)
    }
}

/// The files a data directory holds.
pub fn certs_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("certs")
}
pub fn bans_file(data_dir: &Path) -> PathBuf {
    data_dir.join("bans.txt")
}
pub fn accounts_file(data_dir: &Path) -> PathBuf {
    data_dir.join("accounts.txt")
}

/// The platform's data directory for tlschat (`~/.local/share/tlschat`,
/// `~/Library/Application Support/tlschat`, `%APPDATA%\tlschat\data`).
pub fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "tlschat").map(|d| d.data_dir().to_path_buf())
}
