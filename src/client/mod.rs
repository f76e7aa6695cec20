//! The client core, shared by plain mode, the terminal UI and the GUI.
//!
//! ```text
//! connect(): TCP → TLS (trust.rs decides) → NICK/PASS → Connected
//! start(Connected): session task ──ClientEvent──▶ front end (ChatState::apply)
//!                        ▲
//!                        └──────── ClientHandle::send(line) ◀── user input
//! ```
//!
//! [`connect`] makes the first connection while the front end can still
//! ask the user things (unknown certificate, password) through a
//! [`Prompter`]. [`start`] hands that connection to a task that relays lines
//! both ways, sends a keepalive `/ping` after a quiet minute, and on a lost
//! connection reconnects with backoff (never after `REFUSE`, `BAN` or
//! `KICK`), rejoining the room the user was in.

pub mod render;
pub mod state;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use rustls_pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::certs::Fingerprint;
use crate::connection::Connection;
use crate::protocol::{
    check_text, Command, ErrorCode, Frame, ServerLine, DEFAULT_PORT, LOBBY, MAX_SERVER_LINE,
};
use crate::trust::{self, KnownHosts, Outcome, Trust, TrustError, Verdict};

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
/// output leaves the password out.
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

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("server", &self.server)
            .field("nick", &self.nick)
            .field("password", &crate::config::redacted(&self.password))
            .field("trust", &self.trust)
            .field("accept_new", &self.accept_new)
            .field("connect_timeout", &self.connect_timeout)
            .field("keepalive", &self.keepalive)
            .field("pong_timeout", &self.pong_timeout)
            .field("reconnect", &self.reconnect)
            .finish()
    }
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

/// A logged-in connection.
pub struct Connected {
    conn: Connection<TlsStream<TcpStream>>,
    pub nick: String,
    pub room: String,
    pub fingerprint: Fingerprint,
    pub verdict: Verdict,
}

impl fmt::Debug for Connected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connected")
            .field("nick", &self.nick)
            .field("room", &self.room)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// Connects, establishes trust and logs in.
pub async fn connect<'p>(
    opts: &ClientOptions,
    mut prompter: Option<&mut (dyn Prompter + 'p)>,
) -> Result<Connected, ConnectError> {
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
    if outcome.verdict == Verdict::Unknown {
        decide_unknown(opts, &outcome, prompter.as_deref_mut())?;
    }
    let mut conn = Connection::new(tls, MAX_SERVER_LINE);
    let (nick, room) =
        match timeout(opts.connect_timeout * 2, login(opts, &mut conn, prompter)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(ConnectError::Timeout {
                    server,
                    what: "the login",
                    secs: opts.connect_timeout.as_secs() * 2,
                })
            }
        };
    Ok(Connected {
        conn,
        nick,
        room,
        fingerprint: outcome.fingerprint,
        verdict: outcome.verdict,
    })
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
        None => ConnectError::Tls(format!("TLS handshake with {server} failed: {e}")),
    }
}

/// TOFU for a host not in known_hosts: `--accept-new`, or ask a person.
fn decide_unknown<'p>(
    opts: &ClientOptions,
    outcome: &Outcome,
    prompter: Option<&mut (dyn Prompter + 'p)>,
) -> Result<(), ConnectError> {
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
    kh.add(key, outcome.fingerprint)?;
    Ok(())
}

