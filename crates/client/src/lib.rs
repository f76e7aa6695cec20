//! tlschat-client-core: everything a tlschat client does that is not
//! drawing, shared by plain mode, the terminal UI and (next) a GUI.
//!
//! ```text
//! establish(): TCP → TLS (trust.rs decides, known_hosts updated) → Trusted
//! Trusted::login(): NICK/PASS → WELCOME → Connected       (connect() = both)
//! start(Connected): session task ──ClientEvent──▶ front end (ChatState::apply)
//!                        ▲
//!                        └──────── ClientHandle::send(line) ◀── user input
//! ```
//!
//! [`connect`] makes the first connection while the front end can still
//! ask the user things (unknown certificate, password) through a
//! [`Prompter`]. [`start`] hands that connection to a task that relays lines
//! both ways, sends a keepalive `/ping` after a quiet minute, and on a lost
//! connection reconnects with backoff (never after `REFUSE`, `BAN`, `KICK`
//! or a protocol error), rejoining the room the user was in.
//!
//! The server is not trusted to behave: the login answers each prompt at
//! most once (the password is sent once per connection) and accepts only a
//! `WELCOME` for the nickname it sent, into the lobby; a second `WELCOME`
//! ends the session; every write to the socket runs under the session's
//! deadlines, so a server that stops reading cannot hang the client; what
//! reaches the front end is bounded (see [`EVENT_QUEUE`] and `state`), and
//! every server text in an error is passed through [`render::sanitize`].

#![warn(clippy::string_slice)]

pub mod render;
pub mod state;
pub mod trust;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::trust::{Added, KnownHosts, Outcome, Trust, TrustError, Verdict};
use tlschat_protocol::connection::{Connection, CutOffLine};
use tlschat_protocol::Fingerprint;
use tlschat_protocol::{
    check_text, Command, ErrorCode, Frame, RoomName, ServerLine, DEFAULT_PORT, LOBBY,
    MAX_SERVER_LINE,
};

pub use state::{ChatState, KEEPALIVE_TOKEN};

/// Exit codes of the `tlschat` binary, documented in `--help` and README.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const TRUST: u8 = 3;
    pub const REFUSED: u8 = 4;
}

