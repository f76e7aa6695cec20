//! tlschat-server-core: the chat server as a library (the `tlschat-server`
//! binary is its command line).
//!
//! ```text
//! TcpListener (lib.rs) → limits.rs Gate (admission) → tls.rs (first byte, TLS accept)
//!   → peer.rs: Login (NICK/PASS), then one Peer per client:
//!       Frame → rate limits → text check → Command::parse (tlschat-protocol)
//!       → its own answers (errors, PONG, /help) → its own queue
//!       → commands that reach others → Hub (hub.rs: users, rooms, bans;
//!         decides who receives what) → each recipient's bounded queue
//!   queue (outbound.rs) → that client's writer task → socket
//! config.rs: flags, environment and tlschat.toml → ServerConfig
//! certs.rs: generate / load the certificate; bans.rs, accounts.rs: the
//! files in the data directory; store.rs (the Store trait) over sqlite.rs
//! (tlschat.db): accounts, roles, invites; clock.rs: "now" for expiry
//! access.rs: the join gate of a closed server (join password, invite
//! codes); account_commands.rs: /register … /uninvite, answered to the
//! caller alone
//! ```
//!
//! The store is entered from the hub off the broadcast path (blocking
//! pool), and a cluster's store would be another implementation of it.
//! History (history.rs, `<data-dir>/history.db`) is its own file with its
//! own writer thread: the hub offers each room line to its bounded queue
//! and never waits for it; peers read it for replays, `/history` and
//! `/search`. A link to other server nodes would sit beside
//! the hub as another recipient kind.
//!
//! [`Server::bind`] prepares everything that can fail at startup (data
//! directory, certificate, bans, accounts, the listening socket);
//! [`Server::run`] accepts connections until the shutdown token is
//! cancelled, then closes every client in order.
//!
//! Each accepted TCP connection asks the gate for an admission (connection
//! counts, per-address cap, unfinished handshakes): an admitted one gets a
//! ticket and its own task, a refused one a short task that delivers its
//! refusal (or, when too many refusals linger, an immediate close). The
//! tasks share one hub (users, rooms, bans) and one TLS configuration. A
//! [`Reloader`] swaps the limits, the bans, the accounts and the
//! certificate while the server runs (SIGHUP).
//!
//! What other crates use: [`Server`] and [`Reloader`], the settings
//! ([`config`]), the account and certificate files for the command line's
//! subcommands ([`accounts`], [`certs`]), the TLS configurations ([`tls`]),
//! systemd's readiness protocol ([`service`]) and the writers' drain bound
//! ([`outbound::DRAIN_LIMIT`]). The hub, the peers, the queues, the limits
//! and the bans are this crate's own.

#![warn(clippy::string_slice)]
// The module docs describe the internals to whoever changes them (`cargo
// doc --document-private-items`), so their links to private items are meant.
#![allow(rustdoc::private_intra_doc_links)]

mod access;
mod account_commands;
pub mod accounts;
mod bans;
pub mod certs;
pub mod clock;
pub mod config;
mod farewell;
mod history;
mod history_sqlite;
mod hub;
mod invites;
mod limits;
pub mod outbound;
mod peer;
mod room;
pub mod service;
mod socket;
mod sqlite;
mod store;
pub mod tls;

pub use self::bans::BanFileError;
#[doc(hidden)]
pub use self::history::HistoryGate;
pub use self::sqlite::{backup, open_store, Imported, SqliteStore};
pub use self::store::{Registration, StoreError};

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, instrument, warn};

use self::access::{Access, Identity};
use self::accounts::{Accounts, AccountsError, AdminSetup};
use self::bans::{canonical_ip, BanList};
use self::clock::Clock;
use self::history::History;
use self::hub::Hub;
use self::limits::{Admission, Gate, Refusal};
use self::peer::PeerContext;
use self::store::Storage;
use crate::certs::{CertError, CertPaths};
use crate::config::{CertSource, HistoryConfig, Reload, ServerConfig};
use crate::tls::TlsError;
use tlschat_protocol::Fingerprint;

/// How long [`Server::run`] waits for clients to drain after shutdown
/// begins; writers give up on their own after
/// [`outbound::DRAIN_LIMIT`], so this is only a backstop.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(3);

