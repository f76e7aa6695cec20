//! One task per TCP connection: TLS, the login, then a [`Peer`] that turns
//! each line into an answer of its own or one call into the hub.
//!
//! ```text
//! accept ─ sniff ─ TLS ─ Login: NICK/PASS ─ register ─┬─ Peer: Frame → rate → text → Command
//!          (one deadline from accept)                  │     own answers → its Outbox
//!                                                      │     the rest    → Hub → Outboxes
//!                                                      └─ writer task: Outbox → socket
//! ```
//!
//! A single deadline, taken at TCP accept, covers the TLS handshake, the
//! nickname and the password; nothing closes a handshaking client earlier.
//! After registration the connection is split: the [`Peer`] keeps the read
//! half, and [`outbound::run_writer`] owns the write half. What concerns
//! the client alone (its errors, `PONG`, `/help`) never takes the hub's
//! lock; the hub is entered once per command that reaches others.
//!
//! History: a session whose TLS handshake selected ALPN `tlschat/2` is in
//! history mode ([`Mode`]); after the `USERS` of each of its own joins (at
//! login and after `/join`) it gets the room's replay, read off the hub's
//! lock on the blocking pool ([`History`]) and queued on the reply path, so
//! a kick or close that came meanwhile still ends the client. `/history`
//! and `/search` are answered the same way for every session of a server
//! that keeps history. Each answer is bounded in bytes (a quarter of the
//! client's queue) and paid from its address group's read budget. Every
//! line that parses as `/history` or `/search` gets exactly one end line
//! (`HISTORYEND`, `FOUNDEND`), also when it is refused, fails or is dropped
//! by the line budget (then after its `ERROR` or `INFO`), so a client knows
//! when an answer is over.

use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rustls::server::Acceptor;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_rustls::LazyConfigAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::access::{Access, Admitted};
use super::account_commands::{self, Caller};
use super::accounts::{verify_password, Role};
use super::bans::canonical_ip;
use super::history::{History, HistoryError, Hits, Page, Row, SearchWord};
use super::hub::{self, Entered, Hub, Origin, RegisterError, SharedRole, Speech};
use super::limits::{Gate, Guess, NoGuess, Rate, RefusalSlot, Ticket, TokenBucket, SEARCH_READS};
use super::outbound::{self, Inbox, Outbox};
use super::room::{ClientId, Mode};
use super::socket::ClientSocket;
use super::store::{InviteRow, Registration};
use crate::config::Limits;
use crate::tls::{self, FirstBytes, TlsConfigs};
use tlschat_protocol::command::{unknown_command, HISTORY_HELP};
use tlschat_protocol::connection::{Connection, LineReader};
use tlschat_protocol::history::{HISTORY_ALPN, MAX_SEARCH_HITS, REPLAY_LINES};
use tlschat_protocol::names::MAX_NICK_LEN;
use tlschat_protocol::{
    check_text, Command, ErrorCode, Frame, HistoryAsk, Kept, Nick, PassFor, Privilege, ServerLine,
    MAX_CLIENT_LINE, MAX_NICK_TRIES,
};

/// A client's TLS stream, as the acceptor hands it over.
type TlsStream = tokio_rustls::server::TlsStream<ClientSocket>;

/// How long a refused peer (plaintext, banned, server full) gets to read its
/// one explanatory line before the socket closes.
const LINGER: Duration = Duration::from_secs(1);

/// The longest a refused connection may take over its TLS handshake: it
/// holds one of the few lingering-refusal places meanwhile.
const REFUSAL_HANDSHAKE: Duration = Duration::from_secs(5);

/// Malformed answers to `PASS` (too long, not UTF-8) before the close; like
/// the nickname's tries, so a confused client is told and a bad one ends.
const MAX_BAD_PASSWORD_LINES: usize = MAX_NICK_TRIES;

/// What every peer task shares.
pub(crate) struct PeerContext {
    pub hub: Hub,
    /// The join gate, the invite links' host, the registration policy.
    pub access: Access,
    tls: RwLock<TlsConfigs>,
    pub gate: Arc<Gate>,
    /// Argon2 checks at once: each takes ~19 MiB and a core for tens of
    /// milliseconds, so a burst of logins must not run them all together.
    /// A permit moves into the blocking job and is held until it ends.
    pub(crate) verify_slots: Arc<Semaphore>,
    /// Cancelled when the server stops: handshaking peers just go.
    pub shutdown: CancellationToken,
}

impl PeerContext {
    pub fn new(hub: Hub, tls: TlsConfigs, gate: Arc<Gate>, access: Access) -> PeerContext {
        PeerContext {
            hub,
            access,
            tls: RwLock::new(tls),
            gate,
            verify_slots: Arc::new(Semaphore::new(2)),
            shutdown: CancellationToken::new(),
        }
    }

    /// The TLS configs for new handshakes (swapped by a reload).
    fn tls(&self) -> TlsConfigs {
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_tls(&self, tls: TlsConfigs) {
        *self.tls.write().unwrap_or_else(|e| e.into_inner()) = tls;
    }
}

/// Serves a refused connection: TLS (bounded by [`REFUSAL_HANDSHAKE`]),
/// its `ERROR server-full`, the close. `slot` holds its lingering place
/// until this returns; it is not counted as a client.
pub(crate) async fn serve_refusal(
    ctx: Arc<PeerContext>,
    tcp: TcpStream,
    addr: SocketAddr,
    slot: RefusalSlot,
) {
    let limit = match ctx.gate.limits().handshake_timeout {
        t if t.is_zero() => REFUSAL_HANDSHAKE,
        t => t.min(REFUSAL_HANDSHAKE),
    };
    let tls = tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        r = within(deadline_after(limit), accept_tls(ctx.tls(), tcp, false)) => match r {
            Ok(Ok(Some(tls))) => tls,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => return debug!(peer = %addr, error = %e, "TLS handshake of a refusal failed"),
            Err(_) => return debug!(peer = %addr, "a refused connection did not finish TLS in time"),
        },
    };
    let line = ServerLine::Error {
        code: ErrorCode::ServerFull,
        text: &slot.refusal.0,
    }
    .encode();
    refuse(Connection::new(tls, MAX_CLIENT_LINE), &line).await;
}

