//! Server configuration: every setting defined once, the merge of its
//! sources into the [`ServerConfig`] that [`Server::bind`](crate::Server::bind)
//! takes, and what a SIGHUP reload re-reads.
//!
//! ```text
//! flags + TLSCHAT_* (clap, into Settings) ─┐
//! tlschat.toml (serde, into Settings) ──────┴→ Settings::merge → Merged ─→ server_config() → ServerConfig
//!                                                                  ├→ effective.to_toml() (check-config)
//!                                                                  └→ reload() (SIGHUP) → Reload
//! ```
//!
//! [`Settings`] is at once the command line (clap, with each flag's
//! `TLSCHAT_*` variable) and the config file's schema (serde): one field per
//! setting, named as its flag and its key. The limits are written once in
//! the `limits!` table below, which makes [`Limits`] (the resolved values
//! with their defaults) and [`LimitSettings`] (flag, variable, key and help)
//! from the same line.
//!
//! Precedence is flag > env > file > default: clap already folds each
//! variable into its flag, [`Settings::merge`] puts the command line over
//! the file and fills in the defaults. The admin password follows the same
//! order across its three forms (`--admin-password-file`,
//! `TLSCHAT_ADMIN_PASSWORD`, the `admin_password_file` key); see
//! [`Merged::server_config`]. The join password is the file (flag or key)
//! over `TLSCHAT_JOIN_PASSWORD`, since the file is what a reload reads
//! again. For every limit, `0` switches it off.
//!
//! The reload policy ([`Merged::reload`]): a SIGHUP re-reads the config file
//! and merges it with the command line of the start, which cannot change.
//! The limits and the access settings (join password file, private,
//! public name, registration) are applied, and so is history's retention
//! (`history_lines`, `history_days`); `listen`, `cert`, `key`, `san` and
//! `history` itself wait for a restart (a reload that finds them changed
//! says so), as do the data directory and the admin password.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::certs::{self, CertError, CertPaths};
use crate::clock::{Clock, SystemClock};
use crate::history::HistoryGate;
use crate::store::Registration;
use tlschat_fs::{read_password_file, PasswordFileError};
use tlschat_protocol::HostPort;
use tlschat_protocol::DEFAULT_PORT;

/// The config file's name inside the data directory.
pub(crate) const CONFIG_FILE: &str = "tlschat.toml";

/// The variable that holds the admin password itself (there is no flag:
/// a password on a command line is visible to every user of the machine).
pub(crate) const ADMIN_PASSWORD_ENV: &str = "TLSCHAT_ADMIN_PASSWORD";
/// How often the server drops what has expired.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// The join password itself, for a deployment that keeps secrets in the
/// environment.
pub(crate) const JOIN_PASSWORD_ENV: &str = "TLSCHAT_JOIN_PASSWORD";

/// Where the server listens unless told otherwise.
pub(crate) const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, DEFAULT_PORT));

/// The prefix lengths `ipv6_prefix_len` may name.
const IPV6_PREFIX_LENS: RangeInclusive<u8> = 1..=128;

/// Kept lines per room unless told otherwise, and the bounds of
/// `history_lines` (history itself is switched off with `history = false`).
const DEFAULT_HISTORY_LINES: u32 = 500;
const HISTORY_LINES: RangeInclusive<u32> = 1..=100_000;
/// Days a kept line lives unless told otherwise (`0`: no age limit).
const DEFAULT_HISTORY_DAYS: u32 = 30;

/// Where the server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// `<data-dir>/certs/{cert,key}.pem`, generated on first run with these
    /// extra subject alternative names.
    Generated { extra_sans: Vec<String> },
    /// Existing PEM files (e.g. from Let's Encrypt).
    Files { cert: PathBuf, key: PathBuf },
}

/// How a limit is written as a flag, a variable or a key: counts as they
/// are, durations as whole seconds.
pub(crate) trait LimitValue: Copy {
    type Raw: Copy + std::fmt::Display;
    fn from_raw(raw: Self::Raw) -> Self;
    fn to_raw(self) -> Self::Raw;
}

macro_rules! counts_are_raw {
    ($($t:ty),*) => {$(
        impl LimitValue for $t {
            type Raw = $t;
            fn from_raw(raw: $t) -> $t {
                raw
            }
            fn to_raw(self) -> $t {
                self
            }
        }
    )*};
}
counts_are_raw!(usize, u32, u8);

impl LimitValue for Duration {
    type Raw = u64;
    fn from_raw(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }
    fn to_raw(self) -> u64 {
        self.as_secs()
    }
}

