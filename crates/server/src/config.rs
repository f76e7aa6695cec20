//! Server configuration: the validated [`ServerConfig`] that
//! [`Server::bind`](crate::Server::bind) takes, the [`Limits`] that
//! protect it, and the TOML file they can come from.
//!
//! Every setting has a default, a key in the optional config file, a command
//! line flag and (for the limits) a `TLSCHAT_*` environment variable. The
//! binary merges them with the precedence flag > env > file > default: clap
//! already folds env into the flag, so [`Settings::merge`] only has to put
//! the command line over the file, and [`Settings::resolve`] fills in the
//! defaults. For every limit, `0` switches it off.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use tlschat_protocol::DEFAULT_PORT;

/// The config file's name inside the data directory.
pub const CONFIG_FILE: &str = "tlschat.toml";

/// Where the server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// `<data-dir>/certs/{cert,key}.pem`, generated on first run with these
    /// extra subject alternative names.
    Generated { extra_sans: Vec<String> },
    /// Existing PEM files (e.g. from Let's Encrypt).
    Files { cert: PathBuf, key: PathBuf },
}

/// The abuse limits, all reloadable with SIGHUP. `0` switches a limit off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Connected clients at once (handshaking ones included).
    pub max_clients: usize,
    /// Connections at once from one address.
    pub max_per_address: usize,
    /// Lines per second a client may send (token bucket rate).
    pub rate_limit: u32,
    /// Lines a client may send in a burst (token bucket size).
    pub rate_burst: u32,
    /// Lines per second from all connections of one address together
    /// (bursts of twice that).
    pub address_rate_limit: u32,
    /// Unfinished handshakes at once; past that the address holding the
    /// most loses its oldest.
    pub max_handshakes: usize,
    /// Seconds from TCP accept to finish TLS, nickname and password.
    #[serde(with = "seconds")]
    pub handshake_timeout: Duration,
    /// Seconds a logged-in client may stay silent.
    #[serde(with = "seconds")]
    pub idle_timeout: Duration,
    /// Bytes a client's outgoing queue may hold before it is dropped as
    /// not reading.
    pub outbound_queue: usize,
    /// Wrong passwords from one address before it is locked out.
    pub lockout_after: u32,
    /// Seconds of the first lockout; each further one doubles (up to a day).
    #[serde(with = "seconds")]
    pub lockout_time: Duration,
    /// IPv6 addresses sharing this many leading bits count as one address
    /// for every per-address limit (1..=128; not a limit, never off).
    pub ipv6_prefix_len: u8,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_clients: 4096,
            max_per_address: 16,
            rate_limit: 10,
            rate_burst: 20,
            address_rate_limit: 30,
            max_handshakes: 1024,
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: Duration::ZERO,
            outbound_queue: 256 * 1024,
            lockout_after: 5,
            lockout_time: Duration::from_secs(60),
            ipv6_prefix_len: 64,
        }
    }
}

/// `Option` of every limit: what one source (file, command line) sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub max_clients: Option<usize>,
    pub max_per_address: Option<usize>,
    pub rate_limit: Option<u32>,
    pub rate_burst: Option<u32>,
    pub address_rate_limit: Option<u32>,
    pub max_handshakes: Option<usize>,
    pub handshake_timeout: Option<u64>,
    pub idle_timeout: Option<u64>,
    pub outbound_queue: Option<usize>,
    pub lockout_after: Option<u32>,
    pub lockout_time: Option<u64>,
    pub ipv6_prefix_len: Option<u8>,
}

/// What one source sets of everything configurable; the config file's
/// schema. Unknown keys are an error that names the key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub listen: Option<SocketAddr>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub san: Option<Vec<String>>,
    pub admin_password_file: Option<PathBuf>,
    #[serde(default)]
    pub limits: LimitSettings,
}