/// Serves one admitted connection from accept to close. `ticket` keeps it
/// counted until this returns.
pub(crate) async fn serve(ctx: Arc<PeerContext>, tcp: TcpStream, addr: SocketAddr, ticket: Ticket) {
    let local = tcp.local_addr().ok();
    // Boxed: a task's allocation is sized for its largest state and lives
    // as long as the connection, so handshake-time state stays off it (an
    // idle client costs less).
    let Some((conn, login)) = Box::pin(admit(&ctx, tcp, addr, &ticket)).await else {
        return;
    };
    ticket.handshake_done();
    // Moved out of the box inside the block, where the box is then freed:
    // a plain `(*conn)` would keep the emptied box allocated
    // until this function returns, that is for the whole connection.
    let (reader, writer) = {
        let conn = conn;
        (*conn).into_split()
    };
    let writer = tokio::spawn(outbound::run_writer(login.inbox, writer));
    let mode = login.mode;
    let mut peer = Peer {
        bucket: TokenBucket::new(ctx.gate.limits().rate_burst, Instant::now().into_std()),
        ctx,
        ticket,
        id: login.id,
        role: login.role,
        invite_until: login.invite_until,
        ip: canonical_ip(addr.ip()),
        local,
        reader,
        outbox: login.outbox,
        mode,
    };
    if mode == Mode::History {
        if let Some(lobby) = peer.ctx.hub.room_of(peer.id) {
            peer.replay(&lobby).await;
        }
    }
    peer.run().await;
    peer.leave();
    match writer.await {
        Ok(Err(e)) => debug!(peer = %addr, error = %e, "write failed"),
        Err(e) => warn!(peer = %addr, error = %e, "writer task failed"),
        Ok(Ok(())) => {}
    }
}

