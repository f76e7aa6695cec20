//! The load generator's clients: TCP + TLS (full handshake) + login in the
//! target's language (tlschat protocol v1, minimal IRC, or the baseline's
//! bare greeting), then a reader task per connection that timestamps every
//! benchmark message it receives, and sender tasks with a window of
//! unacknowledged messages.
//!
//! A benchmark message's text is `P<sender>:<seq>:<µs since start> xxx…`,
//! padded to the configured length; every process clock reading is from one
//! `Instant`, so sender and receiver share the clock.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use memchr::memmem;
use rustls::pki_types::ServerName;
use tlschat_protocol::history::{split_stamp, HISTORY_ALPN};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

pub type Tls = tokio_rustls::client::TlsStream<TcpStream>;
pub type Writer = Arc<tokio::sync::Mutex<WriteHalf<Tls>>>;

/// How long one login may take before the run is declared broken.
pub const LOGIN_LIMIT: Duration = Duration::from_secs(60);

/// Which server a run talks to. tlschat runs in one of several history
/// settings, so the cost of history is measured within one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Tlschat(History),
    Ngircd,
    Baseline,
}

/// How a tlschat target keeps history, and whether its clients ask for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum History {
    /// As shipped: the server keeps history; the clients offer ALPN
    /// `tlschat/2` as tlschat's own clients do, so they get stamped lines
    /// and a replay after each join.
    On,
    /// `--no-history`: the server answers no ALPN, its clients (offering
    /// it all the same) get v1 lines.
    Off,
    /// `--history-stall`: the server's history writer never commits (a
    /// stalled disk); its queue fills and further lines are dropped.
    Stalled,
    /// The server keeps history, but the clients offer no ALPN: v1 lines,
    /// no replay. What the store costs without the stamps on the wire.
    V1,
}

impl Target {
    /// tlschat as shipped.
    pub const TLSCHAT: Target = Target::Tlschat(History::On);

    pub const ALL: [Target; 6] = [
        Target::TLSCHAT,
        Target::Tlschat(History::Off),
        Target::Tlschat(History::Stalled),
        Target::Tlschat(History::V1),
        Target::Ngircd,
        Target::Baseline,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Tlschat(History::On) => "tlschat",
            Target::Tlschat(History::Off) => "tlschat-nohist",
            Target::Tlschat(History::Stalled) => "tlschat-stall",
            Target::Tlschat(History::V1) => "tlschat-v1",
            Target::Ngircd => "ngircd",
            Target::Baseline => "baseline",
        }
    }

    pub fn parse(s: &str) -> Result<Target> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
                anyhow!("unknown target `{s}` ({})", names.join(", "))
            })
    }

    /// tlschat in a history setting other than the shipped one.
    pub fn history_variant(self) -> bool {
        matches!(self, Target::Tlschat(h) if h != History::On)
    }

    /// Do its clients offer ALPN `tlschat/2`?
    pub fn offers_history(self) -> bool {
        matches!(
            self,
            Target::Tlschat(History::On | History::Off | History::Stalled)
        )
    }

    fn irc(self) -> bool {
        self == Target::Ngircd
    }

    /// The line that says `text` in `room`.
    pub fn say_prefix(self, room: &str) -> Vec<u8> {
        match self {
            Target::Ngircd => format!("PRIVMSG {room} :").into_bytes(),
            Target::Tlschat(_) | Target::Baseline => Vec::new(),
        }
    }

    pub fn eol(self) -> &'static [u8] {
        if self.irc() {
            b"\r\n"
        } else {
            b"\n"
        }
    }

    /// `/join ROOM` or `JOIN ROOM`.
    pub fn join_line(self, room: &str) -> Vec<u8> {
        match self {
            Target::Ngircd => format!("JOIN {room}\r\n").into_bytes(),
            _ => format!("/join {room}\n").into_bytes(),
        }
    }
}

/// A client's source address: 127.0.0.2 … 127.0.0.251 in turn, so tens of
/// thousands of connections never run short of ports.
pub fn source_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, (2 + i % 250) as u8)
}

/// Opens connections to one server.
pub struct Dialer {
    pub target: Target,
    pub addr: SocketAddr,
    connector: TlsConnector,
    /// The negotiated TLS version and cipher suite (first connection).
    pub negotiated: OnceLock<String>,
}