/// `HOST[:PORT]`, with IPv6 as `[::1]:55555` (or a bare `::1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl FromStr for HostPort {
    type Err = String;
    fn from_str(s: &str) -> Result<HostPort, String> {
        let bad_port = |p: &str| format!("bad port `{p}` in `{s}`: a number from 1 to 65535");
        let port_of = |p: &str| match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad_port(p)),
            Ok(n) => Ok(n),
        };
        if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("`{s}`: missing `]` after an IPv6 address"))?;
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| format!("`{host}` is not an IPv6 address"))?;
            let port = match after {
                "" => DEFAULT_PORT,
                p => port_of(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("`{s}`: expected `:PORT` after `]`"))?,
                )?,
            };
            return Ok(HostPort {
                host: host.to_owned(),
                port,
            });
        }
        if s.parse::<std::net::Ipv6Addr>().is_ok() {
            return Ok(HostPort {
                host: s.to_owned(),
                port: DEFAULT_PORT,
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, port_of(p)?),
            None => (s, DEFAULT_PORT),
        };
        if host.is_empty() {
            return Err(format!("`{s}`: no host name"));
        }
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Everything a connection needs; reused by every reconnect. Its `Debug`
/// never shows the password.
#[derive(Clone)]
pub struct ClientOptions {
    pub server: HostPort,
    pub nick: String,
    /// For a server that answers `PASS`. Kept for reconnects.
    pub password: Option<String>,
    pub trust: Trust,
    /// TOFU: add an unknown host without asking (never replaces one).
    pub accept_new: bool,
    pub connect_timeout: Duration,
    /// Silence after which the client sends `/ping`.
    pub keepalive: Duration,
    /// How long a keepalive `/ping` may go unanswered.
    pub pong_timeout: Duration,
    /// Reconnect after a lost connection.
    pub reconnect: bool,
}

impl ClientOptions {
    pub fn new(server: HostPort, nick: impl Into<String>, trust: Trust) -> ClientOptions {
        ClientOptions {
            server,
            nick: nick.into(),
            password: None,
            trust,
            accept_new: false,
            connect_timeout: Duration::from_secs(15),
            keepalive: Duration::from_secs(60),
            pong_timeout: Duration::from_secs(30),
            reconnect: true,
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ClientOptions {
            server,
            nick,
            password,
            trust,
            accept_new,
            connect_timeout,
            keepalive,
            pong_timeout,
            reconnect,
        } = self;
        f.debug_struct("ClientOptions")
            .field("server", server)
            .field("nick", nick)
            .field("password", &password.as_ref().map(|_| Redacted))
            .field("trust", trust)
            .field("accept_new", accept_new)
            .field("connect_timeout", connect_timeout)
            .field("keepalive", keepalive)
            .field("pong_timeout", pong_timeout)
            .field("reconnect", reconnect)
            .finish()
    }
}

/// Stands in for a secret in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Questions only a person can answer, asked during [`connect`].
pub trait Prompter: Send {
    /// An unknown server: trust this certificate from now on?
    fn confirm_new_host(&mut self, server: &str, fingerprint: &Fingerprint) -> bool;
    /// The server wants a password for `nick`.
    fn password(&mut self, nick: &str) -> Option<String>;
}

/// Why a connection could not be made; [`ConnectError::exit_code`] maps it
/// to the documented exit codes.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot find host {host}: {source}; check the name")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {server}: {source}; is the server running and its port open?")]
    Connect {
        server: String,
        source: std::io::Error,
    },
    #[error("{what} with {server} timed out after {secs} s; check the address and that the port is open")]
    Timeout {
        server: String,
        what: &'static str,
        secs: u64,
    },
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Untrusted(String),
    #[error("{0}")]
    TrustSetup(#[from] TrustError),
    #[error("the server refused the login: {0}")]
    Refused(String),
    #[error("banned: {0}")]
    Banned(String),
    #[error("nickname not accepted: {0}")]
    Nick(String),
    #[error("the server asks a password for {0}; set TLSCHAT_PASSWORD, pass --password-file, or run in a terminal to be asked")]
    NoPassword(String),
    #[error("the server said: {0}")]
    Server(String),
    #[error("the server closed the connection during login")]
    Closed,
    /// The server said something the protocol does not allow; the text
    /// quotes it sanitized.
    #[error("protocol error: {0}; disconnected")]
    Protocol(String),
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

impl ConnectError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ConnectError::Untrusted(_) | ConnectError::TrustSetup(_) => exit::TRUST,
            ConnectError::Refused(_) | ConnectError::Banned(_) => exit::REFUSED,
            _ => exit::ERROR,
        }
    }

    /// Worth retrying after a lost connection (a network hiccup, a
    /// nickname still held by our own dead session), as opposed to a
    /// decision (refused, banned, untrusted).
    fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectError::Resolve { .. }
                | ConnectError::Connect { .. }
                | ConnectError::Timeout { .. }
                | ConnectError::Nick(_)
                | ConnectError::Server(_)
                | ConnectError::Closed
                | ConnectError::Io(_)
        )
    }
}

/// A TLS connection whose certificate is trusted; nothing sent on it yet.
pub struct Trusted {
    conn: Connection<TlsStream<TcpStream>>,
    pub fingerprint: Fingerprint,
    pub verdict: Verdict,
    /// The known_hosts file this connection's certificate was added to
    /// (TOFU, an unknown host accepted); `None` if nothing was stored.
    pub stored_in: Option<PathBuf>,
}

impl fmt::Debug for Trusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trusted")
            .field("fingerprint", &self.fingerprint)
            .field("verdict", &self.verdict)
            .field("stored_in", &self.stored_in)
            .finish()
    }
}

/// A logged-in connection.
pub struct Connected {
    conn: Connection<TlsStream<TcpStream>>,
    pub nick: String,
    pub room: String,
    pub fingerprint: Fingerprint,
    pub verdict: Verdict,
    /// What TLS negotiated, e.g. `TLS 1.3, X25519MLKEM768`.
    pub tls: String,
}

impl fmt::Debug for Connected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connected")
            .field("nick", &self.nick)
            .field("room", &self.room)
            .field("fingerprint", &self.fingerprint)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The protocol version and key exchange group a TLS session negotiated,
/// for the user to see (whether the session is post-quantum, for one).
fn describe_tls(session: &rustls::ClientConnection) -> String {
    let version = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => "TLS".to_owned(),
    };
    match session.negotiated_key_exchange_group() {
        Some(group) => format!("{version}, {:?}", group.name()),
        None => version,
    }
}

/// Connects, establishes trust and logs in: [`establish`], then
/// [`Trusted::login`].
pub async fn connect<'p>(
    opts: &ClientOptions,
    mut prompter: Option<&mut (dyn Prompter + 'p)>,
) -> Result<Connected, ConnectError> {
    let trusted = establish(opts, prompter.as_deref_mut()).await?;
    trusted.login(opts, prompter).await
}