/// TLS and the login, under the one deadline taken at accept: the
/// connection and its place in the hub, or `None` once it has been told
/// why not (or went away). Stops at shutdown, at the deadline, or when
/// newer handshakes evict it.
async fn admit(
    ctx: &PeerContext,
    tcp: TcpStream,
    addr: SocketAddr,
    ticket: &Ticket,
) -> Option<(Box<Connection<TlsStream>>, LoggedIn)> {
    let limits = ctx.gate.limits();
    let deadline = deadline_after(limits.handshake_timeout);
    let tls = tokio::select! {
        _ = ctx.shutdown.cancelled() => return None,
        _ = ticket.evicted() => return evicted(addr),
        r = within(deadline, accept_tls(ctx.tls(), tcp, true)) => match r {
            Ok(Ok(Some(tls))) => tls,
            Ok(Ok(None)) => return None,
            Ok(Err(e)) => {
                debug!(peer = %addr, error = %e, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                debug!(peer = %addr, "handshake deadline passed during TLS");
                return None;
            }
        },
    };
    let mode = match tls.get_ref().1.alpn_protocol() {
        Some(HISTORY_ALPN) => Mode::History,
        _ => Mode::V1,
    };
    let mut conn = Box::new(Connection::new(tls, MAX_CLIENT_LINE));
    let mut login = Login {
        ctx,
        conn: &mut conn,
        ip: canonical_ip(addr.ip()),
        group: ticket.group(),
        mode,
        admitted: None,
    };
    let end = tokio::select! {
        _ = ctx.shutdown.cancelled() => return None,
        _ = ticket.evicted() => return evicted(addr),
        r = within(deadline, login.run(true)) => r,
    };
    let line = match end {
        Ok(Ok(LoginEnd::In(logged_in))) => return Some((conn, logged_in)),
        Ok(Ok(LoginEnd::Refused(line))) => line,
        Ok(Ok(LoginEnd::Gone)) => return None,
        Ok(Err(e)) => {
            debug!(peer = %addr, error = %e, "connection failed during login");
            return None;
        }
        Err(_) => {
            debug!(peer = %addr, "handshake deadline passed during login");
            let secs = limits.handshake_timeout.as_secs_f32();
            let text = format!("the login was not finished within {secs} s");
            ServerLine::Error {
                code: ErrorCode::Timeout,
                text: &text,
            }
            .encode()
        }
    };
    refuse(*conn, &line).await;
    None
}

fn evicted<T>(addr: SocketAddr) -> Option<T> {
    debug!(peer = %addr, "dropped: too many unfinished handshakes");
    None
}

/// `fut` bounded by `deadline`, or unbounded when the timeout is off.
async fn within<F: std::future::Future>(
    deadline: Option<Instant>,
    fut: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    match deadline {
        Some(d) => timeout_at(d, fut).await,
        None => Ok(fut.await),
    }
}

/// Sniffs the first byte: a TLS peer gets the handshake, anyone else the
/// one plaintext line that explains the mistake.
///
/// With `prompt`, the first `NICK` is queued before the handshake starts:
/// with TLS 1.3 it leaves in the server's first flight as 0.5-RTT data
/// (`send_half_rtt_data`, see [`tls::server_config`]), which saves the
/// client a round trip and the server a write. It is no secret, and a
/// client that fails the handshake never gets it.
async fn accept_tls(
    configs: TlsConfigs,
    tcp: TcpStream,
    prompt: bool,
) -> std::io::Result<Option<TlsStream>> {
    match tls::sniff(&tcp).await? {
        FirstBytes::Closed => Ok(None),
        FirstBytes::Plaintext => {
            debug!("plaintext client told to use TLS");
            linger_close(tcp, tls::TLS_REQUIRED_LINE.as_bytes()).await;
            Ok(None)
        }
        FirstBytes::Tls => {
            let hello = Acceptor::default();
            let start = LazyConfigAcceptor::new(hello, ClientSocket(tcp)).await?;
            let config = configs.for_hello(&start.client_hello());
            start
                .into_stream_with(config, |conn| {
                    if prompt {
                        // Buffered in memory: cannot fail short of allocation.
                        let _ = std::io::Write::write_all(
                            &mut conn.writer(),
                            &ServerLine::Nick.encode(),
                        );
                    }
                })
                .await
                .map(Some)
        }
    }
}

/// A client that finished its login.
struct LoggedIn {
    id: ClientId,
    role: SharedRole,
    /// Until when the invite this session's nickname came in with is
    /// valid (only the expiry: a row's bound nicknames may be many).
    invite_until: Option<SystemTime>,
    outbox: Outbox,
    inbox: Inbox,
    mode: Mode,
}

/// How a login ends.
enum LoginEnd {
    In(LoggedIn),
    /// Send this line, then close.
    Refused(bytes::Bytes),
    /// The peer went away.
    Gone,
}

/// How one answer to `NICK` ended.
enum Try {
    Done(LoginEnd),
    /// A failed try: answer with this `ERROR`.
    Again(ErrorCode, String),
}

/// `NICK` … `WELCOME` on one connection: what every step of it asks about
/// the client.
struct Login<'a, S> {
    ctx: &'a PeerContext,
    conn: &'a mut Connection<S>,
    ip: IpAddr,
    /// The address group the connection was admitted under (its ticket's):
    /// its lockout and its private-message share are counted there, even
    /// if a reload changes `ipv6_prefix_len` meanwhile.
    group: IpAddr,
    /// What the TLS handshake selected.
    mode: Mode,
    /// Set once an answer to `PASS join` was right: later nicknames of this
    /// connection are not asked again.
    admitted: Option<Admitted>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Login<'_, S> {
    /// Up to [`MAX_NICK_TRIES`] nicknames, bans, `PASS`. `prompted`: the
    /// first `NICK` already went out with the handshake.
    ///
    /// A failed try gets its `ERROR` and `NICK` again; the last one gets
    /// its `ERROR` through [`refuse`], which closes without destroying it.
    async fn run(&mut self, prompted: bool) -> std::io::Result<LoginEnd> {
        let nick_line = ServerLine::Nick.encode();
        for attempt in 0..MAX_NICK_TRIES {
            if attempt > 0 || !prompted {
                self.conn.write_line(&nick_line).await?;
            }
            let (code, text) = match self.try_nick().await? {
                Try::Done(end) => return Ok(end),
                Try::Again(code, text) => (code, text),
            };
            let last = attempt + 1 == MAX_NICK_TRIES;
            if let Some(end) = self.failed_try(last, code, &text).await? {
                return Ok(end);
            }
        }
        Ok(LoginEnd::Gone)
    }

    /// Answers a failed try with its `ERROR`; the `last` one's is returned
    /// as the refusal to close with instead of written.
    async fn failed_try(
        &mut self,
        last: bool,
        code: ErrorCode,
        text: &str,
    ) -> std::io::Result<Option<LoginEnd>> {
        let line = ServerLine::Error { code, text }.encode();
        if last {
            return Ok(Some(LoginEnd::Refused(line)));
        }
        self.conn.write_line(&line).await?;
        Ok(None)
    }

    /// One answer to `NICK`: the nickname's checks, its password if it has
    /// one, and the registration.
    async fn try_nick(&mut self) -> std::io::Result<Try> {
        let hub = &self.ctx.hub;
        let again = |code, text: &str| Ok(Try::Again(code, text.to_owned()));
        let answer = match self.conn.read_frame().await? {
            None => return Ok(Try::Done(LoginEnd::Gone)),
            Some(Frame::Line(l)) => l,
            Some(Frame::TooLong) => {
                let text = format!("a nickname is at most {MAX_NICK_LEN} characters");
                return again(ErrorCode::LineTooLong, &text);
            }
            Some(Frame::InvalidUtf8) => {
                return again(ErrorCode::InvalidUtf8, "that was not valid UTF-8")
            }
        };
        let nick = match Nick::parse(answer.trim_matches(' ')) {
            Ok(nick) => nick,
            Err(e) => return again(ErrorCode::NickInvalid, &e.to_string()),
        };
        let ip = self.ip;
        if let Some(reason) = hub.ban_reason(&nick, ip) {
            info!(nick = %nick, %ip, "banned client refused");
            return Ok(Try::Done(LoginEnd::Refused(
                ServerLine::Ban(&reason).encode(),
            )));
        }
        let taken = || format!("{nick} is in use; choose another nickname");
        let role = hub.account_role(&nick);
        let hash = hub.password_hash(&nick);
        // A non-account on a closed server answers `PASS join` before it
        // learns whether the nickname is in use.
        let mut invite = None;
        if hash.is_none() && !role.is_admin() {
            match self.join(&nick).await? {
                Ok(admitted) => invite = admitted,
                Err(end) => return Ok(Try::Done(end)),
            }
        }
        if hub.is_taken(&nick) {
            return again(ErrorCode::NickTaken, &taken());
        }
        let checked = hash.is_some();
        match hash {
            Some(hash) => {
                if let Some(refused) = self.check_password(&nick, hash).await? {
                    return Ok(Try::Done(refused));
                }
            }
            // The server stores an admin password at every start and a reload
            // keeps it, so this is a bug elsewhere; it must not make the admin
            // a nickname anyone can take.
            None if role.is_admin() => {
                warn!(%ip, "the admin account has no password: admin login refused");
                let text =
                    "the admin account has no password on this server; its operator must set one";
                let line = ServerLine::Error {
                    code: ErrorCode::NotPermitted,
                    text,
                };
                return Ok(Try::Done(LoginEnd::Refused(line.encode())));
            }
            None => {}
        }
        let (outbox, inbox) = outbound::channel(self.ctx.gate.limits().outbound_queue);
        let role = SharedRole::new(role);
        let from = Origin {
            addr: ip,
            group: self.group,
            mode: self.mode,
        };
        match hub.register(nick.clone(), role.clone(), checked, from, outbox.clone()) {
            Ok(id) => {
                if let Some(row) = &invite {
                    self.tell_invitee(row, &outbox).await;
                }
                Ok(Try::Done(LoginEnd::In(LoggedIn {
                    id,
                    role,
                    invite_until: invite.map(|row| row.expires),
                    outbox,
                    inbox,
                    mode: self.mode,
                })))
            }
            Err(RegisterError::Taken) => again(ErrorCode::NickTaken, &taken()),
            // Asked again, the nickname gets its account's `PASS`.
            Err(RegisterError::NowAccount) => {
                let text =
                    format!("{nick} became an account meanwhile; send it again for its password");
                again(ErrorCode::NickTaken, &text)
            }
            Err(RegisterError::ShuttingDown) => Ok(Try::Done(LoginEnd::Refused(
                ServerLine::Info("the server is shutting down").encode(),
            ))),
        }
    }

    /// The join gate for a non-account: on an open server, or once this
    /// connection was admitted, nothing is asked. `Ok(Some(row))`: the
    /// nickname comes in with that invite (taken for it now); `Err`: how
    /// the login ends.
    async fn join(&mut self, nick: &Nick) -> std::io::Result<Result<Option<InviteRow>, LoginEnd>> {
        let access = self.ctx.access.get();
        if !access.gate.is_closed() {
            return Ok(Ok(None));
        }
        let storage = self.ctx.hub.storage();
        match &self.admitted {
            Some(Admitted::Password) => return Ok(Ok(None)),
            Some(Admitted::Invite(row)) if row.bound.iter().any(|k| k == nick.key()) => {
                return Ok(Ok(Some(row.clone())))
            }
            // Admitted by a code while another nickname was in use: the
            // use is taken for this one.
            Some(Admitted::Invite(row)) => {
                let (hash, key, now) = (row.hash, nick.key().to_owned(), storage.now());
                return Ok(
                    match storage.call(move |s| s.take_invite(&hash, &key, now)).await {
                        Ok(Some(row)) => {
                            self.admitted = Some(Admitted::Invite(row.clone()));
                            Ok(Some(row))
                        }
                        Ok(None) => Err(LoginEnd::Refused(
                            ServerLine::Refuse("the invite was used up or revoked meanwhile")
                                .encode(),
                        )),
                        Err(e) => Err(store_failed(&e)),
                    },
                );
            }
            None => {}
        }
        let (answer, guess) = match self.answer_pass(nick, PassFor::Join).await? {
            Ok(answered) => answered,
            Err(end) => return Ok(Err(end)),
        };
        let take = !self.ctx.hub.is_taken(nick);
        let checked = access
            .gate
            .check(storage, &answer, nick.key(), take, guess)
            .await;
        match checked {
            Ok(Some(admitted)) => {
                info!(nick = %nick, ip = %self.ip, how = ?admitted_how(&admitted), "admitted by the join gate");
                let invite = match &admitted {
                    Admitted::Invite(row) if take => Some(row.clone()),
                    _ => None,
                };
                self.admitted = Some(admitted);
                Ok(Ok(invite))
            }
            Ok(None) => {
                warn!(nick = %nick, ip = %self.ip, "wrong join password or invite code");
                Ok(Err(LoginEnd::Refused(
                    ServerLine::Refuse("wrong password or invite code").encode(),
                )))
            }
            Err(e) => Ok(Err(store_failed(&e))),
        }
    }

    /// The `INFO` an invitee gets after `WELCOME`, `JOIN` and `USERS`.
    async fn tell_invitee(&self, row: &InviteRow, outbox: &Outbox) {
        let until = humantime::format_rfc3339_seconds(row.expires);
        let policy = crate::account_commands::registration_policy(self.ctx).await;
        let text = if policy == Registration::Off {
            format!("you came in with an invite valid until {until}")
        } else {
            format!(
                "you came in with an invite valid until {until}; /register PASSWORD keeps your nickname after that"
            )
        };
        // Cannot overflow: the queue is new.
        let _ = outbox.send_reply(ServerLine::Info(&text).encode());
    }

    /// `PASS` and its answer. `None`: the password is right; otherwise how
    /// the login ends.
    async fn check_password(
        &mut self,
        nick: &Nick,
        hash: String,
    ) -> std::io::Result<Option<LoginEnd>> {
        let (password, guess) = match self.answer_pass(nick, PassFor::Account).await? {
            Ok(answered) => answered,
            Err(end) => return Ok(Some(end)),
        };
        if !self
            .ctx
            .verify(hash, password, guess, nick.clone(), self.ip)
            .await
        {
            return Ok(Some(LoginEnd::Refused(
                ServerLine::Refuse("wrong password").encode(),
            )));
        }
        Ok(None)
    }

    /// A prompt (`PASS` or `PASS join`), its answer and a reserved guess
    /// from the address's one lockout, which every kind of `PASS` shares;
    /// or how the login ends (locked out, gone). A malformed answer (too
    /// long, not UTF-8) is no guess: it gets its `ERROR` and the prompt
    /// again, and does not count as a wrong one.
    async fn answer_pass(
        &mut self,
        nick: &Nick,
        kind: PassFor,
    ) -> std::io::Result<Result<(String, Guess), LoginEnd>> {
        let (gate, ip, group) = (&self.ctx.gate.clone(), self.ip, self.group);
        let locked_out = |left: Duration| {
            if let Some(held) = gate
                .lockout_warnings
                .allow(group, std::time::Instant::now())
            {
                warn!(nick = %nick, %ip, "password attempt while locked out{held}");
            }
            LoginEnd::Refused(wait_line(
                left,
                "too many wrong passwords from your address",
            ))
        };
        if let Some(left) = gate.locked_out(group) {
            return Ok(Err(locked_out(left)));
        }
        let password = match self.read_password(kind).await? {
            Ok(password) => password,
            Err(end) => return Ok(Err(end)),
        };
        // Checked again, now, by reserving the guess: connections prompted
        // before a lockout began, or many at once, get no more guesses checked
        // than the lockout allows.
        let guess = match gate.reserve_guess(group) {
            Ok(guess) => guess,
            Err(NoGuess::LockedOut(left)) => return Ok(Err(locked_out(left))),
            Err(NoGuess::Busy(wait)) => {
                if let Some(held) = gate
                    .lockout_warnings
                    .allow(group, std::time::Instant::now())
                {
                    warn!(nick = %nick, %ip, "password attempt while the last allowed guesses are being checked{held}");
                }
                let why = "too many password attempts at once from your address";
                return Ok(Err(LoginEnd::Refused(wait_line(wait, why))));
            }
        };
        Ok(Ok((password, guess)))
    }

    /// The prompt until a well-formed answer, or how the login ends.
    async fn read_password(&mut self, kind: PassFor) -> std::io::Result<Result<String, LoginEnd>> {
        let pass_line = ServerLine::Pass(kind).encode();
        let mut malformed = 0;
        loop {
            self.conn.write_line(&pass_line).await?;
            let (code, text) = match self.conn.read_frame().await? {
                None => return Ok(Err(LoginEnd::Gone)),
                Some(Frame::Line(p)) => return Ok(Ok(p)),
                Some(Frame::TooLong) => (
                    ErrorCode::LineTooLong,
                    format!("a password line is at most {MAX_CLIENT_LINE} bytes including its newline; it was discarded"),
                ),
                Some(Frame::InvalidUtf8) => (
                    ErrorCode::InvalidUtf8,
                    "that password line was not valid UTF-8; it was discarded".to_owned(),
                ),
            };
            malformed += 1;
            let last = malformed == MAX_BAD_PASSWORD_LINES;
            if let Some(end) = self.failed_try(last, code, &text).await? {
                return Ok(Err(end));
            }
        }
    }
}