impl Dialer {
    pub fn new(target: Target, addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Dialer {
        Dialer {
            target,
            addr,
            connector: TlsConnector::from(config),
            negotiated: OnceLock::new(),
        }
    }

    /// TCP (from a 127.0.0.x source) + a full TLS handshake.
    pub async fn connect(&self, i: usize, rcvbuf: Option<u32>) -> Result<LineConn> {
        let sock = TcpSocket::new_v4()?;
        if let Some(size) = rcvbuf {
            sock.set_recv_buffer_size(size)?;
        }
        sock.bind(SocketAddr::new(source_ip(i).into(), 0))
            .context("bind to a 127.0.0.x source address")?;
        let tcp = sock.connect(self.addr).await.context("TCP connect")?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("localhost").expect("valid name");
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        let history = tls.get_ref().1.alpn_protocol() == Some(HISTORY_ALPN);
        if self.negotiated.get().is_none() {
            let c = tls.get_ref().1;
            let mut text = format!(
                "{:?} {:?}",
                c.protocol_version()
                    .map_or_else(|| "?".into(), |v| format!("{v:?}")),
                c.negotiated_cipher_suite()
                    .map_or_else(|| "?".into(), |s| format!("{:?}", s.suite())),
            )
            .replace('"', "");
            if let Some(alpn) = c.alpn_protocol() {
                text.push_str(&format!(" ALPN {}", String::from_utf8_lossy(alpn)));
            }
            let _ = self.negotiated.set(text);
        }
        Ok(LineConn {
            io: tls,
            buf: BytesMut::with_capacity(16 * 1024),
            target: self.target,
            history,
        })
    }
}

/// A connection before it is split: line reads for the login.
pub struct LineConn {
    pub io: Tls,
    pub buf: BytesMut,
    target: Target,
    /// The server agreed to ALPN `tlschat/2`: room lines come stamped and
    /// every join is followed by a replay that ends with `HISTORYEND`.
    history: bool,
}

impl LineConn {
    /// The next line without `\r\n`; `None` at end of stream.
    pub async fn read_line(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf) {
                let mut line = self.buf.split_to(i + 1).to_vec();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(64 * 1024);
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    pub async fn send(&mut self, data: &[u8]) -> Result<()> {
        self.io.write_all(data).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Reads until `done` accepts a line; answers `PING`; fails on an
    /// error line or the end of the stream.
    async fn until(&mut self, what: &str, mut done: impl FnMut(&[u8]) -> bool) -> Result<()> {
        loop {
            let Some(line) = self.read_line().await? else {
                bail!("the server closed the connection while we waited for {what}");
            };
            if done(&line) {
                return Ok(());
            }
            if self.target.irc() {
                if let Some(token) = line.strip_prefix(b"PING ") {
                    let mut pong = b"PONG ".to_vec();
                    pong.extend_from_slice(token);
                    pong.extend_from_slice(b"\r\n");
                    self.send(&pong).await?;
                    continue;
                }
                if irc_error(&line) || line.starts_with(b"ERROR ") {
                    bail!("waiting for {what}: {}", String::from_utf8_lossy(&line));
                }
            } else if line.starts_with(b"ERROR ")
                || line.starts_with(b"BAN ")
                || line.starts_with(b"REFUSE ")
            {
                bail!("waiting for {what}: {}", String::from_utf8_lossy(&line));
            }
        }
    }

    /// Logs in as `nick` and (IRC: joins, tlschat: moves to) `room`.
    /// tlschat users are in `#lobby` once logged in; IRC users in no
    /// channel unless `room` is given. The baseline has no login: its
    /// `OK` greeting says the relay has registered the connection.
    pub async fn login(&mut self, nick: &str, room: Option<&str>) -> Result<()> {
        match self.target {
            Target::Tlschat(_) => {
                self.until("NICK", |l| l == b"NICK").await?;
                self.send(format!("{nick}\n").as_bytes()).await?;
                self.until("WELCOME", |l| l.starts_with(b"WELCOME "))
                    .await?;
                self.joined("#lobby").await?;
                if let Some(room) = room.filter(|r| *r != "#lobby") {
                    self.send(&self.target.join_line(room)).await?;
                    self.joined(room).await?;
                }
            }
            Target::Ngircd => {
                self.send(format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n").as_bytes())
                    .await?;
                let welcome = format!(" 001 {nick} ");
                self.until("001", |l| memmem::find(l, welcome.as_bytes()).is_some())
                    .await?;
                if let Some(room) = room {
                    self.send(&Target::Ngircd.join_line(room)).await?;
                    let end = format!(" 366 {nick} {room} ");
                    self.until("366", |l| memmem::find(l, end.as_bytes()).is_some())
                        .await?;
                }
            }
            Target::Baseline => self.until("OK", |l| l == b"OK").await?,
        }
        Ok(())
    }

    /// Waits for the `USERS` that completes a tlschat join of `room` and,
    /// when history was agreed, for the end of the replay after it (so the
    /// server's history read is done before any load starts).
    async fn joined(&mut self, room: &str) -> Result<()> {
        let users = format!("USERS {room} ");
        self.until("USERS", |l| l.starts_with(users.as_bytes()))
            .await?;
        if self.history {
            let end = format!("HISTORYEND {room} ");
            self.until("HISTORYEND", |l| l.starts_with(end.as_bytes()))
                .await?;
        }
        Ok(())
    }

    /// Leaves the server in an orderly way (`/quit`, `QUIT`, or a TLS
    /// close for the baseline) and reads until the server has closed.
    pub async fn quit(mut self, limit: Duration) -> Result<()> {
        match self.target {
            Target::Tlschat(_) => self.send(b"/quit\n").await?,
            Target::Ngircd => self.send(b"QUIT\r\n").await?,
            Target::Baseline => self.io.shutdown().await?,
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            self.buf.clear();
            match tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.buf)).await {
                Err(_) => bail!("the server did not close within {limit:?} after the quit"),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
                Ok(Ok(_)) => {}
            }
        }
    }
}

/// An IRC numeric error (4xx/5xx) reply.
fn irc_error(line: &[u8]) -> bool {
    let mut parts = line.split(|&b| b == b' ');
    let _prefix = parts.next();
    matches!(parts.next(), Some(code) if code.len() == 3
        && code.iter().all(u8::is_ascii_digit)
        && (code[0] == b'4' || code[0] == b'5'))
}

/// Counts lines matching an [`Event`].
#[derive(Default)]
pub struct Counter {
    n: AtomicUsize,
    notify: Notify,
}

impl Counter {
    fn hit(&self) {
        self.n.fetch_add(1, Ordering::Relaxed);
        self.notify.notify_waiters();
    }