/// Why a configuration is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Settings {
    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Settings::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Settings, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// `self` (the command line) over `lower` (the file).
    pub fn merge(self, lower: Settings) -> Settings {
        let l = self.limits;
        let f = lower.limits;
        Settings {
            listen: self.listen.or(lower.listen),
            cert: self.cert.or(lower.cert),
            key: self.key.or(lower.key),
            san: self.san.filter(|s| !s.is_empty()).or(lower.san),
            admin_password_file: self.admin_password_file.or(lower.admin_password_file),
            limits: LimitSettings {
                max_clients: l.max_clients.or(f.max_clients),
                max_per_address: l.max_per_address.or(f.max_per_address),
                rate_limit: l.rate_limit.or(f.rate_limit),
                rate_burst: l.rate_burst.or(f.rate_burst),
                address_rate_limit: l.address_rate_limit.or(f.address_rate_limit),
                max_handshakes: l.max_handshakes.or(f.max_handshakes),
                handshake_timeout: l.handshake_timeout.or(f.handshake_timeout),
                idle_timeout: l.idle_timeout.or(f.idle_timeout),
                outbound_queue: l.outbound_queue.or(f.outbound_queue),
                lockout_after: l.lockout_after.or(f.lockout_after),
                lockout_time: l.lockout_time.or(f.lockout_time),
                ipv6_prefix_len: l.ipv6_prefix_len.or(f.ipv6_prefix_len),
            },
        }
    }

    /// Fills in the defaults and checks what belongs together.
    pub fn resolve(self) -> Result<Effective, ConfigError> {
        let cert = match (self.cert, self.key) {
            (Some(cert), Some(key)) => {
                if self.san.as_ref().is_some_and(|s| !s.is_empty()) {
                    return Err(ConfigError::Invalid(
                        "`san` only applies to a generated certificate; drop it or drop `cert`/`key`".into(),
                    ));
                }
                CertSource::Files { cert, key }
            }
            (None, None) => CertSource::Generated {
                extra_sans: self.san.unwrap_or_default(),
            },
            (Some(_), None) => {
                return Err(ConfigError::Invalid(
                    "`cert` is set but `key` is not: give both".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid(
                    "`key` is set but `cert` is not: give both".into(),
                ))
            }
        };
        let d = Limits::default();
        let l = self.limits;
        let secs = Duration::from_secs;
        Ok(Effective {
            listen: self
                .listen
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))),
            cert,
            admin_password_file: self.admin_password_file,
            limits: Limits {
                max_clients: l.max_clients.unwrap_or(d.max_clients),
                max_per_address: l.max_per_address.unwrap_or(d.max_per_address),
                rate_limit: l.rate_limit.unwrap_or(d.rate_limit),
                rate_burst: l.rate_burst.unwrap_or(d.rate_burst),
                address_rate_limit: l.address_rate_limit.unwrap_or(d.address_rate_limit),
                max_handshakes: l.max_handshakes.unwrap_or(d.max_handshakes),
                handshake_timeout: l.handshake_timeout.map_or(d.handshake_timeout, secs),
                idle_timeout: l.idle_timeout.map_or(d.idle_timeout, secs),
                outbound_queue: l.outbound_queue.unwrap_or(d.outbound_queue),
                lockout_after: l.lockout_after.unwrap_or(d.lockout_after),
                lockout_time: l.lockout_time.map_or(d.lockout_time, secs),
                ipv6_prefix_len: check_prefix_len(l.ipv6_prefix_len.unwrap_or(d.ipv6_prefix_len))?,
            },
        })
    }
}

/// `ipv6_prefix_len` must name a prefix: 1 to 128 bits.
fn check_prefix_len(len: u8) -> Result<u8, ConfigError> {
    if (1..=128).contains(&len) {
        Ok(len)
    } else {
        Err(ConfigError::Invalid(format!(
            "`ipv6_prefix_len` is {len}; it must be from 1 to 128 (64 groups each /64 as one address)"
        )))
    }
}

/// Settings with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub listen: SocketAddr,
    pub cert: CertSource,
    pub admin_password_file: Option<PathBuf>,
    pub limits: Limits,
}

