//! The in-process server: `tlschat-server-core` on an ephemeral loopback
//! port with a temporary data directory, its generated certificate for the
//! test's clients to trust, and a graceful stop (asserted by [`TestServer::stop`],
//! begun by `Drop` when a test ends or fails without it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

use tlschat_server_core::clock::ManualClock;
use tlschat_server_core::config::ServerConfig;
use tlschat_server_core::Server;

use super::client::{connect_tls, connect_tls_history, login, login_admin, Client};

pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// The password of the accounts [`data_dir_with_accounts`] makes.
pub const ACCOUNT_PASSWORD: &str = "пароль-密码-🔑";

/// A data directory whose database holds an account for each of `nicks`
/// (password [`ACCOUNT_PASSWORD`]), as `tlschat-server passwd --nick`
/// makes them, for [`TestServer::start_in`].
pub fn data_dir_with_accounts(nicks: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut accounts, _) =
        tlschat_server_core::accounts::open_in(dir.path()).expect("open the database");
    for nick in nicks {
        let nick = tlschat_protocol::Nick::parse(nick).expect("nickname");
        tlschat_server_core::accounts::set_account_password(&mut accounts, &nick, ACCOUNT_PASSWORD)
            .expect("make the account");
    }
    dir
}

/// Where [`TestServer::start_clocked`]'s clock starts: 2026-11-24T14:00:00Z.
pub fn clock_start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_528_800)
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub cert: CertificateDer<'static>,
    /// Taken by [`TestServer::stop`], for a restart on the same data.
    dir: Option<tempfile::TempDir>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts with the defaults (admin password [`ADMIN_PASSWORD`]) after
    /// `tweak` has had its say.
    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, tweak).await
    }

    /// Starts with a [`ManualClock`] at [`clock_start`] as the server's
    /// "now" (returned, for the test to move), sweeping expired bans every
    /// 100 ms.
    pub async fn start_clocked() -> (TestServer, Arc<ManualClock>) {
        Self::start_clocked_in(tempfile::tempdir().expect("temp dir")).await
    }

    /// [`TestServer::start_clocked`] on a data directory the test prepared.
    pub async fn start_clocked_in(dir: tempfile::TempDir) -> (TestServer, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(clock_start()));
        let server = Self::start_in(dir, |c| {
            c.clock = clock.clone();
            c.sweep_every = Duration::from_millis(100);
        })
        .await;
        (server, clock)
    }

    pub async fn start_in(
        dir: tempfile::TempDir,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let mut config = ServerConfig::new(dir.path());
        config.listen = "127.0.0.1:0".parse().expect("loopback address");
        config.admin_password = Some(ADMIN_PASSWORD.into());
        // Every test client comes from 127.0.0.1 and many send fast: the
        // per-address cap and the rate limits are lifted here, the way the
        // docs describe; the abuse tests set them back explicitly.
        config.limits.max_per_address = 0;
        config.limits.rate_limit = 0;
        config.limits.address_rate_limit = 0;
        tweak(&mut config);
        let server = Server::bind(config).await.expect("server binds");
        let addr = server.local_addr();
        let cert = CertificateDer::from_pem_file(&server.info().cert.cert).expect("cert pem");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        TestServer {
            addr,
            cert,
            dir: Some(dir),
            shutdown,
            task: Some(task),
        }
    }

    /// Graceful stop, which must finish within 6 s; returns the data
    /// directory for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.shutdown.cancel();
        let task = self.task.take().expect("the server task, until stop");
        tokio::time::timeout(Duration::from_secs(6), task)
            .await
            .expect("server stops within 6 s")
            .expect("server task")
            .expect("server run");
        self.dir.take().expect("the data directory, until stop")
    }

    /// The server's data directory (its files: `tlschat.db`, `bans.txt`).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir
            .as_ref()
            .expect("the data directory, until stop")
            .path()
    }

    /// A TLS connection (no login yet).
    pub async fn connect(&self) -> Client {
        connect_tls(self.addr, &self.cert).await
    }

    /// Logs in as `nick` and reads `WELCOME`, `JOIN`, `USERS`.
    pub async fn login(&self, nick: &str) -> Client {
        login(self.addr, &self.cert, nick).await
    }

    /// Logs in as `nick` in history mode (ALPN `tlschat/2`, which the
    /// server must select) and reads `WELCOME`, `JOIN`, `USERS`; the
    /// replay comes next.
    pub async fn login_history(&self, nick: &str) -> Client {
        let (mut c, alpn) = connect_tls_history(self.addr, &self.cert, None).await;
        assert_eq!(
            alpn.as_deref(),
            Some(&b"tlschat/2"[..]),
            "history mode selected"
        );
        c.finish_login(nick).await;
        c
    }

    /// Logs in as the account `nick` with [`ACCOUNT_PASSWORD`].
    pub async fn login_account(&self, nick: &str) -> Client {
        let mut c = self.connect().await;
        c.finish_account_login(nick, ACCOUNT_PASSWORD).await;
        c
    }

    /// Logs in as `admin` with [`ADMIN_PASSWORD`].
    pub async fn login_admin(&self) -> Client {
        login_admin(self.addr, &self.cert, ADMIN_PASSWORD).await
    }
}

impl Drop for TestServer {
    /// A test that ends (or fails) without [`TestServer::stop`] leaves no
    /// server accepting behind: shutdown begins here and the task ends
    /// with the test's runtime.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Runs an async test on its own 2-worker runtime, bounded by `limit`, with
/// the server's warnings shown if it fails (for the heavy load and abuse
/// tests, which must not share a runtime).
pub fn run_bounded<F: std::future::Future>(limit: Duration, test: F) -> F::Output {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    runtime().block_on(async {
        tokio::time::timeout(limit, test)
            .await
            .unwrap_or_else(|_| panic!("the test did not finish within {limit:?}"))
    })
}

/// A 2-worker runtime of the test's own: for a test thread that drives
/// child processes and blocks on the async side only now and then, or for
/// a server that must keep running while the test thread waits.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