/// The one definition of every limit. Each line makes a field of
/// [`Limits`] with its default, and a field of [`LimitSettings`] that is
/// the flag (`--` and the name with dashes), the variable and the
/// `[limits]` key (the name), whose help is the doc line followed by the
/// default. `valid RANGE, NOTE` bounds a limit that cannot be off, in clap
/// and in the file alike.
macro_rules! limits {
    ($(
        #[doc = $doc:literal]
        $name:ident: $ty:ty = $default:expr, $value_name:literal, $env:literal
            $(, valid $valid:expr, $note:expr)?;
    )*) => {
        /// The abuse limits, all reloadable with SIGHUP. `0` switches a
        /// limit off. Defined, with their flags and keys, in config.rs's
        /// `limits!` table.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Limits {
            $(#[doc = $doc] pub $name: $ty,)*
        }

        impl Limits {
            /// Every limit's built-in default.
            pub const DEFAULT: Limits = Limits { $($name: $default,)* };

            /// Every limit set, as a source would set it.
            fn settings(&self) -> LimitSettings {
                LimitSettings { $($name: Some(self.$name.to_raw()),)* }
            }
        }

        /// `Option` of every limit: what one source (command line, file)
        /// sets.
        #[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[command(next_help_heading = "Limits (0 = off)")]
        pub struct LimitSettings {
            $(
                // `[$(…)?].into_iter().next()`: `Some` of the range's text
                // for a bounded limit, `None` for the others.
                #[arg(
                    long,
                    env = $env,
                    value_name = $value_name,
                    help = limit_help($doc, [$(valid_text(&$valid))?].into_iter().next(), Limits::DEFAULT.$name.to_raw())
                    $(, value_parser = clap::value_parser!(u8)
                        .range(i64::from(*$valid.start())..=i64::from(*$valid.end())))?
                )]
                pub(crate) $name: Option<<$ty as LimitValue>::Raw>,
            )*
        }

        impl LimitSettings {
            /// `self` where it is set, `lower` elsewhere.
            fn over(self, lower: LimitSettings) -> LimitSettings {
                LimitSettings { $($name: self.$name.or(lower.$name),)* }
            }

            /// Fills in the defaults and checks the bounded ones.
            fn resolve(self) -> Result<Limits, ConfigError> {
                let limits = Limits {
                    $($name: self.$name.map_or(Limits::DEFAULT.$name, LimitValue::from_raw),)*
                };
                $($(check_valid(stringify!($name), limits.$name, &$valid, $note)?;)?)*
                Ok(limits)
            }
        }
    };
}

