//! The session task: relays one connection at a time between the server
//! and the front end, until the user quits or a decision ends it.
//!
//! ```text
//! ClientHandle::send ──commands──▶ Relay ──Outgoing──▶ server
//! front end ◀──events── ServerLines::read ◀── read_frame ◀── server
//!                  lost: reconnect.rs (backoff), then rejoin the room
//! ```
//!
//! Every deadline (the keepalive's answer, `/quit`'s wait, a write the
//! server does not take) holds whatever the socket does, because no branch
//! of the relay waits on a write.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use crate::event::{ClientEvent, CloseReason, ServerLines, KEEPALIVE_TOKEN};
use crate::input::is_quit;
use crate::login::Connected;
use crate::outgoing::Outgoing;
use crate::reconnect::reconnect;
use crate::{render, ClientOptions};
use tlschat_protocol::connection::{CutOffLine, LineReader, ReadHalf, WriteHalf};
use tlschat_protocol::{Frame, RoomName, LOBBY};

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
/// [`MAX_SERVER_LINE`](tlschat_protocol::MAX_SERVER_LINE) (1 MiB), so this bounds what a fast server can make
/// the client hold in flight (32 MiB) while the front end catches up.
pub(crate) const EVENT_QUEUE: usize = 32;

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
    Protocol(crate::ConnectError),
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

/// One connection after another, until one ends in a way that is not
/// worth a reconnect.
async fn session(
    mut opts: ClientOptions,
    first: Connected,
    mut commands: mpsc::Receiver<String>,
    events: mpsc::Sender<ClientEvent>,
) {
    let server = opts.server.to_string();
    let mut lines = ServerLines::new(first.nick.clone(), first.room.clone());
    let mut conn = first;
    let mut reconnected = false;
    loop {
        let _ = events
            .send(ClientEvent::Connected {
                server: server.clone(),
                nick: conn.nick.clone(),
                fingerprint: conn.fingerprint,
                tls: conn.tls.clone(),
            })
            .await;
        lines.connected(&conn.nick, conn.history, reconnected);
        reconnected = true;
        let end = Relay::new(&opts, conn, &mut lines)
            .run(&mut commands, &events)
            .await;
        // A catch-up cut short: what was held is shown as it is.
        for event in lines.take_held() {
            let _ = events.send(event).await;
        }
        let reason = match end {
            End::Quit => return close(&events, CloseReason::Quit).await,
            End::Kicked { by, reason } => {
                let why = match ban_reason(&reason) {
                    Some(r) => CloseReason::Banned(r.to_owned()),
                    None => CloseReason::Kicked { by, reason },
                };
                return close(&events, why).await;
            }
            End::Protocol(e) => return close(&events, CloseReason::Error(e.to_string())).await,
            End::Lost(reason) if !opts.reconnect => {
                return close(&events, CloseReason::Error(reason)).await
            }
            End::Lost(reason) => reason,
        };
        // Renamed on the way (`RENAME` of us): come back as the new name.
        lines.nick().clone_into(&mut opts.nick);
        conn = match reconnect(&opts, reason, &mut commands, &events).await {
            Some(c) => c,
            None => return,
        };
    }
}

pub(crate) async fn close(events: &mpsc::Sender<ClientEvent>, reason: CloseReason) {
    let _ = events.send(ClientEvent::Closed(reason)).await;
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

type Tls = TlsStream<TcpStream>;

/// One connection being relayed: its halves, what is queued for it, and
/// the timers of the keepalive and of `/quit`.
struct Relay<'a> {
    opts: &'a ClientOptions,
    lines: &'a mut ServerLines,
    reader: LineReader<ReadHalf<Tls>>,
    out: Outgoing<WriteHalf<Tls>>,
    last_heard: Instant,
    /// Pinging when either side has been quiet keeps NAT mappings open and
    /// keeps a reading-only user under a server's idle timeout.
    last_sent: Instant,
    ping_sent: Option<Instant>,
    pings: u64,
    quitting: Option<Instant>,
}