impl PeerContext {
    /// Checks `password` on the blocking pool, a few at a time (argon2 is
    /// deliberately slow). The verification slot and the reserved guess
    /// move into the job: a login dropped mid-check (evicted, timed out,
    /// shut down) neither frees the slot while argon2 still runs nor takes
    /// its guess back; the guess is counted when the check ends.
    pub(crate) async fn verify(
        &self,
        hash: String,
        password: String,
        guess: Guess,
        nick: Nick,
        ip: IpAddr,
    ) -> bool {
        // The semaphore is never closed; a dropped guess is given back.
        let Ok(slot) = self.verify_slots.clone().acquire_owned().await else {
            return false;
        };
        let job = tokio::task::spawn_blocking(move || {
            let right = verify_password(&hash, &password);
            if !right {
                warn!(nick = %nick, %ip, "wrong password");
            }
            if let Some(length) = guess.settle(right) {
                warn!(%ip, "too many wrong passwords: address locked out for {} s", length.as_secs());
            }
            drop(slot);
            right
        });
        job.await.unwrap_or(false)
    }
}

/// One logged-in client (mini-redis's `Handler`): it owns the connection's
/// read half, the client's queue, its rate state and its role, reads each
/// line, answers what concerns its client alone (its errors, `PONG`,
/// `/help`) straight into its own queue, and enters the hub once for each
/// command that reaches others.
struct Peer<R> {
    ctx: Arc<PeerContext>,
    /// Keeps the connection counted; rates the lines of its address group.
    ticket: Ticket,
    id: ClientId,
    /// Changed by `/op` and `/deop` while the session runs.
    role: SharedRole,
    /// Until when the invite this session came in with is valid (for
    /// `/register` under `invite-only`).
    invite_until: Option<SystemTime>,
    ip: IpAddr,
    /// The address this connection reached: the host of last resort for
    /// the invite links this client asks for.
    local: Option<SocketAddr>,
    reader: LineReader<R>,
    outbox: Outbox,
    bucket: TokenBucket,
    /// History mode: replays after its own joins.
    mode: Mode,
}