/// What can stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing the data directory: {0}")]
    UnsafeDataDir(#[from] tlschat_fs::UnsafeDir),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Bans(#[from] BanFileError),
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What an operator should be told at startup.
#[derive(Debug)]
pub struct ServerInfo {
    pub local_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub cert: CertPaths,
    pub fingerprint: Fingerprint,
    /// The certificate was generated by this start.
    pub cert_generated: bool,
    pub admin: AdminSetup,
}

/// A bound, ready-to-run server.
pub struct Server {
    listener: TcpListener,
    ctx: Arc<PeerContext>,
    info: ServerInfo,
    /// The first `--san` of a generated certificate: the default host of
    /// invite links.
    first_san: Option<String>,
    sweep_every: Duration,
}

impl Server {
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        let data_dir = config.data_dir.clone();
        create_data_dir(&data_dir)?;
        for dir in [data_dir.clone(), config.certs_dir()] {
            match tlschat_fs::remove_stale_temp_files(&dir) {
                Ok(0) => {}
                Ok(n) => info!(dir = %dir.display(), "removed {n} temporary files left by a crash"),
                Err(e) => {
                    warn!(dir = %dir.display(), error = %e, "cannot clean up temporary files")
                }
            }
        }

        let (cert, cert_generated) = match &config.cert {
            CertSource::Generated { extra_sans } => {
                certs::load_or_generate(&config.certs_dir(), extra_sans)?
            }
            CertSource::Files { cert, key } => (
                certs::load(&CertPaths {
                    cert: cert.clone(),
                    key: key.clone(),
                })?,
                false,
            ),
        };
        let first_san = match &config.cert {
            CertSource::Generated { extra_sans } => extra_sans.first().cloned(),
            CertSource::Files { .. } => None,
        };

        let bans =
            bans::BanList::load_with_clock(&config::bans_file(&data_dir), config.clock.clone())?;
        let storage = open_storage(&data_dir, config.clock.clone())?;
        let mut accounts = Accounts::from_store(storage.store.clone(), storage.clock.clone())?;
        let admin =
            accounts::ensure_admin(&data_dir, &mut accounts, config.admin_password.as_deref())?;
        let history = open_history(&config);
        // After history: a server whose history.db cannot be opened offers
        // no ALPN, so clients know it keeps none.
        let tls_configs = tls::TlsConfigs::new(&cert, history.is_some())?;

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        configure_listener(&listener);
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;

        Ok(Server {
            listener,
            ctx: Arc::new(PeerContext::new(
                Hub::with_history(bans, accounts, storage, history),
                tls_configs,
                Gate::new(config.limits),
                Access::new(&config.access, Identity::of(&cert, first_san.as_deref())),
            )),
            info: ServerInfo {
                local_addr,
                data_dir,
                fingerprint: cert.fingerprint,
                cert: cert.paths,
                cert_generated,
                admin,
            },
            first_san,
            sweep_every: config.sweep_every,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.info.local_addr
    }

    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    /// A handle that reloads limits, bans and certificate while running.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            ctx: self.ctx.clone(),
            data_dir: self.info.data_dir.clone(),
            cert: self.info.cert.clone(),
            first_san: self.first_san.clone(),
        }
    }

    /// Accepts clients until `shutdown` is cancelled; then every client gets
    /// an `INFO`, its queue is flushed (bounded) and its TLS closed.
    #[instrument(skip_all, fields(addr = %self.info.local_addr))]
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let Server {
            listener,
            ctx,
            sweep_every,
            ..
        } = self;
        let tracker = TaskTracker::new();
        tracker.spawn(sweep(ctx.clone(), sweep_every, shutdown.clone()));
        let mut backoff = Duration::from_millis(5);
        info!("accepting connections");
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept() => r,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => {
                    backoff = Duration::from_millis(5);
                    a
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off rather
                    // than spin, and never stop serving the others.
                    warn!(error = %e, "accept failed; retrying in {backoff:?}");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            configure_socket(&tcp);
            match ctx.gate.admit(canonical_ip(peer.ip())) {
                Admission::Admitted(ticket) => {
                    debug!(%peer, "accepted");
                    tracker.spawn(peer::serve(ctx.clone(), tcp, peer, ticket));
                }
                Admission::Refused(slot) => {
                    log_refusal(&ctx.gate, peer, slot.group(), &slot.refusal, "refused");
                    tracker.spawn(peer::serve_refusal(ctx.clone(), tcp, peer, slot));
                }
                Admission::Dropped { group, refusal } => {
                    let what = "refused and closed at once (too many refusals linger)";
                    log_refusal(&ctx.gate, peer, group, &refusal, what);
                    drop(tcp);
                }
            }
        }
        drop(listener);
        info!("shutting down");
        ctx.hub.shutdown("the server is shutting down");
        ctx.shutdown.cancel();
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_LIMIT, tracker.wait())
            .await
            .is_err()
        {
            warn!("some connections did not close in time; dropping them");
        }
        if let Some(history) = ctx.hub.history() {
            // After the clients: every line they said is queued by now.
            history.shutdown().await;
            match history.dropped() {
                0 => info!("history closed"),
                n => warn!("history closed; {n} room lines since the start were not kept (the disk fell behind)"),
            }
        }
        Ok(())
    }
}