impl<'a> Relay<'a> {
    /// Takes over a logged-in connection; after a reconnect, asks to go
    /// back to the room the user was in.
    fn new(opts: &'a ClientOptions, conn: Connected, lines: &'a mut ServerLines) -> Relay<'a> {
        let (reader, writer) = conn.conn.into_split();
        let mut out = Outgoing::new(writer);
        let room = lines.rejoin_room();
        if !room.eq_ignore_ascii_case(LOBBY) && RoomName::parse(room).is_ok() {
            out.push(&format!("/join {room}"));
        }
        let now = Instant::now();
        Relay {
            opts,
            lines,
            reader,
            out,
            last_heard: now,
            last_sent: now,
            ping_sent: None,
            pings: 0,
            quitting: None,
        }
    }

    /// Relays until the connection ends.
    async fn run(
        mut self,
        commands: &mut mpsc::Receiver<String>,
        events: &mpsc::Sender<ClientEvent>,
    ) -> End {
        loop {
            let deadline = self.deadline();
            let ended = tokio::select! {
                frame = self.reader.read_frame() => self.on_frame(frame, events).await,
                written = self.out.progress() => self.on_written(written),
                cmd = commands.recv(), if self.quitting.is_none() && self.out.has_room() => {
                    self.on_command(cmd);
                    None
                }
                _ = tokio::time::sleep_until(deadline) => self.on_deadline(),
            };
            if let Some(end) = ended {
                return end;
            }
        }
    }

    /// The next moment something is due: `/quit`'s wait, the keepalive's
    /// answer or the next keepalive, and a stalled write's limit.
    fn deadline(&self) -> Instant {
        let deadline = match (self.quitting, self.ping_sent) {
            (Some(q), _) => q + QUIT_WAIT,
            (None, Some(p)) => p + self.opts.pong_timeout,
            (None, None) => self.last_heard.min(self.last_sent) + self.opts.keepalive,
        };
        match self.out.stalled_since() {
            Some(since) => deadline.min(since + self.opts.pong_timeout),
            None => deadline,
        }
    }

    /// A frame from the server, or the end of reading.
    async fn on_frame(
        &mut self,
        frame: io::Result<Option<Frame>>,
        events: &mpsc::Sender<ClientEvent>,
    ) -> Option<End> {
        match frame {
            Ok(Some(Frame::Line(line))) => {
                self.last_heard = Instant::now();
                self.ping_sent = None;
                let heard = match self.lines.read(&line) {
                    Ok(heard) => heard,
                    Err(e) => return Some(End::Protocol(e)),
                };
                for event in heard {
                    if events.send(event).await.is_err() {
                        return Some(End::Quit);
                    }
                }
                for request in self.lines.take_requests() {
                    self.last_sent = Instant::now();
                    self.out.push(&request);
                }
                None
            }
            // A server line over 1 MiB or not UTF-8: skip it.
            Ok(Some(_)) => None,
            Ok(None) | Err(_) => Some(self.read_ended(&frame)),
        }
    }

    /// Why the connection is over once reading ended.
    fn read_ended(&mut self, frame: &io::Result<Option<Frame>>) -> End {
        if let Some((by, reason)) = self.lines.take_kick() {
            return End::Kicked { by, reason };
        }
        if self.quitting.is_some() {
            return End::Quit;
        }
        End::Lost(read_end_reason(frame))
    }

    fn on_written(&mut self, written: io::Result<()>) -> Option<End> {
        let e = written.err()?;
        if self.quitting.is_some() {
            return Some(End::Quit);
        }
        Some(End::Lost(format!(
            "cannot send to the server: {}",
            render::sanitize(&e.to_string())
        )))
    }

    /// A user line (`None`: every handle dropped, leave as `/quit` would).
    fn on_command(&mut self, cmd: Option<String>) {
        let line = cmd.unwrap_or_else(|| "/quit".to_owned());
        // One line per send; a newline inside would be a second line.
        let line = line.replace(['\r', '\n'], " ");
        if is_quit(&line) {
            self.quitting = Some(Instant::now());
        }
        self.last_sent = Instant::now();
        self.lines.sent(&line);
        self.out.push(&line);
    }

    /// A deadline passed: leave, give up on a silent server, or ping.
    fn on_deadline(&mut self) -> Option<End> {
        let now = Instant::now();
        let pong_timeout = self.opts.pong_timeout;
        if self.quitting.is_some() {
            return Some(End::Quit);
        }
        if self
            .out
            .stalled_since()
            .is_some_and(|since| now >= since + pong_timeout)
        {
            return Some(End::Lost(format!(
                "the server is not reading: a write has waited {} s",
                pong_timeout.as_secs()
            )));
        }
        if self.ping_sent.is_some() {
            return Some(End::Lost(format!(
                "no answer from the server for {} s",
                pong_timeout.as_secs()
            )));
        }
        self.pings += 1;
        self.ping_sent = Some(now);
        self.last_sent = now;
        self.out
            .push(&format!("/ping {KEEPALIVE_TOKEN}-{}", self.pings));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_kicks_carry_the_reason_once() {
        assert_eq!(ban_reason("banned"), Some(""));
        assert_eq!(ban_reason("banned: spam Ωμέγα"), Some("spam Ωμέγα"));
        assert_eq!(ban_reason("banned:spam"), Some("spam"));
        assert_eq!(ban_reason("flooding"), None);
        assert_eq!(ban_reason("bannedish"), None);
    }
}