/// Connects and establishes trust; an unknown host accepted under TOFU is
/// stored in known_hosts here, before anything is sent, whatever the login
/// then brings ([`Trusted::stored_in`] says so).
pub async fn establish<'p>(
    opts: &ClientOptions,
    prompter: Option<&mut (dyn Prompter + 'p)>,
) -> Result<Trusted, ConnectError> {
    let server = opts.server.to_string();
    let (config, outcome_slot) = trust::client_config(&opts.trust)?;
    let tcp = tcp_connect(opts).await?;
    let name = match opts.server.host.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(opts.server.host.clone()).map_err(|_| {
            ConnectError::Tls(format!("`{}` is not a valid host name", opts.server.host))
        })?,
    };
    let handshake = TlsConnector::from(config).connect(name, tcp);
    let tls = match timeout(opts.connect_timeout, handshake).await {
        Err(_) => {
            return Err(ConnectError::Timeout {
                server,
                what: "the TLS handshake",
                secs: opts.connect_timeout.as_secs(),
            })
        }
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let outcome = outcome_slot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            return Err(tls_failure(&e, outcome.as_ref(), opts));
        }
    };
    let outcome = outcome_slot
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| ConnectError::Tls("the server presented no certificate".into()))?;
    let stored_in = if outcome.verdict == Verdict::Unknown {
        decide_unknown(opts, &outcome, prompter)?
    } else {
        None
    };
    Ok(Trusted {
        conn: Connection::new(tls, MAX_SERVER_LINE).complete_lines_only(),
        fingerprint: outcome.fingerprint,
        verdict: outcome.verdict,
        stored_in,
    })
}

impl Trusted {
    /// Logs in (nickname, password if asked), within twice the connect
    /// timeout.
    pub async fn login<'p>(
        mut self,
        opts: &ClientOptions,
        prompter: Option<&mut (dyn Prompter + 'p)>,
    ) -> Result<Connected, ConnectError> {
        let (nick, room) = match timeout(
            opts.connect_timeout * 2,
            login(opts, &mut self.conn, prompter),
        )
        .await
        {
            Ok(r) => r?,
            Err(_) => {
                return Err(ConnectError::Timeout {
                    server: opts.server.to_string(),
                    what: "the login",
                    secs: opts.connect_timeout.as_secs() * 2,
                })
            }
        };
        let tls = describe_tls(self.conn.get_ref().get_ref().1);
        Ok(Connected {
            conn: self.conn,
            nick,
            room,
            fingerprint: self.fingerprint,
            verdict: self.verdict,
            tls,
        })
    }
}