    pub fn get(&self) -> usize {
        self.n.load(Ordering::Relaxed)
    }

    pub async fn wait_for(&self, n: usize, limit: Duration, what: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.notify.notified();
            if self.get() >= n {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!("{what}: {} of {n} after {limit:?}", self.get());
            }
        }
    }
}

/// A line a reader watches for (besides benchmark messages).
pub struct Event {
    pub prefix: Vec<u8>,
    pub contains: Vec<u8>,
    pub counter: Arc<Counter>,
}

impl Event {
    pub fn new(
        prefix: impl Into<Vec<u8>>,
        contains: impl Into<Vec<u8>>,
        c: &Arc<Counter>,
    ) -> Event {
        Event {
            prefix: prefix.into(),
            contains: contains.into(),
            counter: c.clone(),
        }
    }

    fn matches(&self, line: &[u8]) -> bool {
        line.starts_with(&self.prefix)
            && (self.contains.is_empty() || memmem::find(line, &self.contains).is_some())
    }
}

/// What one reader does besides counting.
#[derive(Default)]
pub struct Role {
    /// Acknowledges each benchmark message to its sender's window (the
    /// last-joined client: when it has a message, everyone has).
    pub acker: bool,
    pub events: Vec<Event>,
}

/// What all readers and senders of one run share.
pub struct Shared {
    pub target: Target,
    epoch: Instant,
    measuring: AtomicBool,
    /// Stops the senders.
    pub stop_send: CancellationToken,
    /// Stops the readers.
    pub stop: CancellationToken,
    pub hist: Mutex<Histogram<u64>>,
    /// Deliveries while measuring / in all.
    pub delivered: AtomicU64,
    pub delivered_all: AtomicU64,
    pub sent: AtomicU64,
    pub sent_all: AtomicU64,
    /// One window of unacknowledged messages per sender.
    pub windows: Vec<Semaphore>,
}

pub fn new_histogram() -> Histogram<u64> {
    // 1 µs to 1 h, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl Shared {
    pub fn new(target: Target, senders: usize, window: usize) -> Arc<Shared> {
        Arc::new(Shared {
            target,
            epoch: Instant::now(),
            measuring: AtomicBool::new(false),
            stop_send: CancellationToken::new(),
            stop: CancellationToken::new(),
            hist: Mutex::new(new_histogram()),
            delivered: AtomicU64::new(0),
            delivered_all: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            sent_all: AtomicU64::new(0),
            windows: (0..senders).map(|_| Semaphore::new(window)).collect(),
        })
    }

    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Clears the measured counters and starts counting.
    pub fn begin_measure(&self) {
        self.hist.lock().unwrap_or_else(|e| e.into_inner()).reset();
        self.delivered.store(0, Ordering::Relaxed);
        self.sent.store(0, Ordering::Relaxed);
        self.measuring.store(true, Ordering::Relaxed);
    }

    pub fn end_measure(&self) {
        self.measuring.store(false, Ordering::Relaxed);
    }

    fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }
}