/// The answer to a command above the sender's role, by the command's
/// privilege (the admin's keeps protocol v1's text).
fn not_permitted(privilege: Privilege) -> &'static str {
    match privilege {
        Privilege::Moderator => "only moderators and the admin may do that",
        Privilege::Anyone | Privilege::Admin => "only the admin may do that",
    }
}

impl<R: AsyncRead + Unpin> Peer<R> {
    /// Answers lines until the client leaves, floods, idles past the limit
    /// or quits, or the hub closes it. Limits are read per line, so a
    /// reload applies at once.
    async fn run(&mut self) {
        while let Some(frame) = self.next_frame().await {
            // Read again: a reload while this read waited applies to this line.
            let limits = self.ctx.gate.limits();
            match self.rate(&limits) {
                Rate::Pass => {}
                Rate::Limited => {
                    self.end_dropped(&frame);
                    continue;
                }
                Rate::Flooding => return,
            }
            let Some(line) = self.text_of(frame) else {
                continue;
            };
            if self.dispatch(&line).await.is_break() {
                return;
            }
        }
    }

    /// The next frame, or `None` once the client is gone, closed by the
    /// hub, or silent for longer than the idle limit (then told so).
    async fn next_frame(&mut self) -> Option<Frame> {
        let idle = self.ctx.gate.limits().idle_timeout;
        let frame = tokio::select! {
            _ = self.outbox.closing() => return None,
            f = within(deadline_after(idle), self.reader.read_frame()) => f,
        };
        match frame {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => {
                debug!(error = %e, "read failed");
                None
            }
            Err(_) => {
                let text = format!("no line for {} s: disconnected", idle.as_secs());
                self.error(ErrorCode::Timeout, &text);
                None
            }
        }
    }

    /// Takes one line from this connection's budget and its address
    /// group's; a line over either is dropped with an `ERROR`, and a
    /// connection far over its own is told and closed (`Flooding`).
    fn rate(&mut self, limits: &Limits) -> Rate {
        let now = std::time::Instant::now();
        let rate = self.bucket.take(limits.rate_limit, limits.rate_burst, now);
        match rate {
            // The address's connections together, on top of this one's.
            Rate::Pass
                if self.ticket.take_group_line(limits.address_rate_limit, now) != Rate::Pass =>
            {
                let text = format!(
                    "line dropped: at most {} lines per second from your address, all its connections together",
                    limits.address_rate_limit
                );
                self.error(ErrorCode::RateLimited, &text);
                Rate::Limited
            }
            Rate::Pass => Rate::Pass,
            Rate::Limited => {
                let text = format!(
                    "line dropped: at most {} lines per second (bursts of {})",
                    limits.rate_limit, limits.rate_burst
                );
                self.error(ErrorCode::RateLimited, &text);
                Rate::Limited
            }
            Rate::Flooding => {
                warn!(client = self.id.0, "flooding: disconnected");
                self.error(ErrorCode::RateLimited, "flooding: disconnected");
                Rate::Flooding
            }
        }
    }

    /// A `/history` or `/search` line dropped by the line budget still gets
    /// its empty end line after the `ERROR`, so a client waiting for the
    /// answer is not left waiting. Only such a line is parsed here; the
    /// rest is dropped as read.
    fn end_dropped(&self, frame: &Frame) {
        let Frame::Line(line) = frame else {
            return;
        };
        if self.ctx.hub.history().is_none() || history_word(line).is_none() {
            return;
        }
        match Command::parse(line) {
            Ok(Command::History(_)) => self.end_empty(Answer::Page),
            Ok(Command::Search(_)) => self.end_empty(Answer::Hits),
            _ => {}
        }
    }

    /// The text of a frame that is a whole, valid line; anything else is
    /// answered with its `ERROR` and dropped.
    fn text_of(&self, frame: Frame) -> Option<String> {
        let line = match frame {
            Frame::Line(line) => line,
            Frame::TooLong => {
                let text = format!("a line is at most {MAX_CLIENT_LINE} bytes including its newline; the rest of it was discarded");
                self.error(ErrorCode::LineTooLong, &text);
                return None;
            }
            Frame::InvalidUtf8 => {
                self.error(
                    ErrorCode::InvalidUtf8,
                    "line discarded: it is not valid UTF-8",
                );
                return None;
            }
        };
        if let Err(e) = check_text(&line) {
            self.error(ErrorCode::BadText, &format!("line discarded: {e}"));
            return None;
        }
        Some(line)
    }

    /// Carries out one line: the privilege check, then either an answer of
    /// its own or one call into the hub. `Break` once the client quit.
    async fn dispatch(&self, line: &str) -> ControlFlow<()> {
        if self.ctx.hub.history().is_none() {
            if let Some(word) = history_word(line) {
                // A server without history answers these words as v1 did
                // any unknown word: as typed, whatever follows them.
                let e = unknown_command(word);
                self.error(e.code, &e.text);
                return ControlFlow::Continue(());
            }
        }
        let parsed = Command::parse(line);
        // A misused moderator's or admin's command is `not-permitted` for
        // anyone below it, like the command itself: its usage is not theirs.
        // The role is read per line: `/op` and `/deop` apply at once.
        let privilege = match &parsed {
            Ok(cmd) => cmd.privilege(),
            Err(e) => e.privilege,
        };
        if !hub::may(self.role.get(), privilege) {
            self.error(ErrorCode::NotPermitted, not_permitted(privilege));
            return ControlFlow::Continue(());
        }
        let cmd = match parsed {
            Ok(cmd) => cmd,
            Err(e) => {
                self.error(e.code, &e.text);
                return ControlFlow::Continue(());
            }
        };
        let (hub, id) = (&self.ctx.hub, self.id);
        match cmd {
            Command::Empty => {}
            Command::Ping(token) => self.send(ServerLine::Pong(token).encode()),
            Command::Help => self.help(),
            Command::Quit(reason) => {
                hub.quit(id, reason);
                return ControlFlow::Break(());
            }
            Command::Say(text) => hub.say(id, Speech::Msg, text),
            Command::Me(text) => hub.say(id, Speech::Action, text),
            Command::Msg { to, text } => hub.private(id, to, text),
            Command::Join(room) => {
                if let Some(entered) = hub.join(id, room) {
                    self.replay(&entered).await;
                }
            }
            Command::Who => hub.who(id),
            Command::Rooms => hub.rooms(id),
            Command::Kick { nick, reason } => hub.kick(id, nick, reason),
            Command::Ban {
                nick,
                duration,
                reason,
            } => hub.ban(id, nick, duration, reason).await,
            Command::Unban(target) => hub.unban(id, target).await,
            Command::Bans => hub.list_bans(id),
            Command::Nick(new) => hub.rename(id, new).await,
            Command::Op(nick) => hub.set_role(id, nick, Role::Moderator).await,
            Command::Deop(nick) => hub.set_role(id, nick, Role::User).await,
            Command::Ops => hub.ops(id),
            Command::History(ask) => self.history(ask).await,
            Command::Search(words) => self.search(&words).await,
            Command::Register { password, code } => {
                let caller = &self.caller();
                let lines = account_commands::register(&self.ctx, caller, password, code);
                self.send_all(lines.await)
            }
            Command::Password { old, new } => {
                let caller = &self.caller();
                let lines = account_commands::password(&self.ctx, caller, old, new);
                self.send_all(lines.await)
            }
            Command::Unregister(nick) => {
                self.send_all(account_commands::unregister(&self.ctx, nick).await)
            }
            Command::Registration(change) => {
                self.send_all(account_commands::registration(&self.ctx, change).await)
            }
            Command::Invite { uses, duration } => {
                let caller = &self.caller();
                let lines = account_commands::invite(&self.ctx, caller, uses, duration);
                self.send_all(lines.await)
            }
            Command::Invites => {
                let caller = &self.caller();
                self.send_all(account_commands::invites(&self.ctx, caller).await)
            }
            Command::Uninvite(prefix) => {
                let caller = &self.caller();
                let lines = account_commands::uninvite(&self.ctx, caller, &prefix);
                self.send_all(lines.await)
            }
        }
        ControlFlow::Continue(())
    }