limits! {
    /// Clients connected at once
    max_clients: usize = 4096, "N", "TLSCHAT_MAX_CLIENTS";
    /// Connections at once from one address
    max_per_address: usize = 16, "N", "TLSCHAT_MAX_PER_ADDRESS";
    /// Lines per second a client may send
    rate_limit: u32 = 10, "N", "TLSCHAT_RATE_LIMIT";
    /// Lines a client may send in a burst
    rate_burst: u32 = 20, "N", "TLSCHAT_RATE_BURST";
    /// Lines per second from all connections of one address together
    address_rate_limit: u32 = 30, "N", "TLSCHAT_ADDRESS_RATE_LIMIT";
    /// Unfinished handshakes at once; the busiest address loses its oldest
    max_handshakes: usize = 1024, "N", "TLSCHAT_MAX_HANDSHAKES";
    /// Seconds from connecting to finish TLS and login
    handshake_timeout: Duration = Duration::from_secs(30), "SECS", "TLSCHAT_HANDSHAKE_TIMEOUT";
    /// Seconds a logged-in client may send nothing
    idle_timeout: Duration = Duration::ZERO, "SECS", "TLSCHAT_IDLE_TIMEOUT";
    /// Bytes queued for a client before it is dropped as not reading
    outbound_queue: usize = 256 * 1024, "BYTES", "TLSCHAT_OUTBOUND_QUEUE";
    /// Wrong passwords from one address before a lockout
    lockout_after: u32 = 5, "N", "TLSCHAT_LOCKOUT_AFTER";
    /// Seconds of the first lockout, doubling each time
    lockout_time: Duration = Duration::from_secs(60), "SECS", "TLSCHAT_LOCKOUT_TIME";
    /// IPv6 addresses sharing this prefix count as one address
    ipv6_prefix_len: u8 = 64, "BITS", "TLSCHAT_IPV6_PREFIX_LEN",
        valid IPV6_PREFIX_LENS, prefix_note();
    /// Accounts one address may register with /register in 24 hours
    registrations_per_address: u32 = 3, "N", "TLSCHAT_REGISTRATIONS_PER_ADDRESS";
    /// Accounts /register may make in all (the operator's passwd is not counted)
    max_accounts: usize = 10000, "N", "TLSCHAT_MAX_ACCOUNTS";
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// A limit's flag help: its doc line, the values it may take, the default
/// (a default of 0 is "off").
fn limit_help(doc: &str, valid: Option<String>, default: impl std::fmt::Display) -> String {
    let valid = valid.map(|v| format!(", {v}")).unwrap_or_default();
    let default = match default.to_string() {
        zero if zero == "0" => "0 = off".to_owned(),
        value => value,
    };
    format!("{}{valid} [default: {default}]", doc.trim())
}

fn valid_text(valid: &RangeInclusive<u8>) -> String {
    format!("{}-{}", valid.start(), valid.end())
}

/// What `ipv6_prefix_len`'s default means, for the message that refuses a bad one.
fn prefix_note() -> String {
    let len = Limits::DEFAULT.ipv6_prefix_len;
    format!("{len} groups each /{len} as one address")
}

/// A bounded limit must be inside its bounds.
fn check_valid(
    key: &str,
    value: u8,
    valid: &RangeInclusive<u8>,
    note: String,
) -> Result<(), ConfigError> {
    if valid.contains(&value) {
        return Ok(());
    }
    Err(ConfigError::Invalid(format!(
        "`{key}` is {value}; it must be from {} to {} ({note})",
        valid.start(),
        valid.end()
    )))
}

/// `--data-dir`, shared by every subcommand that uses the data directory.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct DataDirArg {
    /// Where the server keeps its certificate, bans and accounts
    /// [default: the platform's data directory]
    #[arg(long, env = "TLSCHAT_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

impl DataDirArg {
    /// The given directory, or the platform's.
    pub fn resolve(&self) -> Result<PathBuf, ConfigError> {
        match &self.data_dir {
            Some(dir) => Ok(dir.clone()),
            None => default_data_dir().ok_or(ConfigError::NoDataDir),
        }
    }
}

/// Every setting of `run` and `check-config`, as one source sets it: the
/// command line (flags with their `TLSCHAT_*` variables, parsed by clap)
/// or the config file (parsed by serde; unknown keys are an error that
/// names the key). `config` and `data_dir` have no key: the default config
/// file lives in the data directory.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Config file (TOML) [default: <data-dir>/tlschat.toml, if it exists]
    #[arg(long, env = "TLSCHAT_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,
    #[arg(long, env = "TLSCHAT_LISTEN", value_name = "ADDR", help = listen_help())]
    pub(crate) listen: Option<SocketAddr>,
    #[command(flatten)]
    #[serde(skip)]
    pub(crate) data_dir: DataDirArg,
    /// Use this certificate (PEM, chain allowed) instead of a generated one.
    #[arg(long, value_name = "FILE")]
    pub(crate) cert: Option<PathBuf>,
    /// The private key of --cert (PEM: PKCS#8, SEC1 or RSA).
    #[arg(long, value_name = "FILE")]
    pub(crate) key: Option<PathBuf>,
    /// Extra name or IP address for a generated certificate (repeatable).
    #[arg(long, value_name = "NAME")]
    pub(crate) san: Option<Vec<String>>,
    #[arg(long, value_name = "FILE", help = format!(
        "Set the admin password from this file's first line ({ADMIN_PASSWORD_ENV} works too)"
    ))]
    pub(crate) admin_password_file: Option<PathBuf>,
    #[arg(long, value_name = "FILE", help = format!(
        "Ask everyone who is not an account for the password in this file's first line \
         ({JOIN_PASSWORD_ENV} works too)"
    ))]
    pub(crate) join_password_file: Option<PathBuf>,
    /// Only accounts and invited people get in, even without a join password.
    #[arg(long, env = "TLSCHAT_PRIVATE", value_name = "BOOL", num_args = 0..=1,
          default_missing_value = "true")]
    pub(crate) private: Option<bool>,
    /// The HOST[:PORT] invite links name [default: the first --san, else the
    /// certificate's first DNS name, else the address the inviter reached]
    #[arg(long, env = "TLSCHAT_PUBLIC_NAME", value_name = "HOST[:PORT]")]
    pub(crate) public_name: Option<String>,
    /// Who may make their nickname an account with /register: open,
    /// invite-only or off [default: open]
    #[arg(long, env = "TLSCHAT_REGISTRATION", value_name = "POLICY")]
    pub(crate) registration: Option<String>,
    /// Keep no room history (the file's key is `history = false`).
    #[arg(long = "no-history", num_args = 0, default_missing_value = "false",
          action = clap::ArgAction::Set)]
    pub(crate) history: Option<bool>,
    #[arg(long, env = "TLSCHAT_HISTORY_LINES", value_name = "N", help = format!(
        "Lines kept per room, {}-{} [default: {DEFAULT_HISTORY_LINES}]",
        HISTORY_LINES.start(), HISTORY_LINES.end()
    ))]
    pub(crate) history_lines: Option<u32>,
    #[arg(long, env = "TLSCHAT_HISTORY_DAYS", value_name = "DAYS", help = format!(
        "Days a kept line lives (0 = no age limit) [default: {DEFAULT_HISTORY_DAYS}]"
    ))]
    pub(crate) history_days: Option<u32>,
    /// Start with history's writer stalled, as on a disk that stopped: a
    /// test and benchmark hook, not a setting.
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub(crate) history_stall: bool,
    #[command(flatten)]
    #[serde(default)]
    pub(crate) limits: LimitSettings,
}