/// How a reader ended.
#[derive(Debug)]
pub enum End {
    Stopped,
    Closed,
    Failed(String),
}

impl End {
    pub fn describe(&self) -> String {
        match self {
            End::Stopped => "stopped".into(),
            End::Closed => "closed by the server".into(),
            End::Failed(e) => format!("failed: {e}"),
        }
    }
}

/// A logged-in client: its writer and its reader task.
pub struct Client {
    pub wr: Writer,
    pub reader: tokio::task::JoinHandle<End>,
}

impl Client {
    pub async fn send(&self, data: &[u8]) -> Result<()> {
        let mut w = self.wr.lock().await;
        w.write_all(data).await?;
        w.flush().await?;
        Ok(())
    }
}

/// Connect, log in, and hand the connection to a reader task.
pub async fn connect_login(
    d: Arc<Dialer>,
    i: usize,
    nick: String,
    room: Option<String>,
    sh: Arc<Shared>,
    role: Role,
) -> Result<Client> {
    let mut conn = d.connect(i, None).await?;
    tokio::time::timeout(LOGIN_LIMIT, conn.login(&nick, room.as_deref()))
        .await
        .map_err(|_| anyhow!("login of {nick} took over {LOGIN_LIMIT:?}"))??;
    let LineConn { io, buf, .. } = conn;
    let (rd, wr) = tokio::io::split(io);
    let wr: Writer = Arc::new(tokio::sync::Mutex::new(wr));
    let reader = tokio::spawn(read_loop(rd, buf, wr.clone(), sh, role));
    Ok(Client { wr, reader })
}

