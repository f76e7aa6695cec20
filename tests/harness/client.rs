//! The test's end of a TLS connection to a tlschat server (in-process or
//! the real binary): the one connect helper, the one login sequence, and
//! line expectations each bounded by [`STEP`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use tlschat_protocol::connection::{Connection, LineReader};
use tlschat_protocol::{Frame, MAX_SERVER_LINE};

/// How long a test waits for one expected line (or one connect step)
/// before failing.
pub const STEP: Duration = Duration::from_secs(10);

/// tlschat's own client configuration, trusting only `cert`.
pub fn trusting(cert: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    tlschat_server_core::tls::client_config_with_roots(std::slice::from_ref(cert))
        .expect("client config")
}

/// [`trusting`] that also offers ALPN `tlschat/2`: a history-mode client.
pub fn trusting_for_history(cert: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut config = (*trusting(cert)).clone();
    config.alpn_protocols = vec![tlschat_protocol::history::HISTORY_ALPN.to_vec()];
    Arc::new(config)
}

/// A TLS connection (no login yet) in history mode, from `local` if given;
/// also the ALPN protocol the server selected.
pub async fn connect_tls_history(
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
    local: Option<IpAddr>,
) -> (Client, Option<Vec<u8>>) {
    let tls = tls_connect(socket_for(addr, local), addr, trusting_for_history(cert))
        .await
        .expect("TLS handshake offering tlschat/2");
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    (Client::new(tls), alpn)
}

/// A socket of `addr`'s family, bound to `local` first if given (e.g.
/// 127.0.0.2, for tests of per-address limits).
pub fn socket_for(addr: SocketAddr, local: Option<IpAddr>) -> TcpSocket {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .expect("socket");
    if let Some(local) = local {
        socket
            .bind(SocketAddr::new(local, 0))
            .unwrap_or_else(|e| panic!("bind the client socket to {local}: {e}"));
    }
    socket
}

/// The one TLS connect of the tests: `socket` (prepared by the caller) to
/// `addr` with `config`, naming the server `localhost` as its generated
/// certificate does; the TCP connect and the handshake each bounded by
/// [`STEP`]. The error is returned for tests of refusals.
pub async fn tls_connect(
    socket: TcpSocket,
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let timed_out = |what: &str| std::io::Error::new(std::io::ErrorKind::TimedOut, what);
    let tcp = tokio::time::timeout(STEP, socket.connect(addr))
        .await
        .map_err(|_| timed_out("tcp connect within STEP"))??;
    let name = ServerName::try_from("localhost").expect("server name");
    tokio::time::timeout(STEP, TlsConnector::from(config).connect(name, tcp))
        .await
        .map_err(|_| timed_out("TLS handshake within STEP"))?
}

/// A bare TLS stream (no line wrapper), for tests that need the stream or
/// the TCP socket underneath it; from `local` if given (e.g. 127.0.0.2).
pub async fn tls_stream(
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
    local: Option<IpAddr>,
) -> TlsStream<TcpStream> {
    tls_connect(socket_for(addr, local), addr, trusting(cert))
        .await
        .expect("TLS handshake verifying the generated certificate")
}

/// A TLS connection (no login yet) verifying the server's certificate.
pub async fn connect_tls(addr: SocketAddr, cert: &CertificateDer<'static>) -> Client {
    Client::new(tls_stream(addr, cert, None).await)
}

/// A TLS connection whose client socket is bound to `local` (e.g.
/// 127.0.0.2) before connecting.
pub async fn connect_tls_from(
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
    local: IpAddr,
) -> Client {
    Client::new(tls_stream(addr, cert, Some(local)).await)
}

/// A TLS connection made from a prepared socket (bound to a source
/// address, a small receive buffer, ...).
pub async fn connect_tls_via(
    socket: TcpSocket,
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
) -> Client {
    let tls = tls_connect(socket, addr, trusting(cert))
        .await
        .expect("TLS handshake verifying the generated certificate");
    Client::new(tls)
}