impl Effective {
    /// The effective configuration as a config file (for `check-config`).
    pub fn to_toml(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            listen: SocketAddr,
            #[serde(skip_serializing_if = "Option::is_none")]
            cert: Option<&'a Path>,
            #[serde(skip_serializing_if = "Option::is_none")]
            key: Option<&'a Path>,
            #[serde(skip_serializing_if = "Option::is_none")]
            san: Option<&'a [String]>,
            #[serde(skip_serializing_if = "Option::is_none")]
            admin_password_file: Option<&'a Path>,
            limits: &'a Limits,
        }
        let (cert, key, san) = match &self.cert {
            CertSource::Files { cert, key } => (Some(cert.as_path()), Some(key.as_path()), None),
            CertSource::Generated { extra_sans } => (None, None, Some(extra_sans.as_slice())),
        };
        let out = Out {
            listen: self.listen,
            cert,
            key,
            san,
            admin_password_file: self.admin_password_file.as_deref(),
            limits: &self.limits,
        };
        // Plain data with string keys: serialization cannot fail.
        toml::to_string(&out).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// Durations as whole seconds in the file.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// What [`Server::bind`](crate::Server::bind) needs. Its `Debug`
/// output leaves the password out.
#[derive(Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub cert: CertSource,
    /// Replaces the stored admin password when set.
    pub admin_password: Option<String>,
    pub limits: Limits,
}

/// Stands for a password in `Debug` output: whether one is set, never what.
fn redacted(password: &Option<String>) -> Option<&'static str> {
    password.as_ref().map(|_| "<redacted>")
}

impl std::fmt::Debug for ServerConfig {
    // Hand-written: a derived one would print the admin password into any
    // log or panic message that shows the configuration.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ServerConfig {
            listen,
            data_dir,
            cert,
            admin_password,
            limits,
        } = self;
        f.debug_struct("ServerConfig")
            .field("listen", listen)
            .field("data_dir", data_dir)
            .field("cert", cert)
            .field("admin_password", &redacted(admin_password))
            .field("limits", limits)
            .finish()
    }
}

impl ServerConfig {
    /// Defaults for everything but the data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            data_dir: data_dir.into(),
            cert: CertSource::Generated {
                extra_sans: Vec::new(),
            },
            admin_password: None,
            limits: Limits::default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_admin_password() {
        let mut config = ServerConfig::new("/tmp/data");
        let password = "s3cr3t-пароль-密码-🔑";
        config.admin_password = Some(password.to_owned());
        for shown in [format!("{config:?}"), format!("{config:#?}")] {
            assert!(!shown.contains(password), "{shown}");
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("admin_password"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(shown.contains("/tmp/data"), "{shown}");
        }
        config.admin_password = None;
        assert!(format!("{config:?}").contains("admin_password: None"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Settings::parse("listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap_err();
        assert!(e.contains("listen_port"), "{e}");
        let e = Settings::parse("[limits]\nmax_client = 3\n").unwrap_err();
        assert!(e.contains("max_client"), "{e}");
    }

    #[test]
    fn command_line_over_file_over_default() {
        let file = Settings::parse(
            "listen = \"127.0.0.1:7000\"\n[limits]\nrate_limit = 5\nrate_burst = 9\nidle_timeout = 300\n",
        )
        .unwrap();
        let mut cli = Settings::default();
        cli.limits.rate_limit = Some(0);
        let eff = cli.merge(file).resolve().unwrap();
        assert_eq!(eff.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(
            eff.limits.rate_limit, 0,
            "the command line wins, and 0 is a value"
        );
        assert_eq!(
            eff.limits.rate_burst, 9,
            "the file fills what the command line leaves"
        );
        assert_eq!(eff.limits.idle_timeout, Duration::from_secs(300));
        assert_eq!(eff.limits.max_clients, 4096, "defaults fill the rest");
    }

    #[test]
    fn cert_and_key_go_together() {
        let mut s = Settings {
            cert: Some("c.pem".into()),
            ..Settings::default()
        };
        assert!(s.clone().resolve().is_err());
        s.key = Some("k.pem".into());
        assert!(matches!(
            s.clone().resolve().unwrap().cert,
            CertSource::Files { .. }
        ));
        s.san = Some(vec!["x".into()]);
        assert!(s.resolve().is_err());
    }

    #[test]
    fn effective_config_round_trips_through_its_toml() {
        let mut s = Settings {
            san: Some(vec!["chat.example.org".into()]),
            ..Settings::default()
        };
        s.limits.max_per_address = Some(3);
        let eff = s.resolve().unwrap();
        let text = eff.to_toml();
        let again = Settings::parse(&text).unwrap().resolve().unwrap();
        assert_eq!(again, eff, "{text}");
    }
}