/// Reads lines until stopped: benchmark messages are counted (and their
/// latency recorded while measuring) and acknowledged if this is the
/// acker; IRC `PING`s are answered; watched lines are counted.
///
/// The load generator has one core, like the server, so this is kept
/// cheap: one clock reading per read (the lines of one read arrived
/// together), counters added once per read, the stop future built once.
async fn read_loop(
    mut rd: ReadHalf<Tls>,
    mut buf: BytesMut,
    wr: Writer,
    sh: Arc<Shared>,
    role: Role,
) -> End {
    let target = sh.target;
    let mut lats: Vec<u64> = Vec::new();
    let mut pongs: Vec<u8> = Vec::new();
    let stop = sh.stop.cancelled();
    tokio::pin!(stop);
    let mut now = sh.now_us();
    loop {
        let measuring = sh.measuring();
        let mut delivered = 0u64;
        let mut used = 0;
        while let Some(i) = memchr::memchr(b'\n', &buf[used..]) {
            let mut line = &buf[used..used + i];
            used += i + 1;
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if let Some((k, ts)) = payload(target, line).and_then(parse_payload) {
                delivered += 1;
                if measuring {
                    lats.push(now.saturating_sub(ts));
                }
                if role.acker {
                    if let Some(w) = sh.windows.get(k) {
                        w.add_permits(1);
                    }
                }
                continue;
            }
            if target.irc() {
                if let Some(token) = line.strip_prefix(b"PING ") {
                    pongs.extend_from_slice(b"PONG ");
                    pongs.extend_from_slice(token);
                    pongs.extend_from_slice(b"\r\n");
                    continue;
                }
            }
            for ev in &role.events {
                if ev.matches(line) {
                    ev.counter.hit();
                }
            }
        }
        buf.advance(used);
        if delivered > 0 {
            sh.delivered_all.fetch_add(delivered, Ordering::Relaxed);
            if measuring {
                sh.delivered.fetch_add(delivered, Ordering::Relaxed);
            }
        }
        if !lats.is_empty() {
            let mut h = sh.hist.lock().unwrap_or_else(|e| e.into_inner());
            for &l in &lats {
                h.saturating_record(l.max(1));
            }
            lats.clear();
        }
        if !pongs.is_empty() {
            let mut w = wr.lock().await;
            if w.write_all(&pongs).await.is_err() || w.flush().await.is_err() {
                return End::Failed("PONG write failed".into());
            }
            pongs.clear();
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        let r = tokio::select! {
            biased;
            _ = &mut stop => return End::Stopped,
            r = rd.read_buf(&mut buf) => r,
        };
        now = sh.now_us();
        match r {
            Ok(0) => return End::Closed,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return End::Closed,
            Err(e) => return End::Failed(e.to_string()),
        }
    }
}

/// The text of a chat message line, if it is one.
fn payload(target: Target, line: &[u8]) -> Option<&[u8]> {
    match target {
        Target::Tlschat(_) => {
            // [@<unix-ms> ]MSG <room> <nick> <text>; a replayed line
            // (`HISTORY …`) is not a delivery.
            let rest = unstamped(line).strip_prefix(b"MSG ")?;
            let rest = &rest[memchr::memchr(b' ', rest)? + 1..];
            Some(&rest[memchr::memchr(b' ', rest)? + 1..])
        }
        Target::Ngircd => {
            // :nick!user@host PRIVMSG <room> :<text>
            if line.first() != Some(&b':') {
                return None;
            }
            let rest = &line[memmem::find(line, b" PRIVMSG ")? + 9..];
            Some(&rest[memmem::find(rest, b" :")? + 2..])
        }
        Target::Baseline => Some(line),
    }
}

/// A tlschat line without the `@<unix-ms> ` stamp a history-mode session
/// gets on room lines; any other line as it is.
fn unstamped(line: &[u8]) -> &[u8] {
    if line.first() != Some(&b'@') {
        return line;
    }
    // Only `@<at> ` is read as text (split_stamp's rules); the rest of the
    // line stays bytes, unchecked, as on every other line.
    let Some(space) = memchr::memchr(b' ', line) else {
        return line;
    };
    let head = line.get(..=space).and_then(|h| std::str::from_utf8(h).ok());
    match head.map(split_stamp) {
        Some((Some(_), _)) => line.get(space + 1..).unwrap_or_default(),
        _ => line,
    }
}

/// `P<k>:<seq>:<ts> …` → (k, ts).
fn parse_payload(text: &[u8]) -> Option<(usize, u64)> {
    let mut rest = text.strip_prefix(b"P")?;
    let mut field = |end: u8| -> Option<u64> {
        let i = memchr::memchr(end, rest)?;
        let digits = &rest[..i];
        if digits.is_empty() || digits.len() > 19 {
            return None;
        }
        let mut v: u64 = 0;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u64::from(d - b'0');
        }
        rest = &rest[i + 1..];
        Some(v)
    };
    let k = field(b':')?;
    let _seq = field(b':')?;
    let ts = field(b' ')?;
    Some((k as usize, ts))
}

/// Optional pacing of a sender: one message per `period`, the first after
/// `offset` (senders are spread evenly over the period).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub period: Duration,
    pub offset: Duration,
}