fn listen_help() -> String {
    let any_v6 = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, DEFAULT_PORT));
    format!(
        "Address and port to listen on (`{any_v6}` for IPv6 and IPv4) [default: {DEFAULT_LISTEN}]"
    )
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
    #[error("cannot find a data directory for this user; pass --data-dir DIR")]
    NoDataDir,
    #[error(transparent)]
    PasswordFile(#[from] PasswordFileError),
    #[error(transparent)]
    Cert(#[from] CertError),
}

impl Settings {
    /// Reads a config file.
    pub(crate) fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Settings::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    pub(crate) fn parse(text: &str) -> Result<Settings, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// The merge: this command line (flags over their variables, as clap
    /// read them) over the config file (`--config`, or the data
    /// directory's `tlschat.toml` if it exists) over the defaults.
    pub fn merge(self) -> Result<Merged, ConfigError> {
        let data_dir = self.data_dir.resolve()?;
        let effective = self.effective(&data_dir)?;
        Ok(Merged {
            command_line: self,
            data_dir,
            effective,
        })
    }

    /// Reads the config file and puts `self` over it (a start and every reload).
    fn effective(&self, data_dir: &Path) -> Result<Effective, ConfigError> {
        let file = match self.config_file(data_dir) {
            Some(path) => Settings::load(&path)?,
            None => Settings::default(),
        };
        self.clone().over(file).resolve()
    }

    /// The config file to read, if any: `--config` must exist, the default
    /// one may not.
    fn config_file(&self, data_dir: &Path) -> Option<PathBuf> {
        match &self.config {
            Some(path) => Some(path.clone()),
            None => {
                let default = data_dir.join(CONFIG_FILE);
                default.exists().then_some(default)
            }
        }
    }

    /// `self` (the command line) over `lower` (the file).
    fn over(self, lower: Settings) -> Settings {
        Settings {
            config: self.config,
            data_dir: self.data_dir,
            listen: self.listen.or(lower.listen),
            cert: self.cert.or(lower.cert),
            key: self.key.or(lower.key),
            san: self.san.filter(|s| !s.is_empty()).or(lower.san),
            admin_password_file: self.admin_password_file.or(lower.admin_password_file),
            join_password_file: self.join_password_file.or(lower.join_password_file),
            private: self.private.or(lower.private),
            public_name: self.public_name.or(lower.public_name),
            registration: self.registration.or(lower.registration),
            history: self.history.or(lower.history),
            history_lines: self.history_lines.or(lower.history_lines),
            history_days: self.history_days.or(lower.history_days),
            history_stall: self.history_stall,
            limits: self.limits.over(lower.limits),
        }
    }

    /// Fills in the defaults and checks what belongs together.
    fn resolve(self) -> Result<Effective, ConfigError> {
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
        let public_name = self
            .public_name
            .map(|name| parse_public_name(&name))
            .transpose()?;
        let registration = match self.registration {
            Some(word) => word.parse().map_err(|()| {
                ConfigError::Invalid(format!(
                    "unknown registration policy `{word}`: open, invite-only or off"
                ))
            })?,
            None => Registration::default(),
        };
        let history_lines = self.history_lines.unwrap_or(DEFAULT_HISTORY_LINES);
        if !HISTORY_LINES.contains(&history_lines) {
            return Err(ConfigError::Invalid(format!(
                "`history_lines` is {history_lines}; it must be from {} to {} (`history = false` keeps none)",
                HISTORY_LINES.start(),
                HISTORY_LINES.end()
            )));
        }
        Ok(Effective {
            listen: self.listen.unwrap_or(DEFAULT_LISTEN),
            cert,
            admin_password_file: self.admin_password_file,
            join_password_file: self.join_password_file,
            private: self.private.unwrap_or(false),
            public_name,
            registration,
            history: HistoryConfig {
                on: self.history.unwrap_or(true),
                lines: history_lines,
                days: self.history_days.unwrap_or(DEFAULT_HISTORY_DAYS),
            },
            limits: self.limits.resolve()?,
        })
    }
}

/// What history keeps, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Room lines are kept and replayed at all (a restart applies a change).
    pub on: bool,
    /// Lines kept per room.
    pub lines: u32,
    /// Days a kept line lives; `0`: no age limit.
    pub days: u32,
}

impl HistoryConfig {
    /// `days` as a duration; `None`: no age limit.
    pub fn max_age(&self) -> Option<Duration> {
        (self.days > 0).then(|| Duration::from_secs(u64::from(self.days) * 24 * 60 * 60))
    }
}

impl Default for HistoryConfig {
    fn default() -> HistoryConfig {
        HistoryConfig {
            on: true,
            lines: DEFAULT_HISTORY_LINES,
            days: DEFAULT_HISTORY_DAYS,
        }
    }
}

/// What the merge produced for one run: the data directory, the effective
/// settings, and the command line a reload merges with again.
#[derive(Debug, Clone)]
pub struct Merged {
    command_line: Settings,
    pub(crate) data_dir: PathBuf,
    pub effective: Effective,
}

