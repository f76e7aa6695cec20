//! Shared test harness: a real server on an ephemeral loopback port with a
//! temporary data directory, and a real TLS client that verifies the
//! server's generated certificate.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use tlschat_protocol::connection::Connection;
use tlschat_protocol::{Frame, MAX_SERVER_LINE};
use tlschat_server_core::config::ServerConfig;
use tlschat_server_core::Server;

/// How long a test waits for one expected line before failing.
pub const STEP: Duration = Duration::from_secs(10);
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub cert: CertificateDer<'static>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
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

    pub async fn start_in(
        dir: tempfile::TempDir,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let mut config = ServerConfig::new(dir.path());
        config.listen = "127.0.0.1:0".parse().unwrap();
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
            dir,
            cert,
            shutdown,
            task,
        }
    }

    /// Graceful stop; returns the data directory for a restart.
    pub async fn stop(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(6), self.task)
            .await
            .expect("server stops within 6 s")
            .expect("server task")
            .expect("server run");
        self.dir
    }

    /// A TLS connection (no login yet).
    pub async fn connect(&self) -> Client {
        connect_tls(self.addr, &self.cert).await
    }

    /// Logs in as `nick` and reads `WELCOME`, `JOIN`, `USERS`.
    pub async fn login(&self, nick: &str) -> Client {
        let mut c = self.connect().await;
        c.expect("NICK").await;
        c.send(nick).await;
        c.expect(&format!("WELCOME {nick} #lobby")).await;
        c.expect(&format!("JOIN #lobby {nick}")).await;
        c.expect_prefix("USERS #lobby").await;
        c
    }

    pub async fn login_admin(&self) -> Client {
        let mut c = self.connect().await;
        c.expect("NICK").await;
        c.send("admin").await;
        c.expect("PASS").await;
        c.send(ADMIN_PASSWORD).await;
        c.expect("WELCOME admin #lobby").await;
        c.expect("JOIN #lobby admin").await;
        c.expect_prefix("USERS #lobby").await;
        c
    }
}

pub async fn connect_tls(addr: SocketAddr, cert: &CertificateDer<'static>) -> Client {
    let config = tlschat_server_core::tls::client_config_with_roots(std::slice::from_ref(cert))
        .expect("client config");
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    let tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake verifying the generated certificate");
    Client {
        conn: Connection::new(tls, MAX_SERVER_LINE),
    }
}

pub struct Client {
    conn: Connection<TlsStream<TcpStream>>,
}

impl Client {
    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.conn.write_line(bytes).await.expect("send");
    }

    /// The next line, or `None` once the server closed.
    pub async fn try_recv(&mut self) -> Option<String> {
        match tokio::time::timeout(STEP, self.conn.read_frame()).await {
            Ok(Ok(Some(Frame::Line(l)))) => Some(l),
            Ok(Ok(Some(other))) => panic!("unexpected frame {other:?}"),
            Ok(Ok(None)) | Ok(Err(_)) => None,
            Err(_) => panic!("no line from the server within {STEP:?}"),
        }
    }

    pub async fn recv(&mut self) -> String {
        self.try_recv().await.expect("server closed the connection")
    }

    /// The next line must be exactly `line`.
    pub async fn expect(&mut self, line: &str) {
        let got = self.recv().await;
        assert_eq!(got, line);
    }

    /// The next line must start with `prefix`; returns it.
    pub async fn expect_prefix(&mut self, prefix: &str) -> String {
        let got = self.recv().await;
        assert!(got.starts_with(prefix), "expected `{prefix}…`, got `{got}`");
        got
    }

    /// Skips lines until one starts with `prefix`; returns it.
    pub async fn wait_for(&mut self, prefix: &str) -> String {
        loop {
            let got = self.recv().await;
            if got.starts_with(prefix) {
                return got;
            }
        }
    }

    /// The server closes the connection (after any lines still in flight,
    /// which are returned).
    pub async fn expect_closed(&mut self) -> Vec<String> {
        let mut rest = Vec::new();
        while let Some(l) = self.try_recv().await {
            rest.push(l);
        }
        rest
    }

    /// The server ends the TLS session properly (`close_notify`, then EOF)
    /// with no line before it: a refusal whose last line a reset could not
    /// have destroyed.
    pub async fn expect_clean_close(&mut self) {
        match tokio::time::timeout(STEP, self.conn.read_frame()).await {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(f))) => panic!("expected a clean close, got {f:?}"),
            Ok(Err(e)) => panic!("expected a clean close, got an error: {e}"),
            Err(_) => panic!("no close within {STEP:?}"),
        }
    }

    /// Round trip through the server: everything sent before is processed.
    pub async fn sync(&mut self, token: &str) {
        self.send(&format!("/ping {token}")).await;
        self.wait_for(&format!("PONG {token}")).await;
    }
}

// ---- Added for tests/protocol.rs and tests/load.rs (additions only) ----