    /// `/help`: the commands the client's role may use, and the history
    /// commands for a history-mode session of a server that keeps history
    /// (a v1 session's `/help` stays v1's; the commands still answer it).
    fn help(&self) {
        for text in hub::help(self.role.get()) {
            self.send(ServerLine::Info(text).encode());
        }
        if self.mode == Mode::History && self.ctx.hub.history().is_some() {
            for text in HISTORY_HELP {
                self.send(ServerLine::Info(text).encode());
            }
        }
    }

    /// The replay after a join of a history-mode session: the room's last
    /// kept lines, then `HISTORYEND`. A replay that could not be read
    /// (over the address's read budget, no read place free, the database
    /// failing) is an empty one, `HISTORYEND <room> 0 0`: a client that
    /// saw the room before asks `/history since` after it.
    async fn replay(&self, room: &Entered) {
        let Some(history) = self.ctx.hub.history() else {
            return;
        };
        if self.mode != Mode::History {
            return;
        }
        let page = match self.ticket.take_history_read(1, std::time::Instant::now()) {
            Ok(()) => history
                .recent(&room.key, None, REPLAY_LINES, self.answer_bytes())
                .await
                .unwrap_or_else(|e| {
                    self.log_unread(&e);
                    Page::default()
                }),
            Err(_) => {
                debug!(client = self.id.0, "replay over its address's read budget");
                Page::default()
            }
        };
        self.send_page(&room.name, &page);
    }

    /// `/history …` about the client's current room.
    async fn history(&self, ask: HistoryAsk) {
        let Some((history, room)) = self.history_room(1, Answer::Page) else {
            return;
        };
        let bytes = self.answer_bytes();
        let page = match ask {
            HistoryAsk::Last(n) => history.recent(&room.key, None, n, bytes).await,
            HistoryAsk::Before { at, n } => history.recent(&room.key, Some(at), n, bytes).await,
            HistoryAsk::Since { at, n } => history.since(&room.key, at, n, bytes).await,
        };
        match page {
            Ok(page) => self.send_page(&room.name, &page),
            Err(e) => {
                self.not_answered(&e);
                self.send_end(&room.name, 0, 0);
            }
        }
    }

    /// `/search WORDS` in the client's current room: `FOUND` lines, newest
    /// first, as many as fit in the answer's bytes, then `FOUNDEND`.
    async fn search(&self, words: &[&str]) {
        // Checked once, here: words the store would refuse cost no reads.
        let words = match SearchWord::parse_all(words) {
            Ok(words) => words,
            Err(e) => {
                self.error(ErrorCode::BadArgument, &e.to_string());
                return self.end_empty(Answer::Hits);
            }
        };
        let Some((history, room)) = self.history_room(SEARCH_READS, Answer::Hits) else {
            return;
        };
        let bytes = self.answer_bytes();
        let found = history.search(&room.key, words, MAX_SEARCH_HITS, bytes);
        let Hits { rows, more } = match found.await {
            Ok(hits) => hits,
            Err(e) => {
                self.not_answered(&e);
                return self.send_found_end(&room.name, 0, false);
            }
        };
        for row in &rows {
            if !self.try_send(ServerLine::Found(kept(&room.name, row)).encode()) {
                return;
            }
        }
        let count = u32::try_from(rows.len()).unwrap_or(u32::MAX);
        self.send_found_end(&room.name, count, more);
    }

    fn send_found_end(&self, room: &str, count: u32, more: bool) {
        self.send(ServerLine::FoundEnd { room, count, more }.encode());
    }

    /// What a history command needs: the history (a server without it
    /// never gets here: [`Peer::dispatch`] answers the words as unknown),
    /// the client's room, and `reads` from its address's budget (over it:
    /// `rate-limited`, then the empty end line of `answer`).
    fn history_room(&self, reads: u32, answer: Answer) -> Option<(&History, Entered)> {
        let history = self.ctx.hub.history()?;
        let room = self.ctx.hub.room_of(self.id)?;
        if let Err(wait) = self
            .ticket
            .take_history_read(reads, std::time::Instant::now())
        {
            let why = "too many history reads and searches from your address";
            self.send(wait_line(wait, why));
            self.send_empty_end(answer, &room.name);
            return None;
        }
        Some((history, room))
    }

    /// The empty end line of `answer` in the client's current room: a
    /// history command that reads nothing still gets one.
    fn end_empty(&self, answer: Answer) {
        if let Some(room) = self.ctx.hub.room_of(self.id) {
            self.send_empty_end(answer, &room.name);
        }
    }

    fn send_empty_end(&self, answer: Answer, room: &str) {
        match answer {
            Answer::Page => self.send_end(room, 0, 0),
            Answer::Hits => self.send_found_end(room, 0, false),
        }
    }

    /// The most bytes one history answer may take: a quarter of the
    /// client's queue, so an answer alone cannot fill it; with the queue
    /// already full of live lines it may still overflow, and the client is
    /// dropped as one that does not read.
    fn answer_bytes(&self) -> usize {
        match self.ctx.gate.limits().outbound_queue {
            0 => usize::MAX,
            queue => queue / 4,
        }
    }

    /// A read page as `HISTORY` lines, oldest first, then `HISTORYEND`.
    fn send_page(&self, room: &str, page: &Page) {
        for row in &page.rows {
            if !self.try_send(ServerLine::History(kept(room, row)).encode()) {
                return;
            }
        }
        let sent = u32::try_from(page.rows.len()).unwrap_or(u32::MAX);
        self.send_end(room, sent, page.left);
    }

    fn send_end(&self, room: &str, sent: u32, left: u32) {
        self.send(ServerLine::HistoryEnd { room, sent, left }.encode());
    }