/// What a SIGHUP reload applies, from [`Merged::reload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reload {
    /// The new limits, for [`Reloader::reload`](crate::Reloader::reload).
    pub limits: Limits,
    /// Who gets in, with the join password read again.
    pub access: AccessConfig,
    /// Why the join password file could not be read: the running server
    /// keeps its join password (`access.join_password` means nothing then)
    /// and takes the rest of `access`.
    pub join_password_unread: Option<String>,
    /// History's retention (whether history is on at all stays as started).
    pub history: HistoryConfig,
    /// Set when settings that only a restart applies have changed.
    pub waiting_for_restart: Option<&'static str>,
}

/// The warning of a reload that finds restart-only settings changed.
const RESTART_ONLY: &str =
    "listen, cert, key, san and history on/off changes take effect at the next restart; reloading the rest";

impl Merged {
    /// What `check-config` checks beyond the merge: the files the settings
    /// name load (`cert`/`key`, `admin_password_file`).
    pub fn check_files(&self) -> Result<(), ConfigError> {
        if let CertSource::Files { cert, key } = &self.effective.cert {
            certs::load(&CertPaths {
                cert: cert.clone(),
                key: key.clone(),
            })?;
        }
        if let Some(file) = &self.effective.admin_password_file {
            read_password_file(file)?;
        }
        if let Some(file) = &self.effective.join_password_file {
            read_password_file(file)?;
        }
        Ok(())
    }

    /// The configuration to start the server with. The admin password:
    /// `--admin-password-file` over `TLSCHAT_ADMIN_PASSWORD` (ignored when
    /// empty) over the `admin_password_file` key; none keeps the stored one.
    pub fn server_config(&self) -> Result<ServerConfig, ConfigError> {
        let env_password = std::env::var(ADMIN_PASSWORD_ENV).ok();
        self.server_config_with(env_password)
    }

    fn server_config_with(
        &self,
        env_password: Option<String>,
    ) -> Result<ServerConfig, ConfigError> {
        let env_password = env_password.filter(|p| !p.is_empty());
        // `effective.admin_password_file` is the flag's file when the flag is
        // given, else the config key's.
        let flag_given = self.command_line.admin_password_file.is_some();
        let admin_password = match (&self.effective.admin_password_file, env_password) {
            (Some(file), _) if flag_given => Some(read_password_file(file)?),
            (_, Some(password)) => Some(password),
            (Some(file), None) => Some(read_password_file(file)?),
            (None, None) => None,
        };
        let eff = &self.effective;
        Ok(ServerConfig {
            listen: eff.listen,
            data_dir: self.data_dir.clone(),
            cert: eff.cert.clone(),
            admin_password,
            limits: eff.limits.clone(),
            clock: Arc::new(SystemClock),
            access: access_config(eff, std::env::var(JOIN_PASSWORD_ENV).ok())?,
            sweep_every: SWEEP_EVERY,
            history: eff.history,
            history_gate: None,
            history_stalled: self.command_line.history_stall,
        })
    }

    /// SIGHUP: the config file read again (even one created after the
    /// start) under the same command line. The limits apply; `listen` and
    /// the certificate source wait for a restart, and so do the data
    /// directory and the admin password, which a reload does not read.
    pub fn reload(&self) -> Result<Reload, ConfigError> {
        let now = self.command_line.effective(&self.data_dir)?;
        let restart_only_changed = now.listen != self.effective.listen
            || now.cert != self.effective.cert
            || now.history.on != self.effective.history.on;
        let env_password = std::env::var(JOIN_PASSWORD_ENV).ok();
        let (join_password, join_password_unread) = match join_password(&now, env_password) {
            Ok(password) => (password, None),
            Err(e) => (None, Some(e.to_string())),
        };
        let access = AccessConfig {
            join_password,
            ..access_settings(&now)
        };
        Ok(Reload {
            limits: now.limits,
            access,
            join_password_unread,
            history: HistoryConfig {
                on: self.effective.history.on,
                ..now.history
            },
            waiting_for_restart: restart_only_changed.then_some(RESTART_ONLY),
        })
    }
}

/// Settings with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub listen: SocketAddr,
    pub cert: CertSource,
    pub admin_password_file: Option<PathBuf>,
    pub join_password_file: Option<PathBuf>,
    pub private: bool,
    pub public_name: Option<PublicName>,
    pub registration: Registration,
    pub history: HistoryConfig,
    pub limits: Limits,
}

/// The join password: `--join-password-file` or the `join_password_file` key
/// (the command line already won the merge) over `TLSCHAT_JOIN_PASSWORD`
/// (ignored when empty). Unlike the admin's, a file wins over the variable:
/// the file is what a reload reads again.
fn access_config(
    eff: &Effective,
    env_password: Option<String>,
) -> Result<AccessConfig, ConfigError> {
    Ok(AccessConfig {
        join_password: join_password(eff, env_password)?,
        ..access_settings(eff)
    })
}