/// NICK → nickname, PASS → password, until WELCOME.
async fn login<'p>(
    opts: &ClientOptions,
    conn: &mut Connection<TlsStream<TcpStream>>,
    mut prompter: Option<&mut (dyn Prompter + 'p)>,
) -> Result<(String, String), ConnectError> {
    let mut password = opts.password.clone();
    loop {
        let line = match conn.read_frame().await? {
            Some(Frame::Line(l)) => l,
            Some(_) => continue,
            None => return Err(ConnectError::Closed),
        };
        match ServerLine::parse(&line) {
            ServerLine::Nick => {
                conn.write_line(format!("{}\n", opts.nick).as_bytes())
                    .await?
            }
            ServerLine::Pass => {
                if password.is_none() {
                    password = prompter.as_deref_mut().and_then(|p| p.password(&opts.nick));
                }
                let Some(pw) = &password else {
                    return Err(ConnectError::NoPassword(opts.nick.clone()));
                };
                conn.write_line(format!("{pw}\n").as_bytes()).await?;
            }
            ServerLine::Welcome { nick, room } => return Ok((nick.to_owned(), room.to_owned())),
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

// ---- the session ---------------------------------------------------------------

/// What the session tells the front end.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// Logged in (first time, or again after a reconnect).
    Connected {
        server: String,
        nick: String,
        fingerprint: Fingerprint,
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

/// Starts the session task on the current tokio runtime.
pub fn start(opts: ClientOptions, first: Connected) -> (ClientHandle, mpsc::Receiver<ClientEvent>) {
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let (ev_tx, ev_rx) = mpsc::channel(1024);
    tokio::spawn(session(opts, first, cmd_rx, ev_tx));
    (ClientHandle { tx: cmd_tx }, ev_rx)
}

/// How a connection's life ended.
enum End {
    Quit,
    Kicked { by: String, reason: String },
    Lost(String),
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
            })
            .await;
        let end = run_connection(&opts, conn, &mut room, &mut commands, &events).await;
        let reason = match end {
            End::Quit => return close(&events, CloseReason::Quit).await,
            End::Kicked { by, reason } => {
                let why = if reason.starts_with("banned") {
                    CloseReason::Banned(reason)
                } else {
                    CloseReason::Kicked { by, reason }
                };
                return close(&events, why).await;
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

/// Relays one connection until it ends.
async fn run_connection(
    opts: &ClientOptions,
    conn: Connected,
    room: &mut String,
    commands: &mut mpsc::Receiver<String>,
    events: &mpsc::Sender<ClientEvent>,
) -> End {
    let Connected { conn, nick, .. } = conn;
    let (mut reader, mut writer) = conn.into_split();
    // After a reconnect, go back to where the user was.
    if !room.eq_ignore_ascii_case(LOBBY) && !room.is_empty() {
        let _ = writer.write_all(format!("/join {room}\n").as_bytes()).await;
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
        let deadline = match (quitting, ping_sent) {
            (Some(q), _) => q + Duration::from_secs(5),
            (None, Some(p)) => p + opts.pong_timeout,
            (None, None) => last_heard.min(last_sent) + opts.keepalive,
        };
        tokio::select! {
            frame = reader.read_frame() => match frame {
                Ok(Some(Frame::Line(line))) => {
                    last_heard = Instant::now();
                    ping_sent = None;
                    match ServerLine::parse(&line) {
                        ServerLine::Join { room: r, nick: n } if n.eq_ignore_ascii_case(&nick) => {
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
                    return End::Lost(match frame {
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            "the connection broke off (the server stopped or the network dropped)".to_owned()
                        }
                        Err(e) => e.to_string(),
                        _ => "the server closed the connection".to_owned(),
                    });
                }
            },
            cmd = commands.recv(), if quitting.is_none() => {
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
                if let Err(e) = send_line(&mut writer, &line).await {
                    if quitting.is_some() {
                        return End::Quit;
                    }
                    return End::Lost(e.to_string());
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                if quitting.is_some() {
                    return End::Quit;
                }
                if ping_sent.is_some() {
                    return End::Lost(format!("no answer from the server for {} s", opts.pong_timeout.as_secs()));
                }
                pings += 1;
                ping_sent = Some(Instant::now());
                last_sent = Instant::now();
                if let Err(e) = send_line(&mut writer, &format!("/ping {KEEPALIVE_TOKEN}-{pings}")).await {
                    return End::Lost(e.to_string());
                }
            }
        }
    }
}

async fn send_line<W: tokio::io::AsyncWrite + Unpin>(w: &mut W, line: &str) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    w.write_all(&bytes).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_password() {
        let server: HostPort = "example.org".parse().unwrap();
        let trust = Trust::Tofu {
            known_hosts: "/tmp/known_hosts".into(),
            key: "example.org:55555".into(),
        };
        let mut opts = ClientOptions::new(server, "alice", trust);
        let password = "s3cr3t-пароль-密码-🔑";
        opts.password = Some(password.to_owned());
        let shown = format!("{opts:?}");
        assert!(!shown.contains(password), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
    }

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