/// A TLS connection made from a prepared socket (bound to a source
/// address, a small receive buffer, ...).
pub async fn connect_tls_via(
    socket: tokio::net::TcpSocket,
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
) -> Client {
    let config = tlschat_server_core::tls::client_config_with_roots(std::slice::from_ref(cert))
        .expect("client config");
    let tcp = tokio::time::timeout(STEP, socket.connect(addr))
        .await
        .expect("tcp connect within STEP")
        .expect("tcp connect");
    let tls = tokio::time::timeout(
        STEP,
        TlsConnector::from(config).connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .expect("TLS handshake within STEP")
    .expect("TLS handshake verifying the generated certificate");
    Client {
        conn: Connection::new(tls, MAX_SERVER_LINE),
    }
}

/// A TLS connection whose client socket is bound to `local` (e.g.
/// 127.0.0.2) before connecting.
pub async fn connect_tls_from(
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
    local: std::net::IpAddr,
) -> Client {
    let socket = if local.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .expect("socket");
    socket
        .bind(SocketAddr::new(local, 0))
        .unwrap_or_else(|e| panic!("bind the client socket to {local}: {e}"));
    connect_tls_via(socket, addr, cert).await
}

/// A TLS connection with a small kernel receive buffer, so that a client
/// that stops reading fills its socket quickly.
pub async fn connect_tls_small_rcvbuf(addr: SocketAddr, cert: &CertificateDer<'static>) -> Client {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    connect_tls_via(socket, addr, cert).await
}

/// [`TestServer::login`] without a `TestServer` borrow, for spawned tasks.
pub async fn login_at(addr: SocketAddr, cert: &CertificateDer<'static>, nick: &str) -> Client {
    let mut c = connect_tls(addr, cert).await;
    c.finish_login(nick).await;
    c
}

impl Client {
    /// On a fresh connection: reads `NICK`, answers `nick`, reads `WELCOME`
    /// and `JOIN` and returns the `USERS` line.
    pub async fn finish_login(&mut self, nick: &str) -> String {
        self.expect("NICK").await;
        self.send(nick).await;
        self.expect(&format!("WELCOME {nick} #lobby")).await;
        self.expect(&format!("JOIN #lobby {nick}")).await;
        self.expect_prefix("USERS #lobby").await
    }

    /// Nothing is pending for this client: the answer to a `/ping` is the
    /// very next line. (Anything the server queued to this client before
    /// the ping would arrive first.)
    pub async fn expect_quiet(&mut self, token: &str) {
        self.send(&format!("/ping {token}")).await;
        let got = self.recv().await;
        assert_eq!(
            got,
            format!("PONG {token}"),
            "expected nothing but the PONG, got another line first"
        );
    }

    /// The next line, or `None` if nothing arrives within `limit` (the
    /// connection may be closed: `Some(None)`).
    pub async fn recv_within(&mut self, limit: Duration) -> Option<Option<String>> {
        match tokio::time::timeout(limit, self.conn.read_frame()).await {
            Ok(Ok(Some(Frame::Line(l)))) => Some(Some(l)),
            Ok(Ok(Some(other))) => panic!("unexpected frame {other:?}"),
            Ok(Ok(None)) | Ok(Err(_)) => Some(None),
            Err(_) => None,
        }
    }
}

// ---- Added for tests/abuse.rs and tests/crash_safety.rs (additions only) ----

impl Client {
    /// Orderly close of the write side only: TLS `close_notify`, then a
    /// TCP FIN. The read side stays open.
    pub async fn shutdown_write(&mut self) {
        tokio::time::timeout(STEP, self.conn.shutdown())
            .await
            .expect("shutdown within STEP")
            .expect("shutdown the write side");
    }
}

/// A bare TLS stream (no line wrapper), for tests that need the stream or
/// the TCP socket underneath it; from `local` if given (e.g. 127.0.0.2).
pub async fn tls_stream(
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
    local: Option<std::net::IpAddr>,
) -> TlsStream<TcpStream> {
    let config = tlschat_server_core::tls::client_config_with_roots(std::slice::from_ref(cert))
        .expect("client config");
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .expect("socket");
    if let Some(local) = local {
        socket
            .bind(SocketAddr::new(local, 0))
            .unwrap_or_else(|e| panic!("bind the client socket to {local}: {e}"));
    }
    let tcp = tokio::time::timeout(STEP, socket.connect(addr))
        .await
        .expect("tcp connect within STEP")
        .expect("tcp connect");
    tokio::time::timeout(
        STEP,
        TlsConnector::from(config).connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .expect("TLS handshake within STEP")
    .expect("TLS handshake verifying the generated certificate")
}

/// Reads server lines from any stream (a bare TLS stream, a read half),
/// each bounded by `STEP`; `None` at EOF or a read error (a reset counts as
/// a close). Invalid UTF-8 from the server fails the test.
pub struct Lines<R> {
    reader: tlschat_protocol::connection::LineReader<R>,
}

impl<R: tokio::io::AsyncRead + Unpin> Lines<R> {
    pub fn new(reader: R) -> Lines<R> {
        Lines {
            reader: tlschat_protocol::connection::LineReader::new(reader, MAX_SERVER_LINE),
        }
    }

    pub async fn next(&mut self) -> Option<String> {
        match tokio::time::timeout(STEP, self.reader.read_frame()).await {
            Ok(Ok(Some(Frame::Line(l)))) => Some(l),
            Ok(Ok(Some(other))) => panic!("unexpected frame {other:?}"),
            Ok(Ok(None)) | Ok(Err(_)) => None,
            Err(_) => panic!("no line from the server within {STEP:?}"),
        }
    }

    pub async fn expect(&mut self, line: &str) {
        let got = self.next().await;
        assert_eq!(got.as_deref(), Some(line));
    }

    /// Every line until the server closes.
    pub async fn rest(&mut self) -> Vec<String> {
        let mut rest = Vec::new();
        while let Some(l) = self.next().await {
            rest.push(l);
        }
        rest
    }

    pub fn get_mut(&mut self) -> &mut R {
        self.reader.get_mut()
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
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            tokio::time::timeout(limit, test)
                .await
                .unwrap_or_else(|_| panic!("the test did not finish within {limit:?}"))
        })
}