fn join_password(
    eff: &Effective,
    env_password: Option<String>,
) -> Result<Option<String>, ConfigError> {
    Ok(
        match (
            &eff.join_password_file,
            env_password.filter(|p| !p.is_empty()),
        ) {
            (Some(file), _) => Some(read_password_file(file)?),
            (None, from_env) => from_env,
        },
    )
}

/// The access settings but the join password (which [`join_password`]
/// reads).
fn access_settings(eff: &Effective) -> AccessConfig {
    AccessConfig {
        join_password: None,
        private: eff.private,
        public_name: eff.public_name.clone(),
        registration: eff.registration,
    }
}

/// `public_name`: a host (DNS name, IPv4, `[IPv6]`) as a link may carry it,
/// and an optional port.
fn parse_public_name(name: &str) -> Result<PublicName, ConfigError> {
    let invalid = |e: String| ConfigError::Invalid(format!("`public_name` `{name}`: {e}"));
    let parsed = name.parse::<HostPort>().map_err(invalid)?;
    let host = HostPort::check_link_host(parsed.host()).map_err(|e| invalid(e.to_string()))?;
    // HostPort fills in the default port; a name without one means the
    // port the server listens on.
    let port_given = match name.strip_prefix('[') {
        Some(rest) => rest.contains("]:"),
        None => name.matches(':').count() == 1,
    };
    Ok(PublicName {
        host,
        port: port_given.then_some(parsed.port()),
    })
}

/// The host (and port, if given) that invite links name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicName {
    /// As a link writes it (lower case; IPv6 without brackets).
    pub host: String,
    /// `None`: the port the server listens on.
    pub port: Option<u16>,
}

impl std::fmt::Display for PublicName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.host.contains(':'), self.port) {
            (true, Some(port)) => write!(f, "[{}]:{port}", self.host),
            (true, None) => write!(f, "[{}]", self.host),
            (false, Some(port)) => write!(f, "{}:{port}", self.host),
            (false, None) => f.write_str(&self.host),
        }
    }
}

/// Who gets in and who may register: the access settings, resolved.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AccessConfig {
    /// Asked (`PASS join`) of everyone who is not an account.
    pub join_password: Option<String>,
    /// Only accounts and invitees get in, even without a join password.
    pub private: bool,
    /// The host (and port) invite links name.
    pub public_name: Option<PublicName>,
    /// Who may `/register`, unless `/registration` saved another policy.
    pub registration: Registration,
}

impl std::fmt::Debug for AccessConfig {
    // The join password never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessConfig")
            .field("join_password", &redacted(&self.join_password))
            .field("private", &self.private)
            .field("public_name", &self.public_name)
            .field("registration", &self.registration)
            .finish()
    }
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
            #[serde(skip_serializing_if = "Option::is_none")]
            join_password_file: Option<&'a Path>,
            private: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            public_name: Option<String>,
            registration: &'a str,
            history: bool,
            history_lines: u32,
            history_days: u32,
            limits: LimitSettings,
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
            join_password_file: self.join_password_file.as_deref(),
            private: self.private,
            public_name: self.public_name.as_ref().map(ToString::to_string),
            registration: self.registration.as_str(),
            history: self.history.on,
            history_lines: self.history.lines,
            history_days: self.history.days,
            limits: self.limits.settings(),
        };
        // Plain data with string keys: serialization cannot fail.
        toml::to_string(&out).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
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
    /// "Now" for everything stored with a time (accounts, invites, timed
    /// bans): the system clock, a [`ManualClock`](crate::clock::ManualClock)
    /// in tests that move time.
    pub clock: Arc<dyn Clock>,
    /// Join password, private mode, invite links' host, registration.
    pub access: AccessConfig,
    /// How often expired invites (and timed bans) are swept out; zero:
    /// never. For tests.
    #[doc(hidden)]
    pub sweep_every: Duration,
    /// Whether room lines are kept, how many, how long.
    pub history: HistoryConfig,
    /// A gate history's writer waits at before each commit (closed: a
    /// stalled disk). For tests.
    #[doc(hidden)]
    pub history_gate: Option<Arc<HistoryGate>>,
    /// Start with history's writer stalled (`--history-stall`): a closed
    /// gate nobody opens. For benchmarks.
    #[doc(hidden)]
    pub history_stalled: bool,
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
            clock,
            access,
            sweep_every,
            history,
            history_gate,
            history_stalled,
        } = self;
        f.debug_struct("ServerConfig")
            .field("listen", listen)
            .field("data_dir", data_dir)
            .field("cert", cert)
            .field("admin_password", &redacted(admin_password))
            .field("limits", limits)
            .field("clock", clock)
            .field("access", access)
            .field("sweep_every", sweep_every)
            .field("history", history)
            .field("history_gate", &history_gate.is_some())
            .field("history_stalled", history_stalled)
            .finish()
    }
}