    /// Tells the client why its history command's read gave no answer (its
    /// empty end line follows). No read place free: `ERROR rate-limited`,
    /// like a read over budget. The read failing: `INFO history NOT
    /// available: …`.
    fn not_answered(&self, e: &HistoryError) {
        self.log_unread(e);
        let why = match e {
            HistoryError::Busy => {
                return self.send(wait_line(BUSY_WAIT, "the history is busy"));
            }
            HistoryError::TooSlow(_) => "the query took too long",
            HistoryError::Words(_) | HistoryError::Store(_) => "the history cannot be read",
        };
        let text = format!("history NOT available: {why}");
        self.send(ServerLine::Info(&text).encode());
    }

    /// Logs a read that gave no answer: a warning when the store failed; a
    /// busy store or a query stopped for its time limit (the asker's) only
    /// at debug, as they come in bursts.
    fn log_unread(&self, e: &HistoryError) {
        match e {
            HistoryError::Store(_) => warn!(error = %e, "cannot read history"),
            _ => debug!(client = self.id.0, error = %e, "history read not answered"),
        }
    }

    fn error(&self, code: ErrorCode, text: &str) {
        self.send(ServerLine::Error { code, text }.encode());
    }

    fn send_all(&self, lines: Vec<Bytes>) {
        for line in lines {
            self.send(line);
        }
    }

    /// Who runs an account or invite command.
    fn caller(&self) -> Caller {
        Caller {
            id: self.id,
            role: self.role.get(),
            invite_until: self.invite_until,
            ip: self.ip,
            group: self.ticket.group(),
            local: self.local,
        }
    }

    /// Queues a line for this client alone, without the hub. A client the
    /// hub already let go (kicked, quit, dropped) gets nothing more; one
    /// whose queue this line overflows is dropped like any client that
    /// does not read.
    fn send(&self, line: Bytes) {
        self.try_send(line);
    }

    /// [`Peer::send`], saying whether the line fit: a client whose queue
    /// overflowed is being dropped, and the rest of a long answer need not
    /// be sent.
    fn try_send(&self, line: Bytes) -> bool {
        let fits = self.outbox.send_reply(line).is_ok();
        if !fits {
            self.ctx.hub.not_reading(self.id);
        }
        fits
    }

    /// The connection ended: the hub forgets the client (a `PART` to its
    /// room unless it quit), and its queue drains and closes.
    fn leave(&self) {
        self.ctx.hub.disconnected(self.id);
        self.outbox.close();
    }
}

/// Which end line closes a history command's answer: `HISTORYEND` for
/// `/history`, `FOUNDEND` for `/search`.
#[derive(Clone, Copy)]
enum Answer {
    Page,
    Hits,
}

/// How long a client whose history command found no read place free is
/// told to wait.
const BUSY_WAIT: Duration = Duration::from_secs(1);

/// The command word of `line` as typed, when it is `history` or `search`
/// in any case (split like [`Command::parse`] splits it).
fn history_word(line: &str) -> Option<&str> {
    let body = line.strip_prefix('/')?;
    let word = body.trim_start_matches(' ').split(' ').next()?;
    ["history", "search"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
        .then_some(word)
}

/// A kept row as `HISTORY` and `FOUND` carry it, under the room's current
/// name.
fn kept<'a>(room: &'a str, row: &'a Row) -> Kept<'a> {
    Kept {
        room,
        at: row.at,
        nick: &row.nick,
        action: row.action,
        text: &row.text,
    }
}

/// How the join gate admitted, for the log (never the code itself).
fn admitted_how(admitted: &Admitted) -> String {
    match admitted {
        Admitted::Password => "join password".to_owned(),
        Admitted::Invite(row) => format!("invite {}", row.prefix),
    }
}

/// A login the store could not serve: told so and closed; the operator
/// finds the reason in the log.
/// The database could not be read to check an invite code: nobody's wrong
/// guess. `server-full` is the protocol's closest code (the server cannot
/// take the client now); the text says what went wrong.
fn store_failed(e: &crate::store::StoreError) -> LoginEnd {
    warn!(error = %e, "the join gate cannot reach the database");
    LoginEnd::Refused(
        ServerLine::Error {
            code: ErrorCode::ServerFull,
            text: "the server could not check the code (its database is unavailable); try again later",
        }
        .encode(),
    )
}

/// `now + limit`; `None` (no deadline) when the limit is off (`0`) or so
/// large that it is not a deadline at all.
fn deadline_after(limit: Duration) -> Option<Instant> {
    if limit.is_zero() {
        return None;
    }
    Instant::now().checked_add(limit)
}

/// `ERROR rate-limited <seconds> <why>; try again in <seconds> s`: the
/// address gets no password attempt for that long.
fn wait_line(left: Duration, why: &str) -> bytes::Bytes {
    // Rounded up: a client that waits this long is let in.
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    let text = format!("{secs} {why}; try again in {secs} s");
    ServerLine::Error {
        code: ErrorCode::RateLimited,
        text: &text,
    }
    .encode()
}

/// Sends one last line over TLS, closes it in order, and lets the peer read
/// it before the socket goes.
async fn refuse<S>(mut conn: Connection<S>, line: &[u8])
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = timeout(LINGER, async {
        conn.write_line(line).await?;
        conn.shutdown().await
    })
    .await;
    // Reading until the peer closes (or briefly) avoids a TCP reset that
    // could destroy the line before the peer reads it.
    let _ = timeout(LINGER, async {
        while let Ok(Some(_)) = conn.read_frame().await {}
    })
    .await;
}