async fn tcp_connect(opts: &ClientOptions) -> Result<TcpStream, ConnectError> {
    let server = opts.server.to_string();
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((opts.server.host.as_str(), opts.server.port))
            .await
            .map_err(|source| ConnectError::Resolve {
                host: opts.server.host.clone(),
                source,
            })?
            .collect();
    let mut last = None;
    for addr in addrs {
        match timeout(opts.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Ok(Err(e)) => {
                last = Some(ConnectError::Connect {
                    server: server.clone(),
                    source: e,
                })
            }
            Err(_) => {
                last = Some(ConnectError::Timeout {
                    server: server.clone(),
                    what: "connecting",
                    secs: opts.connect_timeout.as_secs(),
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| ConnectError::Resolve {
        host: opts.server.host.clone(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"),
    }))
}

fn tls_failure(
    e: &std::io::Error,
    outcome: Option<&Outcome>,
    opts: &ClientOptions,
) -> ConnectError {
    let server = opts.server.to_string();
    if let Some(Outcome {
        fingerprint,
        verdict: Verdict::Changed { known },
    }) = outcome
    {
        let Trust::Tofu { known_hosts, key } = &opts.trust else {
            return ConnectError::Untrusted(format!(
                "the certificate of {server} does not match --fingerprint: expected {known}, got {fingerprint}; \
                 check the fingerprint with the operator (tlschat-server fingerprint)"
            ));
        };
        let fix = format!(
            "If the operator confirms the server's new certificate {fingerprint}, remove the line for {key} from {} and connect again.",
            known_hosts.display()
        );
        return ConnectError::Untrusted(format!(
            "WARNING: THE CERTIFICATE OF {server} HAS CHANGED!\n\
             Someone could be intercepting your connection, or the server's certificate was replaced.\n\
             expected: {known}\n     got: {fingerprint}\n{fix}"
        ));
    }
    let rustls_err = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_err {
        Some(err @ rustls::Error::InvalidCertificate(_)) => {
            ConnectError::Untrusted(trust::explain_tls_error(err, outcome, &server))
        }
        Some(rustls::Error::InvalidMessage(_) | rustls::Error::PeerSentOversizedRecord) => {
            ConnectError::Tls(format!(
                "{server} did not answer with TLS; is it a tlschat server, and is the port right?"
            ))
        }
        Some(err) => ConnectError::Tls(trust::explain_tls_error(err, outcome, &server)),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => ConnectError::Tls(format!(
            "{server} closed the connection during the TLS handshake; is it a tlschat server?"
        )),
        None => ConnectError::Tls(format!(
            "TLS handshake with {server} failed: {}",
            render::sanitize(&e.to_string())
        )),
    }
}

/// TOFU for a host not in known_hosts: `--accept-new`, or ask a person.
/// The known_hosts file the host was added to, if this call added it.
fn decide_unknown<'p>(
    opts: &ClientOptions,
    outcome: &Outcome,
    prompter: Option<&mut (dyn Prompter + 'p)>,
) -> Result<Option<PathBuf>, ConnectError> {
    let Trust::Tofu { known_hosts, key } = &opts.trust else {
        return Err(ConnectError::Untrusted("unexpected trust outcome".into()));
    };
    let server = opts.server.to_string();
    let accepted = if opts.accept_new {
        true
    } else if let Some(p) = prompter {
        p.confirm_new_host(&server, &outcome.fingerprint)
    } else {
        return Err(ConnectError::Untrusted(format!(
            "{server} is not a known host (certificate {}) and there is no terminal to ask; \
             check the fingerprint with the operator, then pass --fingerprint {} or --accept-new",
            outcome.fingerprint, outcome.fingerprint
        )));
    };
    if !accepted {
        return Err(ConnectError::Untrusted(format!(
            "certificate of {server} not accepted; nothing was sent"
        )));
    }
    let mut kh = KnownHosts::load(known_hosts)?;
    match kh.add(key, outcome.fingerprint)? {
        Added::New => Ok(Some(known_hosts.clone())),
        Added::Present(fp) if fp == outcome.fingerprint => Ok(None),
        // Another tlschat stored this host between our handshake and now,
        // with another certificate: the same alarm as a changed one.
        Added::Present(known) => Err(ConnectError::Untrusted(format!(
            "{key} was just added to {} with certificate {known}, but this connection \
             presented {}; someone could be intercepting one of the connections. \
             Nothing was sent; check the fingerprint with the operator.",
            known_hosts.display(),
            outcome.fingerprint
        ))),
    }
}

/// NICK → nickname, PASS → password, until WELCOME. Each prompt is
/// answered at most once: the real server asks again only after an
/// `ERROR`, which ends the login here, so a repeated prompt is a server
/// fishing for a second copy.
async fn login<'p>(
    opts: &ClientOptions,
    conn: &mut Connection<TlsStream<TcpStream>>,
    mut prompter: Option<&mut (dyn Prompter + 'p)>,
) -> Result<(String, String), ConnectError> {
    let mut password = opts.password.clone();
    let mut nick_sent = false;
    let mut password_sent = false;
    loop {
        let line = match conn.read_frame().await? {
            Some(Frame::Line(l)) => l,
            Some(_) => continue,
            None => return Err(ConnectError::Closed),
        };
        match ServerLine::parse(&line) {
            ServerLine::Nick => {
                if nick_sent {
                    return Err(ConnectError::Protocol(
                        "the server asked for the nickname again (NICK twice, no error between)"
                            .into(),
                    ));
                }
                nick_sent = true;
                conn.write_line(format!("{}\n", opts.nick).as_bytes())
                    .await?
            }
            ServerLine::Pass => {
                if password_sent {
                    return Err(ConnectError::Protocol(
                        "the server asked for the password again (PASS twice); \
                         it is sent once per connection and was not sent again"
                            .into(),
                    ));
                }
                if password.is_none() {
                    password = prompter.as_deref_mut().and_then(|p| p.password(&opts.nick));
                }
                let Some(pw) = &password else {
                    return Err(ConnectError::NoPassword(opts.nick.clone()));
                };
                password_sent = true;
                conn.write_line(format!("{pw}\n").as_bytes()).await?;
            }
            ServerLine::Welcome { nick, room } => {
                check_welcome(opts, nick_sent, nick, room)?;
                return Ok((nick.to_owned(), room.to_owned()));
            }
            ServerLine::Refuse(r) => {
                return Err(ConnectError::Refused(render::sanitize(r).into_owned()))
            }
            ServerLine::Ban(r) => {
                return Err(ConnectError::Banned(render::sanitize(r).into_owned()))
            }
            ServerLine::Error { code, text } => {
                let text = render::sanitize(text).into_owned();
                return Err(match code {
                    ErrorCode::NickInvalid | ErrorCode::NickTaken => ConnectError::Nick(text),
                    _ => ConnectError::Server(format!("{code} {text}")),
                });
            }
            _ => {}
        }
    }
}

/// A `WELCOME` must answer our nickname and put us in the lobby, as the
/// protocol says; anything else is not obeyed.
fn check_welcome(
    opts: &ClientOptions,
    nick_sent: bool,
    nick: &str,
    room: &str,
) -> Result<(), ConnectError> {
    if !nick_sent {
        return Err(ConnectError::Protocol(
            "the server sent WELCOME before asking for a nickname".into(),
        ));
    }
    if !nick.eq_ignore_ascii_case(&opts.nick) {
        return Err(ConnectError::Protocol(format!(
            "WELCOME names the nickname `{}`, not `{}`",
            render::sanitize(nick),
            opts.nick
        )));
    }
    if !room.eq_ignore_ascii_case(LOBBY) {
        return Err(ConnectError::Protocol(format!(
            "WELCOME names the room `{}`; a login always enters {LOBBY}",
            render::sanitize(room)
        )));
    }
    Ok(())
}

// ---- the session ---------------------------------------------------------------

/// What the session tells the front end.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// Logged in (first time, or again after a reconnect).
    Connected {
        server: String,
        nick: String,
        fingerprint: Fingerprint,
        /// What TLS negotiated, e.g. `TLS 1.3, X25519MLKEM768`.
        tls: String,
    },
    /// A server line, after login.
    Line(String),
    /// The connection was lost; trying again after `delay`.
    Reconnecting {
        reason: String,
        delay: Duration,
        attempt: u32,
    },
    /// The session is over; nothing follows.
    Closed(CloseReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    Quit,
    Refused(String),
    Banned(String),
    Kicked { by: String, reason: String },
    Untrusted(String),
    Error(String),
}

impl CloseReason {
    pub fn exit_code(&self) -> u8 {
        match self {
            CloseReason::Quit => exit::OK,
            CloseReason::Refused(_) | CloseReason::Banned(_) | CloseReason::Kicked { .. } => {
                exit::REFUSED
            }
            CloseReason::Untrusted(_) => exit::TRUST,
            CloseReason::Error(_) => exit::ERROR,
        }
    }

    fn from_error(e: ConnectError) -> CloseReason {
        match e {
            ConnectError::Refused(r) => CloseReason::Refused(r),
            ConnectError::Banned(r) => CloseReason::Banned(r),
            e if e.exit_code() == exit::TRUST => CloseReason::Untrusted(e.to_string()),
            e => CloseReason::Error(e.to_string()),
        }
    }
}

/// Sends user lines to the session. Dropping every handle ends the session
/// as `/quit` would.
#[derive(Debug, Clone)]
pub struct ClientHandle {
    tx: mpsc::Sender<String>,
}

impl ClientHandle {
    /// Queues one line (a message or a command) for the server.
    pub async fn send(&self, line: impl Into<String>) -> bool {
        self.tx.send(line.into()).await.is_ok()
    }

    /// The same without waiting, for UI threads; false if the queue is full
    /// or the session is over.
    pub fn try_send(&self, line: impl Into<String>) -> bool {
        self.tx.try_send(line.into()).is_ok()
    }
}

/// How many events may wait for the front end. A server line is at most
/// [`MAX_SERVER_LINE`] (1 MiB), so this bounds what a fast server can make
/// the client hold in flight (32 MiB) while the front end catches up.
pub const EVENT_QUEUE: usize = 32;

/// Bytes of user lines the session holds for a server that is slow to read;
/// past it, user input waits (back-pressure up to the [`ClientHandle`]).
const OUTGOING_BYTES: usize = 64 * 1024;

/// How long `/quit` waits for the server to close the connection.
const QUIT_WAIT: Duration = Duration::from_secs(5);

/// Starts the session task on the current tokio runtime.
pub fn start(opts: ClientOptions, first: Connected) -> (ClientHandle, mpsc::Receiver<ClientEvent>) {
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    tokio::spawn(session(opts, first, cmd_rx, ev_tx));
    (ClientHandle { tx: cmd_tx }, ev_rx)
}

/// How a connection's life ended.
enum End {
    Quit,
    Kicked {
        by: String,
        reason: String,
    },
    Lost(String),
    /// The server broke the protocol: no reconnect (it would do it again).
    Protocol(String),
}

/// A kick whose reason marks a ban (`banned` or `banned: <reason>`, see
/// docs/protocol.md): the reason without that prefix, which the front end
/// shows after its own "banned".
fn ban_reason(kick_reason: &str) -> Option<&str> {
    if kick_reason == "banned" {
        return Some("");
    }
    kick_reason
        .strip_prefix("banned:")
        .map(|rest| rest.trim_start_matches(' '))
}

async fn session(
    opts: ClientOptions,
    first: Connected,
    mut commands: mpsc::Receiver<String>,
    events: mpsc::Sender<ClientEvent>,
) {
    let server = opts.server.to_string();
    let mut conn = first;
    let mut room = conn.room.clone();
    loop {
        let _ = events
            .send(ClientEvent::Connected {
                server: server.clone(),
                nick: conn.nick.clone(),
                fingerprint: conn.fingerprint,
                tls: conn.tls.clone(),
            })
            .await;
        let end = run_connection(&opts, conn, &mut room, &mut commands, &events).await;
        let reason = match end {
            End::Quit => return close(&events, CloseReason::Quit).await,
            End::Kicked { by, reason } => {
                let why = match ban_reason(&reason) {
                    Some(r) => CloseReason::Banned(r.to_owned()),
                    None => CloseReason::Kicked { by, reason },
                };
                return close(&events, why).await;
            }
            End::Protocol(what) => {
                let e = ConnectError::Protocol(what);
                return close(&events, CloseReason::Error(e.to_string())).await;
            }
            End::Lost(reason) if !opts.reconnect => {
                return close(&events, CloseReason::Error(reason)).await
            }
            End::Lost(reason) => reason,
        };
        conn = match reconnect(&opts, reason, &mut commands, &events).await {
            Some(c) => c,
            None => return,
        };
    }
}

async fn close(events: &mpsc::Sender<ClientEvent>, reason: CloseReason) {
    let _ = events.send(ClientEvent::Closed(reason)).await;
}

/// Backoff 1 s doubling to 30 s, ±20 % jitter, until a connection is back
/// or a decision (refused, banned, untrusted, user quit) ends the session.
async fn reconnect(
    opts: &ClientOptions,
    mut reason: String,
    commands: &mut mpsc::Receiver<String>,
    events: &mpsc::Sender<ClientEvent>,
) -> Option<Connected> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let delay = backoff(attempt);
        let _ = events
            .send(ClientEvent::Reconnecting {
                reason: reason.clone(),
                delay,
                attempt,
            })
            .await;
        let wake = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                cmd = commands.recv() => match cmd {
                    None => return None,
                    Some(line) if is_quit(&line) => {
                        close(events, CloseReason::Quit).await;
                        return None;
                    }
                    Some(_) => {
                        let _ = events.send(ClientEvent::Line(
                            "ERROR timeout not connected: the line was not sent".into(),
                        )).await;
                    }
                },
            }
        }
        match connect(opts, None).await {
            Ok(c) => return Some(c),
            Err(e) if e.is_transient() => reason = e.to_string(),
            Err(e) => {
                close(events, CloseReason::from_error(e)).await;
                return None;
            }
        }
    }
}