impl ServerConfig {
    /// Defaults for everything but the data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            listen: DEFAULT_LISTEN,
            data_dir: data_dir.into(),
            cert: CertSource::Generated {
                extra_sans: Vec::new(),
            },
            admin_password: None,
            limits: Limits::default(),
            clock: Arc::new(SystemClock),
            access: AccessConfig::default(),
            sweep_every: SWEEP_EVERY,
            history: HistoryConfig::default(),
            history_gate: None,
            history_stalled: false,
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
pub(crate) fn bans_file(data_dir: &Path) -> PathBuf {
    data_dir.join("bans.txt")
}
pub fn accounts_file(data_dir: &Path) -> PathBuf {
    data_dir.join("accounts.txt")
}

/// The platform's data directory for tlschat (`~/.local/share/tlschat`,
/// `~/Library/Application Support/tlschat`, `%APPDATA%\tlschat\data`).
pub(crate) fn default_data_dir() -> Option<PathBuf> {
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
        let eff = cli.over(file).resolve().unwrap();
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

    /// A data directory with `tlschat.toml` holding `text`.
    fn data_dir_with_config(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
        dir
    }

    /// Held by whoever parses a command line or sets a `TLSCHAT_*`
    /// variable: clap reads the process environment, shared by all tests.
    static ENVIRONMENT: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// The command line `args` as clap reads it, environment included.
    fn command_line(data_dir: &Path, args: &[&str]) -> Settings {
        let _environment = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
        parse(data_dir, args)
    }

    /// [`command_line`] for a test that holds [`ENVIRONMENT`] itself.
    fn parse(data_dir: &Path, args: &[&str]) -> Settings {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            settings: Settings,
        }
        let data_dir = data_dir.to_str().unwrap();
        let head = ["tlschat-server", "--data-dir", data_dir];
        let all = head.iter().chain(args);
        <Cli as clap::Parser>::try_parse_from(all).unwrap().settings
    }

    #[test]
    fn a_limit_takes_flag_over_env_over_file_over_default() {
        let dir = data_dir_with_config("[limits]\nrate_limit = 5\n");
        let rate_of = |cli: Settings| {
            let merged = cli.merge().unwrap();
            merged.server_config().unwrap().limits.rate_limit
        };
        let rate = |args: &[&str]| rate_of(command_line(dir.path(), args));
        let with_env = {
            let _environment = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
            std::env::set_var("TLSCHAT_RATE_LIMIT", "6");
            let flag = rate_of(parse(dir.path(), &["--rate-limit", "7"]));
            let env = rate_of(parse(dir.path(), &[]));
            std::env::remove_var("TLSCHAT_RATE_LIMIT");
            (flag, env)
        };
        assert_eq!(with_env, (7, 6), "the flag over the variable over the file");
        assert_eq!(rate(&[]), 5, "the file over the default");
        std::fs::remove_file(dir.path().join(CONFIG_FILE)).unwrap();
        assert_eq!(rate(&[]), Limits::DEFAULT.rate_limit);
        assert_eq!(rate(&["--rate-limit", "0"]), 0, "0 is a value");
    }

    #[test]
    fn the_admin_password_takes_flag_over_env_over_file_over_the_stored_one() {
        let dir = tempfile::tempdir().unwrap();
        let flag_file = dir.path().join("flag.txt");
        let key_file = dir.path().join("key.txt");
        std::fs::write(&flag_file, "from-flag\n").unwrap();
        std::fs::write(&key_file, "from-key\n").unwrap();
        let key = format!("admin_password_file = {:?}\n", key_file.to_str().unwrap());
        std::fs::write(dir.path().join(CONFIG_FILE), &key).unwrap();
        let password = |flag: Option<&Path>, env: Option<&str>| {
            let mut cli = command_line(dir.path(), &[]);
            cli.admin_password_file = flag.map(Path::to_path_buf);
            let merged = cli.merge().unwrap();
            let config = merged.server_config_with(env.map(str::to_owned)).unwrap();
            config.admin_password
        };
        let given = |p: &str| Some(p.to_owned());
        assert_eq!(
            password(Some(&flag_file), Some("from-env")),
            given("from-flag")
        );
        assert_eq!(password(None, Some("from-env")), given("from-env"));
        assert_eq!(
            password(None, Some("")),
            given("from-key"),
            "empty is unset"
        );
        assert_eq!(password(None, None), given("from-key"));
        std::fs::remove_file(dir.path().join(CONFIG_FILE)).unwrap();
        assert_eq!(password(None, None), None, "keep the stored password");
    }

    #[test]
    fn a_reload_applies_the_files_limits_under_the_same_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let merged = command_line(dir.path(), &["--max-clients", "3"])
            .merge()
            .unwrap();
        let reload_with = |text: &str| {
            std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
            merged.reload()
        };

        // A config file created after the start is read; the flag still wins.
        let reload = reload_with("[limits]\nrate_limit = 4\nmax_clients = 9\n").unwrap();
        assert_eq!(reload.limits.rate_limit, 4);
        assert_eq!(reload.limits.max_clients, 3, "flags cannot change");
        assert_eq!(reload.waiting_for_restart, None);