/// The plaintext equivalent of [`refuse`], for peers that do not speak TLS.
async fn linger_close(mut tcp: TcpStream, line: &[u8]) {
    let _ = timeout(LINGER, async {
        tcp.write_all(line).await?;
        tcp.shutdown().await
    })
    .await;
    let mut sink = [0u8; 512];
    let _ = timeout(LINGER, async {
        while let Ok(n) = tcp.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::super::limits::Admission;
    use super::*;

    /// A context with no bans and no accounts (not even the admin's, which
    /// a real server always has).
    fn bare_context(dir: &std::path::Path) -> (Arc<PeerContext>, Arc<Gate>) {
        let (cert, _) = crate::certs::load_or_generate(dir, &[]).unwrap();
        let tls = TlsConfigs::new(&cert, false).unwrap();
        let bans = super::super::bans::BanList::load(&dir.join("bans")).unwrap();
        let accounts = super::super::accounts::Accounts::load(&dir.join("acc")).unwrap();
        let gate = Gate::new(crate::config::Limits::default());
        let hub = Hub::new(bans, accounts, crate::store::Storage::in_memory());
        (
            Arc::new(PeerContext::new(
                hub,
                tls,
                gate.clone(),
                Access::new(
                    &crate::config::AccessConfig::default(),
                    crate::access::Identity::of(&cert, None),
                ),
            )),
            gate,
        )
    }

    /// What the hub finds under its lock wins over what the login looked
    /// at: a moderator whose account went away while its password was
    /// checked comes in as a user, and a nickname that became an account
    /// while no password was asked does not come in.
    #[tokio::test]
    async fn registration_rechecks_the_account_under_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, _gate) = bare_context(dir.path());
        let ip = IpAddr::from([127, 0, 0, 1]);
        let (outbox, _inbox) = outbound::channel(0);
        let role = SharedRole::new(Role::Moderator);
        let nick = Nick::parse("mod1").unwrap();
        ctx.hub
            .register(nick, role.clone(), true, Origin::v1(ip, ip), outbox)
            .unwrap();
        assert_eq!(role.get(), Role::User);

        let bob = Nick::parse("bob").unwrap();
        ctx.hub
            .with_accounts(|a| a.cache_insert(bob.clone(), "$argon2id$x".into(), Role::User));
        let (outbox, _inbox) = outbound::channel(0);
        let refused = ctx
            .hub
            .register(bob, Role::User, false, Origin::v1(ip, ip), outbox);
        assert_eq!(refused, Err(RegisterError::NowAccount));
    }

    /// The `admin` nickname never logs in without a password check, even if
    /// the accounts somehow lost the admin's.
    #[tokio::test]
    async fn admin_without_a_stored_password_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, _gate) = bare_context(dir.path());
        let (server, mut client) = tokio::io::duplex(4096);
        let mut conn = Connection::new(server, MAX_CLIENT_LINE);
        client.write_all(b"admin\n").await.unwrap();
        let ip = IpAddr::from([127, 0, 0, 1]);
        let mut login = Login {
            ctx: &ctx,
            conn: &mut conn,
            ip,
            group: ip,
            mode: Mode::V1,
            admitted: None,
        };
        match login.run(true).await.unwrap() {
            LoginEnd::Refused(line) => assert!(
                line.starts_with(b"ERROR not-permitted "),
                "{}",
                String::from_utf8_lossy(&line)
            ),
            _ => panic!("the admin nickname was not refused"),
        }
        assert_eq!(ctx.hub.user_count(), 0);
    }

    /// A login dropped while its password is being checked (its deadline
    /// passed, it was evicted) keeps its verification slot until argon2
    /// really ends, and its wrong guess still counts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_login_cancelled_during_verification_holds_its_slot_and_counts_its_guess() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, gate) = bare_context(dir.path());
        gate.set_limits(crate::config::Limits {
            lockout_after: 1,
            ..Default::default()
        });
        let nick = Nick::parse("omega").unwrap();
        let mut accounts = super::super::accounts::Accounts::load(&dir.path().join("acc")).unwrap();
        accounts.set_password(&nick, "правильный пароль").unwrap();
        let hash = accounts.hash_of(&nick).unwrap().to_owned();
        let ip = IpAddr::from([192, 0, 2, 1]);
        let guess = gate.reserve_guess(ip).unwrap();
        let wrong = "неверно 密码 مرور 👩🏽‍💻 e\u{301}".to_owned();
        let check = ctx.verify(hash, wrong, guess, nick, ip);
        // Started, then dropped, as a login is when its deadline passes.
        assert!(timeout(Duration::from_millis(1), check).await.is_err());
        assert_eq!(
            ctx.verify_slots.available_permits(),
            1,
            "the check still running must keep its slot"
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while ctx.verify_slots.available_permits() < 2 {
            assert!(Instant::now() < deadline, "the check never ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            gate.locked_out(ip).is_some(),
            "the cancelled login's wrong guess was not counted"
        );
    }

    /// What concerns the client alone is answered without the hub: with
    /// the hub's lock held elsewhere, every one of these lines still gets
    /// its answer, and a user's admin commands (and their misuse) get
    /// `not-permitted`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_clients_own_answers_never_wait_for_the_hub() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, gate) = bare_context(dir.path());
        let ip = IpAddr::from([127, 0, 0, 1]);
        let Admission::Admitted(ticket) = gate.admit(ip) else {
            panic!("the first connection is admitted");
        };
        let (outbox, inbox) = outbound::channel(0);
        let nick = Nick::parse("alice").unwrap();
        let id = ctx
            .hub
            .register(nick, Role::User, false, Origin::v1(ip, ip), outbox.clone())
            .unwrap();
        inbox.take_lines();
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut peer = Peer {
            bucket: TokenBucket::new(gate.limits().rate_burst, Instant::now().into_std()),
            ctx: ctx.clone(),
            ticket,
            id,
            role: SharedRole::new(Role::User),
            invite_until: None,
            ip,
            local: None,
            reader: LineReader::new(server, MAX_CLIENT_LINE),
            outbox,
            mode: Mode::V1,
        };
        let long = "é".repeat(MAX_CLIENT_LINE);
        let lines =
            format!("{long}\nbell\u{7}\n/ping привет\n/help\n/kick bob\n/kick\n/bans\n/frob\n");
        client.write_all(lines.as_bytes()).await.unwrap();
        drop(client);

        let held = ctx.hub.hold_state();
        let run = tokio::spawn(async move { peer.run().await });
        timeout(Duration::from_secs(5), run)
            .await
            .expect("the peer answered without the hub's lock")
            .unwrap();
        drop(held);
        let got = inbox.take_lines();
        let not_mod = "ERROR not-permitted only moderators and the admin may do that";
        let help = got.iter().filter(|l| l.starts_with("INFO ")).count();
        assert_eq!(help, hub::help(Role::User).count(), "{got:?}");
        let others: Vec<&str> = got
            .iter()
            .map(String::as_str)
            .filter(|l| !l.starts_with("INFO "))
            .collect();
        assert_eq!(others.len(), 7, "{got:?}");
        assert!(others[0].starts_with("ERROR line-too-long a line is at most 4096 bytes"));
        assert!(others[1].starts_with("ERROR bad-text "), "{}", others[1]);
        assert_eq!(others[2..6], ["PONG привет", not_mod, not_mod, not_mod]);
        assert!(
            others[6].starts_with("ERROR unknown-command "),
            "{}",
            others[6]
        );
    }

    /// A connection's tasks are allocated once for their largest state and
    /// live as long as the client: the handshake state is boxed so that an
    /// idle client holds only what its [`Peer`] and writer need. This
    /// catches a change that brings handshake-sized state back (idle
    /// memory per connection is a target in docs/performance.md).
    #[tokio::test]
    async fn per_connection_task_state_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, gate) = bare_context(dir.path());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (tcp, peer) = listener.accept().await.unwrap();
        let Admission::Admitted(ticket) = gate.admit(peer.ip()) else {
            panic!("the first connection is admitted");
        };
        let serve = serve(ctx, tcp, peer, ticket);
        assert!(
            std::mem::size_of_val(&serve) <= 2048,
            "the per-connection task is {} bytes",
            std::mem::size_of_val(&serve)
        );
        let (_outbox, inbox) = outbound::channel(1024);
        let (w, _r) = tokio::io::duplex(16);
        let writer = outbound::run_writer(inbox, w);
        assert!(
            std::mem::size_of_val(&writer) <= 1024,
            "the writer task is {} bytes",
            std::mem::size_of_val(&writer)
        );
    }
}