/// The delay before reconnect attempt `n` (1-based).
pub fn backoff(attempt: u32) -> Duration {
    let base = 1u64 << attempt.saturating_sub(1).min(5);
    let secs = base.min(30) as f64;
    let jitter = rand::rng().random_range(0.8..1.2);
    Duration::from_secs_f64(secs * jitter)
}

/// Whether the server will take `line` as `/quit [reason]`: decided by the
/// server's own text rule and command parser, so the client waits for the
/// close exactly when the server is going to close. Any text is fine here,
/// whatever its script.
pub fn is_quit(line: &str) -> bool {
    check_text(line).is_ok() && matches!(Command::parse(line), Ok(Command::Quit(_)))
}

/// A write that owns the write half and gives it back with its result.
type WriteInFlight<W> = Pin<Box<dyn Future<Output = (W, io::Result<()>)> + Send>>;

/// Lines on their way to the server. One write is in flight at a time, as
/// a future that owns the write half and hands it back when done, so the
/// session goes on reading and keeps its deadlines while a write waits for
/// a server that does not read.
struct Outgoing<W> {
    idle: Option<W>,
    in_flight: Option<WriteInFlight<W>>,
    /// When the write in flight began.
    started: Option<Instant>,
    /// Lines (with their `\n`) waiting for the next write.
    queue: Vec<u8>,
}