        // listen and the certificate wait for a restart, and say so.
        for restart_only in [
            "listen = \"127.0.0.1:7000\"\n",
            "san = [\"chat.example.org\"]\n",
        ] {
            let reload = reload_with(&format!("{restart_only}[limits]\nrate_limit = 2\n")).unwrap();
            assert_eq!(reload.limits.rate_limit, 2, "the rest is reloaded");
            assert_eq!(
                reload.waiting_for_restart,
                Some(RESTART_ONLY),
                "{restart_only}"
            );
        }

        // The admin password is not re-read: a reload has nothing to carry it.
        let reload = reload_with("admin_password_file = \"/nonexistent/password\"\n").unwrap();
        assert_eq!(
            reload.limits,
            Limits {
                max_clients: 3,
                ..Limits::DEFAULT
            }
        );
        assert_eq!(reload.waiting_for_restart, None);

        // A broken file is refused as a whole.
        assert!(reload_with("[limits]\nrate_limit = -1\n").is_err());
    }

    /// History's three settings: flags over the file over the defaults;
    /// `--no-history` is the file's `history = false`; a reload takes new
    /// retention but leaves history on or off as started.
    #[test]
    fn history_settings_merge_bound_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let eff = |args: &[&str]| command_line(dir.path(), args).merge().map(|m| m.effective);
        assert_eq!(eff(&[]).unwrap().history, HistoryConfig::default());
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "history_lines = 1000\nhistory_days = 0\n",
        )
        .unwrap();
        let h = eff(&["--history-lines", "7"]).unwrap().history;
        assert_eq!((h.on, h.lines, h.days), (true, 7, 0));
        assert_eq!(h.max_age(), None, "0 days: no age limit");
        assert!(!eff(&["--no-history"]).unwrap().history.on);
        assert!(eff(&["--history-lines", "0"]).is_err());
        assert!(eff(&["--history-lines", "100001"]).is_err());
        let shown = eff(&["--no-history"]).unwrap().to_toml();
        assert!(
            shown.contains("history = false\nhistory_lines = 1000\nhistory_days = 0\n"),
            "{shown}"
        );

        let merged = command_line(dir.path(), &[]).merge().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "history = false\nhistory_lines = 20\nhistory_days = 2\n",
        )
        .unwrap();
        let reload = merged.reload().unwrap();
        assert_eq!(
            reload.history,
            HistoryConfig {
                on: true,
                lines: 20,
                days: 2
            }
        );
        assert_eq!(reload.waiting_for_restart, Some(RESTART_ONLY));
        assert_eq!(
            reload.history.max_age(),
            Some(Duration::from_secs(2 * 86400))
        );
    }

    /// The join password: the file over the variable (the file is what a
    /// reload reads again); a reload whose file is gone reports it, and
    /// the access settings never show the password.
    #[test]
    fn the_join_password_file_wins_and_a_reload_reports_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("join");
        std::fs::write(&file, "пароль-密码-🔑\n").unwrap();
        let file_arg = file.to_str().unwrap();
        let merged = command_line(
            dir.path(),
            &[
                "--join-password-file",
                file_arg,
                "--public-name",
                "Chat.Example.org",
            ],
        )
        .merge()
        .unwrap();
        let access = access_config(&merged.effective, Some("from-env".into())).unwrap();
        assert_eq!(access.join_password.as_deref(), Some("пароль-密码-🔑"));
        let name = access.public_name.clone().unwrap();
        assert_eq!((name.host.as_str(), name.port), ("chat.example.org", None));
        assert!(!format!("{access:?}").contains("пароль"));
        let merged = command_line(dir.path(), &[]).merge().unwrap();
        let access = access_config(&merged.effective, Some("from-env".into())).unwrap();
        assert_eq!(access.join_password.as_deref(), Some("from-env"));
        assert_eq!(
            access_config(&merged.effective, Some(String::new()))
                .unwrap()
                .join_password,
            None
        );

        std::fs::write(
            dir.path().join(CONFIG_FILE),
            format!("join_password_file = {file_arg:?}\n"),
        )
        .unwrap();
        let merged = command_line(dir.path(), &[]).merge().unwrap();
        std::fs::remove_file(&file).unwrap();
        let reload = merged.reload().unwrap();
        assert!(
            reload.join_password_unread.is_some(),
            "{:?}",
            reload.join_password_unread
        );
        let name = reload.access.public_name.as_ref().map(|n| n.host.as_str());
        assert_eq!(name, None, "the other settings are read all the same");
        for bad in ["тест.рф", "host:0", "a b"] {
            assert!(parse_public_name(bad).is_err(), "{bad}");
        }
        let v6 = parse_public_name("[2001:DB8::1]:4433").unwrap();
        assert_eq!(
            (v6.to_string(), v6.port),
            ("[2001:db8::1]:4433".to_owned(), Some(4433))
        );
    }
}