/// Sends benchmark messages as sender `k` until `stop_send` (or until it
/// has sent `count`): at most `window` unacknowledged, and paced if asked.
pub async fn send_loop(
    k: usize,
    wr: Writer,
    sh: Arc<Shared>,
    room: String,
    text_bytes: usize,
    pace: Option<Pace>,
    count: Option<u64>,
) -> Result<u64> {
    let target = sh.target;
    let prefix = target.say_prefix(&room);
    let mut line: Vec<u8> = Vec::with_capacity(prefix.len() + text_bytes + 2);
    let mut ticker = pace.map(|p| {
        let mut iv = tokio::time::interval_at(tokio::time::Instant::now() + p.offset, p.period);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        iv
    });
    let window = &sh.windows[k];
    let stop = sh.stop_send.cancelled();
    tokio::pin!(stop);
    let mut seq: u64 = 0;
    loop {
        if count.is_some_and(|c| seq >= c) {
            return Ok(seq);
        }
        if let Some(iv) = ticker.as_mut() {
            tokio::select! {
                _ = &mut stop => return Ok(seq),
                _ = iv.tick() => {}
            }
        }
        tokio::select! {
            _ = &mut stop => return Ok(seq),
            p = window.acquire() => p?.forget(),
        }
        line.clear();
        line.extend_from_slice(&prefix);
        let start = line.len();
        line.extend_from_slice(format!("P{k}:{seq}:{} ", sh.now_us()).as_bytes());
        let pad = text_bytes.saturating_sub(line.len() - start);
        line.resize(line.len() + pad, b'x');
        line.extend_from_slice(target.eol());
        let mut w = wr.lock().await;
        tokio::select! {
            _ = &mut stop => return Ok(seq),
            r = async { w.write_all(&line).await?; w.flush().await } => r.context("sending")?,
        }
        drop(w);
        sh.sent_all.fetch_add(1, Ordering::Relaxed);
        if sh.measuring() {
            sh.sent.fetch_add(1, Ordering::Relaxed);
        }
        seq += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_of_each_target() {
        let t = b"P3:17:123456 xxxx";
        assert_eq!(parse_payload(t), Some((3, 123456)));
        assert_eq!(
            payload(Target::TLSCHAT, b"MSG #lobby u3 P3:17:123456 xxxx"),
            Some(&t[..])
        );
        assert_eq!(
            payload(
                Target::Ngircd,
                b":u3!~u3@127.0.0.1 PRIVMSG #lobby :P3:17:123456 xxxx"
            ),
            Some(&t[..])
        );
        assert_eq!(payload(Target::TLSCHAT, b"JOIN #lobby u3"), None);
        assert_eq!(parse_payload(b"hello"), None);
        assert_eq!(parse_payload(b"P1:2:x "), None);
    }

    #[test]
    fn stamped_lines_are_deliveries_and_replays_are_not() {
        let t = b"P3:17:123456 \xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 xxxx";
        let stamped = [b"@1764907200123 MSG #lobby u3 ".as_slice(), t].concat();
        assert_eq!(payload(Target::TLSCHAT, &stamped), Some(&t[..]));
        let history_off = Target::Tlschat(History::Off);
        assert_eq!(payload(history_off, &stamped), Some(&t[..]));
        // Replayed lines carry the same text and are no deliveries; nor
        // is the end of a replay.
        for line in [
            [b"HISTORY #lobby 1764907200123 u3 ".as_slice(), t].concat(),
            [b"HISTORY #lobby 1764907200123 *u3 ".as_slice(), t].concat(),
            b"HISTORYEND #lobby 2 0".to_vec(),
            b"@1764907200124 JOIN #lobby u4".to_vec(),
        ] {
            assert_eq!(payload(Target::TLSCHAT, &line), None);
        }
    }

    #[test]
    fn only_a_well_formed_stamp_is_stripped() {
        let hebrew = "@1764907200123 MSG #lobby u3 שלום 👩‍💻 é".as_bytes();
        assert_eq!(unstamped(hebrew), "MSG #lobby u3 שלום 👩‍💻 é".as_bytes());
        for line in [
            "MSG #lobby u3 @1 P3:1:2 x",
            "@ MSG #lobby u3 P3:1:2 x",
            "@12a MSG #lobby u3 P3:1:2 x",
            "@١٢٣ MSG #lobby u3 P3:1:2 x",
            "@1234567890123456 MSG #lobby u3 P3:1:2 x",
            "@123",
            "",
        ] {
            assert_eq!(unstamped(line.as_bytes()), line.as_bytes(), "{line:?}");
        }
        // Bytes that are not UTF-8 after the stamp stay as they are.
        assert_eq!(unstamped(b"@5 MSG \xff\xfe"), b"MSG \xff\xfe");
        assert_eq!(unstamped(b"@\xff MSG x"), b"@\xff MSG x");
    }

    #[test]
    fn history_targets() {
        for t in Target::ALL {
            assert_eq!(Target::parse(t.name()).ok(), Some(t));
        }
        assert!(Target::parse("tlschat-off").is_err());
        assert!(Target::TLSCHAT.offers_history());
        assert!(Target::Tlschat(History::Off).offers_history());
        assert!(Target::Tlschat(History::Stalled).offers_history());
        assert!(!Target::Tlschat(History::V1).offers_history());
        assert!(!Target::Ngircd.offers_history() && !Target::Baseline.offers_history());
        assert!(!Target::TLSCHAT.history_variant());
        assert!(Target::Tlschat(History::Stalled).history_variant());
    }

    #[test]
    fn irc_errors() {
        assert!(irc_error(b":srv 433 * u1 :Nickname already in use"));
        assert!(!irc_error(b":srv 001 u1 :Welcome"));
    }
}