impl<W: AsyncWrite + Unpin + Send + 'static> Outgoing<W> {
    fn new(writer: W) -> Outgoing<W> {
        Outgoing {
            idle: Some(writer),
            in_flight: None,
            started: None,
            queue: Vec::new(),
        }
    }

    /// Queues one line and starts writing if no write is in flight.
    fn push(&mut self, line: &str) {
        self.queue.extend_from_slice(line.as_bytes());
        self.queue.push(b'\n');
        self.start();
    }

    /// Room for more user lines (the session's own lines always fit).
    fn has_room(&self) -> bool {
        self.queue.len() < OUTGOING_BYTES
    }

    /// Since when the write in flight has been waiting, if there is one.
    fn stalled_since(&self) -> Option<Instant> {
        self.started
    }

    fn start(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let Some(mut writer) = self.idle.take() else {
            return;
        };
        let bytes = std::mem::take(&mut self.queue);
        self.started = Some(Instant::now());
        self.in_flight = Some(Box::pin(async move {
            let result = async {
                writer.write_all(&bytes).await?;
                writer.flush().await
            }
            .await;
            (writer, result)
        }));
    }

    /// Finishes the write in flight and starts the next; never resolves
    /// while nothing is in flight. Cancel-safe: the write lives in `self`.
    async fn progress(&mut self) -> io::Result<()> {
        let Some(write) = self.in_flight.as_mut() else {
            return std::future::pending().await;
        };
        let (writer, result) = write.await;
        self.in_flight = None;
        self.started = None;
        self.idle = Some(writer);
        result?;
        self.start();
        Ok(())
    }
}