/// A TLS connection with a small kernel receive buffer, so that a client
/// that stops reading fills its socket quickly.
pub async fn connect_tls_small_rcvbuf(addr: SocketAddr, cert: &CertificateDer<'static>) -> Client {
    let socket = socket_for(addr, None);
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    connect_tls_via(socket, addr, cert).await
}

/// Connects and logs in as `nick` (reads `WELCOME`, `JOIN`, `USERS`).
pub async fn login(addr: SocketAddr, cert: &CertificateDer<'static>, nick: &str) -> Client {
    let mut c = connect_tls(addr, cert).await;
    c.finish_login(nick).await;
    c
}

/// Connects and logs in as `admin` with `password`.
pub async fn login_admin(
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
    password: &str,
) -> Client {
    let mut c = connect_tls(addr, cert).await;
    c.finish_admin_login(password).await;
    c
}

/// Connects and tries `admin` with `password`; returns the line answering
/// the password (`WELCOME admin #lobby` or `REFUSE …`) and the connection.
pub async fn admin_attempt(
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
    password: &str,
) -> (String, Client) {
    let mut c = connect_tls(addr, cert).await;
    c.expect("NICK").await;
    c.send("admin").await;
    c.expect("PASS").await;
    c.send(password).await;
    let answer = c.recv().await;
    (answer, c)
}

/// One TLS connection, seen as the server's lines.
pub struct Client {
    conn: Connection<TlsStream<TcpStream>>,
}

impl Client {
    pub fn new(tls: TlsStream<TcpStream>) -> Client {
        Client {
            conn: Connection::new(tls, MAX_SERVER_LINE),
        }
    }

    /// On a fresh connection: reads `NICK`, answers `nick`, reads `WELCOME`
    /// and `JOIN` and returns the `USERS` line.
    pub async fn finish_login(&mut self, nick: &str) -> String {
        self.expect("NICK").await;
        self.send(nick).await;
        self.expect_joined(nick).await
    }

    /// On a fresh connection: logs in as `admin` with `password` and
    /// returns the `USERS` line.
    pub async fn finish_admin_login(&mut self, password: &str) -> String {
        self.expect("NICK").await;
        self.send("admin").await;
        self.expect("PASS").await;
        self.send(password).await;
        self.expect_joined("admin").await
    }

    /// On a fresh connection: logs in as the account `nick` with
    /// `password` and returns the `USERS` line.
    pub async fn finish_account_login(&mut self, nick: &str, password: &str) -> String {
        self.expect("NICK").await;
        self.send(nick).await;
        self.expect("PASS").await;
        self.send(password).await;
        self.expect_joined(nick).await
    }

    /// `WELCOME nick #lobby`, `JOIN #lobby nick`, then the `USERS` line
    /// (returned).
    async fn expect_joined(&mut self, nick: &str) -> String {
        self.expect(&format!("WELCOME {nick} #lobby")).await;
        self.expect(&format!("JOIN #lobby {nick}")).await;
        self.expect_prefix("USERS #lobby").await
    }

    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.conn.write_line(bytes).await.expect("send");
    }

    /// The next line, or `None` once the server closed.
    pub async fn try_recv(&mut self) -> Option<String> {
        match self.recv_within(STEP).await {
            Some(line) => line,
            None => panic!("no line from the server within {STEP:?}"),
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

    /// Orderly close of the write side only: TLS `close_notify`, then a
    /// TCP FIN. The read side stays open.
    pub async fn shutdown_write(&mut self) {
        tokio::time::timeout(STEP, self.conn.shutdown())
            .await
            .expect("shutdown within STEP")
            .expect("shutdown the write side");
    }
}

/// Reads server lines from any stream (a bare TLS stream, a read half),
/// each bounded by `STEP`; `None` at EOF or a read error (a reset counts as
/// a close). Invalid UTF-8 from the server fails the test.
pub struct Lines<R> {
    reader: LineReader<R>,
}

impl<R: tokio::io::AsyncRead + Unpin> Lines<R> {
    pub fn new(reader: R) -> Lines<R> {
        Lines {
            reader: LineReader::new(reader, MAX_SERVER_LINE),
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