/// Every `every` (zero: never), until shutdown: drops what has expired
/// (timed bans from `bans.txt`, invite codes from the store) on the
/// blocking pool. Expiry is decided at use anyway; this keeps the files
/// from collecting the dead.
async fn sweep(ctx: Arc<PeerContext>, every: Duration, shutdown: CancellationToken) {
    if every.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        ctx.hub.sweep().await;
    }
}

/// One warning per refusal would let whoever is refused choose how much
/// the server logs: at most one line per address group a minute, carrying
/// the count of those held back since.
fn log_refusal(gate: &Gate, peer: SocketAddr, group: IpAddr, refusal: &Refusal, what: &str) {
    if let Some(held) = gate
        .refusal_warnings
        .allow(group, std::time::Instant::now())
    {
        warn!(%peer, "{what}: {}{held}", refusal.0);
    }
}

/// Swaps configuration into a running server (SIGHUP). Each part that
/// fails to load keeps the old one and is reported; nobody is disconnected.
#[derive(Clone)]
pub struct Reloader {
    ctx: Arc<PeerContext>,
    data_dir: PathBuf,
    cert: CertPaths,
    first_san: Option<String>,
}

impl Reloader {
    /// New limits (applied to open connections too), the bans file, the
    /// accounts cache from the database (a `passwd` from another process
    /// while running) and the certificate (for new handshakes). Returns
    /// what failed.
    pub fn reload(&self, reload: Reload) -> Vec<String> {
        let mut failed = Vec::new();
        self.ctx.gate.set_limits(reload.limits);
        match reload.join_password_unread {
            None => self.ctx.access.set(&reload.access),
            Some(e) => {
                self.ctx.access.set_keeping_join_password(&reload.access);
                failed.push(format!(
                    "join password not reloaded (the old one stays; the other access settings were): {e}"
                ));
            }
        }
        match BanList::load_with_clock(&config::bans_file(&self.data_dir), self.ctx.hub.clock()) {
            Ok(bans) => {
                info!(bans = bans.len(), "bans reloaded");
                self.ctx.hub.replace_bans(bans);
            }
            Err(e) => failed.push(format!("bans not reloaded: {e}")),
        }
        let storage = self.ctx.hub.storage();
        match Accounts::from_store(storage.store.clone(), storage.clock.clone()) {
            Ok(accounts) if accounts.has_admin() => {
                info!(accounts = accounts.len(), "accounts reloaded");
                self.ctx.hub.replace_accounts(accounts)
            }
            // The old accounts stay, admin included: a database that lost
            // the admin's row must not turn `admin` into a nickname without
            // password.
            Ok(_) => failed.push(format!(
                "accounts not reloaded: {} has no admin account (run `tlschat-server \
                 passwd` and reload again, or restart the server)",
                self.data_dir.join(sqlite::DB_FILE).display()
            )),
            Err(e) => failed.push(format!("accounts not reloaded: {e}")),
        }
        if let Some(history) = self.ctx.hub.history() {
            let HistoryConfig { lines, .. } = reload.history;
            history.set_retention(lines, history_age(&reload.history));
            info!(
                lines,
                days = reload.history.days,
                "history retention reloaded"
            );
        }
        let history_on = self.ctx.hub.history().is_some();
        let cert = certs::load(&self.cert).map_err(ServerError::from);
        match cert.and_then(|c| Ok((tls::TlsConfigs::new(&c, history_on)?, c))) {
            Ok((config, cert)) => {
                info!(fingerprint = %cert.fingerprint, "certificate reloaded");
                self.ctx.set_tls(config);
                let first_san = self.first_san.as_deref();
                self.ctx.access.set_identity(Identity::of(&cert, first_san));
            }
            Err(e) => failed.push(format!("certificate not reloaded: {e}")),
        }
        for f in &failed {
            warn!("{f}");
        }
        failed
    }
}