/// Why reading ended, in words for the user.
fn read_end_reason(frame: &io::Result<Option<Frame>>) -> String {
    match frame {
        Err(e) if CutOffLine::of(e).is_some() => format!("the server closed the connection: {e}"),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            "the connection broke off (the server stopped or the network dropped)".to_owned()
        }
        Err(e) => render::sanitize(&e.to_string()).into_owned(),
        _ => "the server closed the connection".to_owned(),
    }
}

/// Relays one connection until it ends. Every deadline of the session (the
/// keepalive's answer, `/quit`'s wait, a write the server does not take)
/// holds whatever the socket does, because no branch waits on a write.
async fn run_connection(
    opts: &ClientOptions,
    conn: Connected,
    room: &mut String,
    commands: &mut mpsc::Receiver<String>,
    events: &mpsc::Sender<ClientEvent>,
) -> End {
    let Connected { conn, nick, .. } = conn;
    let (mut reader, writer) = conn.into_split();
    let mut out = Outgoing::new(writer);
    // After a reconnect, go back to where the user was.
    if !room.eq_ignore_ascii_case(LOBBY) && RoomName::parse(room).is_ok() {
        out.push(&format!("/join {room}"));
    }
    let mut last_heard = Instant::now();
    // Pinging when either side has been quiet keeps NAT mappings open and
    // keeps a reading-only user under a server's idle timeout.
    let mut last_sent = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    let mut pings = 0u64;
    let mut quitting: Option<Instant> = None;
    let mut kicked: Option<(String, String)> = None;
    loop {
        let mut deadline = match (quitting, ping_sent) {
            (Some(q), _) => q + QUIT_WAIT,
            (None, Some(p)) => p + opts.pong_timeout,
            (None, None) => last_heard.min(last_sent) + opts.keepalive,
        };
        if let Some(since) = out.stalled_since() {
            deadline = deadline.min(since + opts.pong_timeout);
        }
        tokio::select! {
            frame = reader.read_frame() => match frame {
                Ok(Some(Frame::Line(line))) => {
                    last_heard = Instant::now();
                    ping_sent = None;
                    match ServerLine::parse(&line) {
                        ServerLine::Welcome { .. } => {
                            return End::Protocol(
                                "the server sent WELCOME again in the middle of the session".into(),
                            );
                        }
                        ServerLine::Join { room: r, nick: n }
                            if n.eq_ignore_ascii_case(&nick) && RoomName::parse(r).is_ok() =>
                        {
                            *room = r.to_owned();
                        }
                        ServerLine::Kick { nick: n, by, reason } if n.eq_ignore_ascii_case(&nick) => {
                            kicked = Some((by.to_owned(), reason.to_owned()));
                        }
                        _ => {}
                    }
                    if events.send(ClientEvent::Line(line)).await.is_err() {
                        return End::Quit;
                    }
                }
                // A server line over 1 MiB or not UTF-8: skip it.
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    if let Some((by, reason)) = kicked {
                        return End::Kicked { by, reason };
                    }
                    if quitting.is_some() {
                        return End::Quit;
                    }
                    return End::Lost(read_end_reason(&frame));
                }
            },
            written = out.progress() => {
                if let Err(e) = written {
                    if quitting.is_some() {
                        return End::Quit;
                    }
                    return End::Lost(format!("cannot send to the server: {}", render::sanitize(&e.to_string())));
                }
            }
            cmd = commands.recv(), if quitting.is_none() && out.has_room() => {
                let line = match cmd {
                    Some(line) => line,
                    // Every handle dropped: leave as /quit would.
                    None => "/quit".to_owned(),
                };
                // One line per send; a newline inside would be a second line.
                let line = line.replace(['\r', '\n'], " ");
                if is_quit(&line) {
                    quitting = Some(Instant::now());
                }
                last_sent = Instant::now();
                out.push(&line);
            }
            _ = tokio::time::sleep_until(deadline) => {
                let now = Instant::now();
                if quitting.is_some() {
                    return End::Quit;
                }
                if out.stalled_since().is_some_and(|since| now >= since + opts.pong_timeout) {
                    return End::Lost(format!(
                        "the server is not reading: a write has waited {} s",
                        opts.pong_timeout.as_secs()
                    ));
                }
                if ping_sent.is_some() {
                    return End::Lost(format!("no answer from the server for {} s", opts.pong_timeout.as_secs()));
                }
                pings += 1;
                ping_sent = Some(now);
                last_sent = now;
                out.push(&format!("/ping {KEEPALIVE_TOKEN}-{pings}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        let hp = |s: &str| s.parse::<HostPort>();
        assert_eq!(
            hp("example.org").unwrap(),
            HostPort {
                host: "example.org".into(),
                port: 55555
            }
        );
        assert_eq!(hp("example.org:7000").unwrap().port, 7000);
        assert_eq!(
            hp("[::1]:6000").unwrap(),
            HostPort {
                host: "::1".into(),
                port: 6000
            }
        );
        assert_eq!(hp("[::1]").unwrap().port, 55555);
        assert_eq!(
            hp("::1").unwrap(),
            HostPort {
                host: "::1".into(),
                port: 55555
            }
        );
        assert!(hp("host:0").is_err());
        assert!(hp("host:x").is_err());
        assert!(hp(":55555").is_err());
        assert!(hp("[::1").is_err());
        assert_eq!(hp("[::1]:6000").unwrap().to_string(), "[::1]:6000");
        assert_eq!(hp("h:1").unwrap().to_string(), "h:1");
    }

    #[test]
    fn backoff_doubles_to_thirty_seconds_with_jitter() {
        for (attempt, base) in [
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (5, 16.0),
            (6, 30.0),
            (20, 30.0),
        ] {
            let d = backoff(attempt).as_secs_f64();
            assert!(d >= base * 0.8 && d <= base * 1.2, "attempt {attempt}: {d}");
        }
    }

    #[test]
    fn debug_output_redacts_the_password() {
        let secret = "hunter2 пароль 密码 🔑";
        let mut opts = ClientOptions::new(
            "h:1".parse().unwrap(),
            "admin",
            Trust::Pin(Fingerprint([9; 32])),
        );
        opts.password = Some(secret.into());
        for shown in [format!("{opts:?}"), format!("{opts:#?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(shown.contains("admin"), "{shown}");
        }
        opts.password = None;
        assert!(format!("{opts:?}").contains("password: None"));
    }

    #[test]
    fn ban_kicks_carry_the_reason_once() {
        assert_eq!(ban_reason("banned"), Some(""));
        assert_eq!(ban_reason("banned: spam Ωμέγα"), Some("spam Ωμέγα"));
        assert_eq!(ban_reason("banned:spam"), Some("spam"));
        assert_eq!(ban_reason("flooding"), None);
        assert_eq!(ban_reason("bannedish"), None);
    }

    #[test]
    fn welcome_must_name_our_nick_and_the_lobby() {
        let opts = ClientOptions::new(
            "h:1".parse().unwrap(),
            "Alice",
            Trust::Pin(Fingerprint([9; 32])),
        );
        assert!(check_welcome(&opts, true, "alice", "#Lobby").is_ok());
        for (sent, nick, room) in [
            (false, "Alice", "#lobby"),
            (true, "mallory", "#lobby"),
            (true, "Alice", "#elsewhere"),
            (true, "Alice", "#evil\u{1b}]0;x\u{7}"),
        ] {
            let e = check_welcome(&opts, sent, nick, room).unwrap_err();
            assert!(matches!(e, ConnectError::Protocol(_)), "{e:?}");
            assert!(!e.to_string().chars().any(|c| c.is_control()), "{e}");
        }
    }

    #[test]
    fn quit_detection() {
        assert!(is_quit("/quit"));
        assert!(is_quit("/QUIT bye"));
        assert!(!is_quit("/quitter"));
        assert!(!is_quit("quit"));
        // As the server parses it: `/ quit` is a quit, `  /quit` a message.
        assert!(is_quit("/ quit"));
        assert!(!is_quit("  /quit"));
        assert!(!is_quit("/quit \u{1b}"));
        assert!(is_quit("/quit до свидания"));
        assert!(!is_quit("/quit\u{301}"));
        // A fifth byte inside a multi-byte character is not a quit (and
        // never a panic): Cyrillic, Greek, Hebrew, Arabic, CJK, emoji.
        for line in [
            "привет мир",
            "γειά σου",
            "שלום עולם",
            "مرحبا",
            "你好",
            "ab😀",
            "/qui\u{e9}t",
            "/quitté",
            "/quit😀",
        ] {
            assert!(!is_quit(line), "{line}");
        }
    }
}