/// `TCP_NODELAY`: chat lines are small and Nagle would hold them back tens
/// of milliseconds. Keepalive: notice peers that vanished without a FIN.
///
/// Linux copies both from the listening socket to every accepted one, so
/// there they are set once on the listener ([`configure_listener`]) instead
/// of three `setsockopt` calls per connection; elsewhere (BSD-derived
/// stacks do not promise it) every accepted socket gets them.
fn configure_socket(tcp: &TcpStream) {
    if INHERITS_OPTIONS {
        return;
    }
    set_options(socket2::SockRef::from(tcp));
}

const INHERITS_OPTIONS: bool = cfg!(any(target_os = "linux", target_os = "android"));

fn configure_listener(listener: &TcpListener) {
    if INHERITS_OPTIONS {
        set_options(socket2::SockRef::from(listener));
    }
}

fn set_options(socket: socket2::SockRef<'_>) {
    if let Err(e) = socket.set_tcp_nodelay(true) {
        debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
    if let Err(e) = socket.set_tcp_keepalive(&keepalive) {
        debug!(error = %e, "cannot enable TCP keepalive");
    }
}

/// Opens `<data_dir>/tlschat.db` (importing an old `accounts.txt` once, which
/// logs itself) as the store every part of the server shares.
fn open_storage(data_dir: &std::path::Path, clock: Arc<dyn Clock>) -> Result<Storage, StoreError> {
    let (store, _imported) = open_store(data_dir, clock.clone())?;
    Ok(Storage {
        store: Arc::new(store),
        clock,
    })
}

/// Opens `<data_dir>/history.db` and starts its writer, if history is on.
/// A history that cannot be opened is logged and the server runs without
/// it: losing history is acceptable, refusing to start is not.
fn open_history(config: &ServerConfig) -> Option<History> {
    if !config.history.on {
        return None;
    }
    let gate = match (&config.history_gate, config.history_stalled) {
        (Some(gate), _) => Some(gate.clone()),
        (None, true) => {
            warn!("--history-stall: history's writer waits forever; lines are only queued and dropped");
            let gate = Arc::new(HistoryGate::new());
            gate.close();
            Some(gate)
        }
        (None, false) => None,
    };
    let settings = history::HistorySettings {
        gate,
        ..history::HistorySettings::new(config.history.lines, history_age(&config.history))
    };
    let file = config.data_dir.join("history.db");
    let history = match History::open(&config.data_dir, settings, config.clock.clone()) {
        Ok(history) => history,
        Err(e) => {
            error!(
                error = %e,
                "cannot open {}; running without history (no replays, /history and /search unknown) until a restart",
                file.display()
            );
            return None;
        }
    };
    info!(
        lines = config.history.lines,
        days = config.history.days,
        "history kept in {}",
        file.display()
    );
    Some(history)
}

/// How long kept lines live: `days`, or (0: [`Duration::ZERO`], which the
/// store takes as no age limit) as long as the count allows.
fn history_age(config: &HistoryConfig) -> Duration {
    config.max_age().unwrap_or(Duration::ZERO)
}

/// Creates the data directory (owner-only on Unix: it holds the private
/// key and the password hash), and refuses one that others could write into.
fn create_data_dir(path: &std::path::Path) -> Result<(), ServerError> {
    tlschat_fs::create_private_dir(path).map_err(|source| ServerError::DataDir {
        path: path.to_path_buf(),
        source,
    })?;
    tlschat_fs::check_private_dir(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the options come from the listener (Linux) or are set per
    /// socket, every accepted connection must end up with both.
    #[tokio::test]
    async fn accepted_sockets_get_nodelay_and_keepalive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        configure_listener(&listener);
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        configure_socket(&tcp);
        assert!(tcp.nodelay().unwrap(), "TCP_NODELAY");
        let sock = socket2::SockRef::from(&tcp);
        assert!(sock.keepalive().unwrap(), "SO_KEEPALIVE");
        #[cfg(any(target_os = "linux", target_os = "macos"))]
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(60));
    }
}
