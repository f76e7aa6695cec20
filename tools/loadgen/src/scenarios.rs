//! The benchmark's scenarios. Each runs against one freshly started server
//! and returns its metrics (JSON numbers; latencies in µs).

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{
    connect_login, new_histogram, send_loop, Client, Counter, Dialer, Event, Pace, Role, Shared,
    Target, Writer,
};
use crate::procs;

pub type Metrics = Map<String, Value>;

/// Every number a run uses.
#[derive(Debug, Clone)]
pub struct Params {
    pub idle_n: usize,
    pub clients: usize,
    pub senders: usize,
    pub window: usize,
    pub text_bytes: usize,
    pub warmup: Duration,
    pub measure: Duration,
    pub paced_rate: f64,
    /// Paced fanout: messages sent windowed before the warm-up.
    pub paced_fill: usize,
    pub hs_connectors: usize,
    pub hs_duration: Duration,
    pub scale_n: usize,
    pub scale_big: usize,
    pub scale_measure: Duration,
    pub login_concurrency: usize,
    pub settle: Duration,
    /// Slow consumer: how long to keep sending while the staller is not
    /// yet dropped.
    pub slow_limit: Duration,
    /// Profile the server with `perf record` (these arguments) during each
    /// measured fanout window, into this file.
    pub perf: Option<(Vec<String>, std::path::PathBuf)>,
}

impl Params {
    pub fn to_json(&self) -> Value {
        json!({
            "idle_n": self.idle_n,
            "clients": self.clients,
            "senders": self.senders,
            "window": self.window,
            "text_bytes": self.text_bytes,
            "warmup_s": self.warmup.as_secs_f64(),
            "measure_s": self.measure.as_secs_f64(),
            "paced_rate_per_sender": self.paced_rate,
            "paced_fill": self.paced_fill,
            "hs_connectors": self.hs_connectors,
            "hs_duration_s": self.hs_duration.as_secs_f64(),
            "scale_n": self.scale_n,
            "scale_big": self.scale_big,
            "scale_measure_s": self.scale_measure.as_secs_f64(),
            "login_concurrency": self.login_concurrency,
            "settle_s": self.settle.as_secs_f64(),
            "slow_limit_s": self.slow_limit.as_secs_f64(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    Idle,
    Fanout,
    Paced,
    Handshakes,
    Slow,
    Scale,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::Idle,
        Scenario::Fanout,
        Scenario::Paced,
        Scenario::Handshakes,
        Scenario::Slow,
        Scenario::Scale,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Idle => "idle",
            Scenario::Fanout => "fanout",
            Scenario::Paced => "paced",
            Scenario::Handshakes => "handshakes",
            Scenario::Slow => "slow",
            Scenario::Scale => "scale",
        }
    }

    pub fn parse(s: &str) -> Result<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                anyhow!("unknown scenario `{s}` (idle, fanout, paced, handshakes, slow, scale)")
            })
    }

    /// The baseline has no rooms, so no scale run; tlschat's history
    /// variants are compared with tlschat in the fanouts only.
    pub fn applies(self, t: Target) -> bool {
        if t.history_variant() {
            return matches!(self, Scenario::Fanout | Scenario::Paced);
        }
        !(self == Scenario::Scale && t == Target::Baseline)
    }

    /// A bound on the whole scenario, so a hung run ends.
    pub fn limit(self, p: &Params) -> Duration {
        let base = Duration::from_secs(120);
        match self {
            Scenario::Scale => base * 5,
            _ => base + p.warmup + p.measure + p.hs_duration + p.slow_limit,
        }
    }

    pub async fn run(self, d: Arc<Dialer>, pid: u32, p: &Params) -> Result<Metrics> {
        match self {
            Scenario::Idle => idle(d, pid, p).await,
            Scenario::Fanout => fanout(d, pid, p, Mode::Windowed).await,
            Scenario::Paced => fanout(d, pid, p, Mode::Paced).await,
            Scenario::Handshakes => handshakes(d, pid, p).await,
            Scenario::Slow => fanout(d, pid, p, Mode::Slow).await,
            Scenario::Scale => scale(d, pid, p).await,
        }
    }
}

fn nick(i: usize) -> String {
    format!("u{i}")
}

fn set(m: &mut Metrics, k: &str, v: impl Into<Value>) {
    m.insert(k.to_owned(), v.into());
}

/// Logs in clients `idx` (at most `conc` at once), in `room`.
async fn login_many(
    d: &Arc<Dialer>,
    sh: &Arc<Shared>,
    idx: Range<usize>,
    room: Option<&str>,
    conc: usize,
    mut role_of: impl FnMut(usize) -> Role,
) -> Result<Vec<Client>> {
    let gate = Arc::new(Semaphore::new(conc.max(1)));
    let mut set = JoinSet::new();
    let first = idx.start;
    for i in idx.clone() {
        let (gate, d, sh) = (gate.clone(), d.clone(), sh.clone());
        let role = role_of(i);
        let room = room.map(str::to_owned);
        set.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let c = connect_login(d, i, nick(i), room, sh, role)
                .await
                .with_context(|| format!("client {i}"))?;
            Ok::<_, anyhow::Error>((i, c))
        });
    }
    let mut out: Vec<Option<Client>> = (0..idx.len()).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        let (i, c) = r??;
        out[i - first] = Some(c);
    }
    Ok(out.into_iter().map(|c| c.expect("every client")).collect())
}

/// Counts the clients whose connection ended before we stopped them, and
/// notes how the first of them ended.
async fn lost(m: &mut Metrics, clients: &mut [Client]) {
    let mut n = 0;
    let mut first = None;
    for c in clients.iter_mut() {
        if c.reader.is_finished() {
            n += 1;
            if first.is_none() {
                first = Some(match (&mut c.reader).await {
                    Ok(end) => end.describe(),
                    Err(e) => e.to_string(),
                });
            }
        }
    }
    set(m, "clients_lost", n);
    if let Some(f) = first {
        set(m, "first_lost", f);
    }
}

// ---- idle -----------------------------------------------------------------

async fn idle(d: Arc<Dialer>, pid: u32, p: &Params) -> Result<Metrics> {
    let n = p.idle_n;
    let sh = Shared::new(d.target, 0, 0);
    let room = (d.target == Target::Ngircd).then_some("#lobby");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = procs::rss_kib(pid)?;
    let t = Instant::now();
    let mut clients = login_many(&d, &sh, 0..n, room, p.login_concurrency, |_| {
        Role::default()
    })
    .await?;
    let login_s = t.elapsed().as_secs_f64();
    // Let joins, USERS lines and write queues drain, then read the RSS.
    tokio::time::sleep(p.settle).await;
    let after = procs::rss_kib(pid)?;
    let mut m = Metrics::new();
    set(&mut m, "clients", n);
    set(&mut m, "rss_before_kib", before);
    set(&mut m, "rss_after_kib", after);
    set(
        &mut m,
        "kib_per_conn",
        (after as f64 - before as f64) / n.max(1) as f64,
    );
    set(&mut m, "login_s", login_s);
    set(&mut m, "logins_per_s", n as f64 / login_s);
    lost(&mut m, &mut clients).await;
    sh.stop.cancel();
    Ok(m)
}

// ---- fanout, paced, slow consumer -----------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Windowed,
    Paced,
    Slow,
}

const STALLER: &str = "staller";

async fn fanout(d: Arc<Dialer>, pid: u32, p: &Params, mode: Mode) -> Result<Metrics> {
    let (c, s) = (p.clients, p.senders);
    if c < s + 2 {
        bail!("fanout needs more clients ({c}) than senders ({s}) + 1");
    }
    let sh = Shared::new(d.target, s, p.window);
    // tlschat users are all in #lobby already; IRC users join it.
    let room = "#lobby";
    let login_room = (d.target == Target::Ngircd).then_some(room);
    let mut clients = login_many(&d, &sh, 0..c - 1, login_room, p.login_concurrency, |_| {
        Role::default()
    })
    .await?;

    // The staller logs in (reading), then never reads again. A small
    // receive buffer makes the kernel's share of the backlog small.
    let staller = if mode == Mode::Slow {
        let mut conn = d.connect(c, Some(4096)).await?;
        conn.login(STALLER, login_room).await.context("staller")?;
        Some(conn)
    } else {
        None
    };
    // The acker joins last: a message it has, everyone has.
    let acker_role = Role {
        acker: true,
        events: Vec::new(),
    };
    let acker = connect_login(
        d.clone(),
        c - 1,
        nick(c - 1),
        login_room.map(str::to_owned),
        sh.clone(),
        acker_role,
    )
    .await
    .context("the last client")?;
    clients.push(acker);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (pace, fill) = match mode {
        Mode::Paced => (Some(p.paced_rate), p.paced_fill),
        Mode::Windowed | Mode::Slow => (None, 0),
    };
    let senders: Vec<Writer> = clients[..s].iter().map(|c| c.wr.clone()).collect();
    // The staller's drop, seen from the server's end of its socket.
    let dropped_at = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watch = match &staller {
        Some(conn) => {
            let me = conn.io.get_ref().0.local_addr()?;
            let inode = procs::server_socket_inode(d.addr, me)
                .context("the staller's connection is not in /proc/net/tcp")?;
            let fd = procs::fd_of_socket(pid, inode)
                .context("the server holds no descriptor for the staller's socket")?;
            let (sh, dropped_at) = (sh.clone(), dropped_at.clone());
            Some(tokio::spawn(async move {
                while !sh.stop.is_cancelled() {
                    if !procs::holds_socket(pid, fd, inode) {
                        dropped_at.store(sh.now_us().max(1), Ordering::Relaxed);
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }))
        }
        None => None,
    };
    let extend = watch.as_ref().map(|_| Extend {
        dropped_at: dropped_at.clone(),
        limit: p.slow_limit,
    });
    let started_us = sh.now_us();
    let mut m = measure_fanout(
        &sh, senders, room, p, pid, pace, fill, p.warmup, p.measure, extend,
    )
    .await?;
    if let Some(w) = watch {
        w.abort();
        let at = dropped_at.load(Ordering::Relaxed);
        set(&mut m, "staller_dropped", at > 0);
        if at > 0 {
            set(
                &mut m,
                "staller_gone_after_s",
                at.saturating_sub(started_us) as f64 / 1e6,
            );
        }
    }
    drop(staller);
    set(&mut m, "clients", c);
    lost(&mut m, &mut clients).await;
    sh.stop.cancel();
    Ok(m)
}

/// With --perf: `perf record` of the server for `length`.
fn start_perf(p: &Params, pid: u32, length: Duration) -> Result<Option<std::process::Child>> {
    let Some((args, out)) = &p.perf else {
        return Ok(None);
    };
    let child = std::process::Command::new("perf")
        .arg("record")
        .args(args)
        .arg("-p")
        .arg(pid.to_string())
        .arg("-o")
        .arg(out)
        .arg("--")
        .arg("sleep")
        .arg(format!("{:.3}", length.as_secs_f64()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting perf record")?;
    Ok(Some(child))
}

/// Slow consumer: the measured window lasts until 1 s after the staller
/// was dropped (at least `measure`, at most `limit` after the warm-up).
struct Extend {
    dropped_at: Arc<std::sync::atomic::AtomicU64>,
    limit: Duration,
}

/// Senders send (windowed, or paced at `rate` per sender) for `warmup` +
/// `measure`; deliveries, latency and CPU are taken over `measure`. First,
/// `fill` messages go out windowed and are all received.
#[allow(clippy::too_many_arguments)]
async fn measure_fanout(
    sh: &Arc<Shared>,
    senders: Vec<Writer>,
    room: &str,
    p: &Params,
    pid: u32,
    rate: Option<f64>,
    fill: usize,
    warmup: Duration,
    measure: Duration,
    extend: Option<Extend>,
) -> Result<Metrics> {
    let n = senders.len();
    if fill > 0 {
        fill_room(sh, &senders, room, p, fill).await?;
    }
    let mut tasks = JoinSet::new();
    for (k, wr) in senders.into_iter().enumerate() {
        let pace = rate.map(|r| {
            let period = Duration::from_secs_f64(1.0 / r);
            Pace {
                period,
                offset: period.mul_f64(k as f64 / n as f64),
            }
        });
        tasks.spawn(send_loop(
            k,
            wr,
            sh.clone(),
            room.to_owned(),
            p.text_bytes,
            pace,
            None,
        ));
    }
    tokio::time::sleep(warmup).await;
    let cpu0 = procs::cpu_secs(pid)?;
    let self0 = procs::self_cpu_secs();
    sh.begin_measure();
    let t0 = Instant::now();
    let mut perf = start_perf(p, pid, measure)?;
    tokio::time::sleep(measure).await;
    if let Some(x) = extend {
        let mut since_drop: Option<Instant> = None;
        while t0.elapsed() < x.limit {
            if x.dropped_at.load(Ordering::Relaxed) > 0 {
                let at = *since_drop.get_or_insert_with(Instant::now);
                if at.elapsed() >= Duration::from_secs(1) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    sh.end_measure();
    let window = t0.elapsed().as_secs_f64();
    let cpu = procs::cpu_secs(pid)? - cpu0;
    let self_cpu = procs::self_cpu_secs() - self0;
    sh.stop_send.cancel();
    if let Some(perf) = perf.as_mut() {
        let _ = perf.wait();
    }
    let mut send_errors = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => send_errors.push(format!("{e:#}")),
                Err(e) => send_errors.push(e.to_string()),
            }
        }
    })
    .await;
    let delivered = sh.delivered.load(Ordering::Relaxed);
    let sent = sh.sent.load(Ordering::Relaxed);
    let h = sh.hist.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut m = Metrics::new();
    set(&mut m, "window_s", window);
    set(&mut m, "messages_sent", sent);
    set(&mut m, "sent_per_s", sent as f64 / window);
    set(&mut m, "deliveries", delivered);
    set(&mut m, "deliveries_per_s", delivered as f64 / window);
    set(&mut m, "p50_us", h.value_at_quantile(0.50));
    set(&mut m, "p90_us", h.value_at_quantile(0.90));
    set(&mut m, "p99_us", h.value_at_quantile(0.99));
    set(&mut m, "p999_us", h.value_at_quantile(0.999));
    set(&mut m, "max_us", h.max());
    set(&mut m, "server_cpu_s", cpu);
    set(&mut m, "server_cpu_util", cpu / window);
    set(
        &mut m,
        "deliveries_per_cpu_s",
        if cpu > 0.0 {
            delivered as f64 / cpu
        } else {
            0.0
        },
    );
    set(&mut m, "loadgen_cpu_util", self_cpu / window);
    if !send_errors.is_empty() {
        set(&mut m, "send_errors", send_errors.join("; "));
    }
    if delivered == 0 {
        bail!("no message was delivered while measuring");
    }
    Ok(m)
}

/// Sends `fill` messages from the senders, windowed, and waits until the
/// last-joined client has received every one (each window is whole again).
/// Before a paced run this fills a stalled history queue, so the measured
/// lines meet a full one, and gives a kept room its full history.
async fn fill_room(
    sh: &Arc<Shared>,
    senders: &[Writer],
    room: &str,
    p: &Params,
    fill: usize,
) -> Result<()> {
    let n = senders.len().max(1);
    let mut tasks = JoinSet::new();
    for (k, wr) in senders.iter().enumerate() {
        let share = (fill / n + usize::from(k < fill % n)) as u64;
        tasks.spawn(send_loop(
            k,
            wr.clone(),
            sh.clone(),
            room.to_owned(),
            p.text_bytes,
            None,
            Some(share),
        ));
    }
    while let Some(r) = tasks.join_next().await {
        r?.context("filling the room")?;
    }
    let deadline = Instant::now() + FILL_LIMIT;
    while sh.windows.iter().any(|w| w.available_permits() < p.window) {
        if Instant::now() > deadline {
            bail!("the fill messages were not all received within {FILL_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// The longest the last fill messages may take to arrive.
const FILL_LIMIT: Duration = Duration::from_secs(30);

// ---- handshakes -----------------------------------------------------------

async fn handshakes(d: Arc<Dialer>, pid: u32, p: &Params) -> Result<Metrics> {
    let cpu0 = procs::cpu_secs(pid)?;
    let self0 = procs::self_cpu_secs();
    let t0 = Instant::now();
    let deadline = t0 + p.hs_duration;
    let mut perf = start_perf(p, pid, p.hs_duration)?;
    let mut tasks = JoinSet::new();
    for k in 0..p.hs_connectors {
        let d = d.clone();
        tasks.spawn(async move {
            let mut login = new_histogram();
            let mut cycle = new_histogram();
            let mut errors: Vec<String> = Vec::new();
            let mut i = 0usize;
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = async {
                    let mut conn = d.connect(k + i * 8, None).await?;
                    tokio::time::timeout(
                        Duration::from_secs(30),
                        conn.login(&format!("h{k}n{i}"), None),
                    )
                    .await
                    .map_err(|_| anyhow!("login timed out"))??;
                    let logged_in = t.elapsed();
                    conn.quit(Duration::from_secs(10)).await?;
                    Ok::<_, anyhow::Error>(logged_in)
                }
                .await;
                match r {
                    Ok(l) => {
                        login.saturating_record(l.as_micros().max(1) as u64);
                        cycle.saturating_record(t.elapsed().as_micros().max(1) as u64);
                    }
                    Err(e) => {
                        if errors.len() < 3 {
                            errors.push(format!("{e:#}"));
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                i += 1;
            }
            (login, cycle, errors, i)
        });
    }
    let mut login = new_histogram();
    let mut cycle = new_histogram();
    let mut errors = Vec::new();
    let mut attempts = 0;
    while let Some(r) = tasks.join_next().await {
        let (l, c, e, n) = r?;
        login.add(&l).ok();
        cycle.add(&c).ok();
        errors.extend(e);
        attempts += n;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    if let Some(perf) = perf.as_mut() {
        let _ = perf.wait();
    }
    let cpu = procs::cpu_secs(pid)? - cpu0;
    let self_cpu = procs::self_cpu_secs() - self0;
    let done = login.len();
    let mut m = Metrics::new();
    set(&mut m, "connectors", p.hs_connectors);
    set(&mut m, "elapsed_s", elapsed);
    set(&mut m, "logins", done);
    set(&mut m, "failed", attempts as u64 - done);
    set(&mut m, "logins_per_s", done as f64 / elapsed);
    set(&mut m, "login_p50_us", login.value_at_quantile(0.5));
    set(&mut m, "login_p99_us", login.value_at_quantile(0.99));
    set(&mut m, "cycle_p50_us", cycle.value_at_quantile(0.5));
    set(&mut m, "server_cpu_s", cpu);
    set(&mut m, "server_cpu_util", cpu / elapsed);
    set(
        &mut m,
        "logins_per_cpu_s",
        if cpu > 0.0 { done as f64 / cpu } else { 0.0 },
    );
    set(&mut m, "loadgen_cpu_util", self_cpu / elapsed);
    if !errors.is_empty() {
        set(&mut m, "errors", errors.join("; "));
    }
    if done == 0 {
        bail!("no login completed: {}", errors.join("; "));
    }
    Ok(m)
}

// ---- scale ------------------------------------------------------------------

async fn scale(d: Arc<Dialer>, pid: u32, p: &Params) -> Result<Metrics> {
    let (n, b, s) = (p.scale_n, p.scale_big.min(p.scale_n), p.senders);
    if b < s + 2 {
        bail!("scale needs more #big members ({b}) than senders ({s}) + 1");
    }
    let target = d.target;
    let sh = Shared::new(target, s, p.window);
    let joined = Arc::new(Counter::default());
    let left = Arc::new(Counter::default());
    let role_of = |i: usize| {
        if i >= b {
            return Role::default();
        }
        let me = nick(i);
        let events = match target {
            // USERS #big goes only to its joiner; a PART names its user.
            Target::Tlschat(_) => vec![
                Event::new("USERS #big ", "", &joined),
                Event::new(format!("PART #big {me} "), "", &left),
            ],
            Target::Ngircd => vec![
                Event::new(":", format!(" 366 {me} #big "), &joined),
                Event::new(format!(":{me}!"), " PART #big", &left),
            ],
            Target::Baseline => Vec::new(),
        };
        Role {
            acker: i == b - 1,
            events,
        }
    };
    let mut m = Metrics::new();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss0 = procs::rss_kib(pid)?;
    let t = Instant::now();
    let mut clients = login_many(&d, &sh, 0..n, None, p.login_concurrency, role_of).await?;
    let login_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(p.settle).await;
    let rss1 = procs::rss_kib(pid)?;
    set(&mut m, "clients", n);
    set(&mut m, "big", b);
    set(&mut m, "login_s", login_s);
    set(&mut m, "logins_per_s", n as f64 / login_s);
    set(&mut m, "rss_kib", rss1);
    set(
        &mut m,
        "kib_per_conn",
        (rss1 as f64 - rss0 as f64) / n as f64,
    );

    // Join: all but the acker at once, then the acker (last-joined).
    let join = target.join_line("#big");
    let t = Instant::now();
    for c in &clients[..b - 1] {
        c.send(&join).await?;
    }
    joined
        .wait_for(b - 1, Duration::from_secs(300), "joined #big")
        .await?;
    clients[b - 1].send(&join).await?;
    joined
        .wait_for(b, Duration::from_secs(60), "joined #big")
        .await?;
    let join_s = t.elapsed().as_secs_f64();
    set(&mut m, "join_s", join_s);
    set(&mut m, "joins_per_s", b as f64 / join_s);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let senders: Vec<Writer> = clients[..s].iter().map(|c| c.wr.clone()).collect();
    // Paced (each sender at --paced-rate): a windowed fanout to 2,000
    // readers outruns one load-generator core, whose readers then fall
    // behind the acker far enough to be dropped as not reading.
    let f = measure_fanout(
        &sh,
        senders,
        "#big",
        p,
        pid,
        Some(p.paced_rate),
        0,
        p.warmup,
        p.scale_measure,
        None,
    )
    .await?;
    for (k, v) in f {
        m.insert(format!("big_{k}"), v);
    }
    // In-flight messages arrive before the leave is timed.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Leave #big: tlschat moves each to a room of its own, IRC parts.
    let t = Instant::now();
    for (i, c) in clients[..b].iter().enumerate() {
        let line = match target {
            Target::Ngircd => b"PART #big\r\n".to_vec(),
            _ => format!("/join #away{i}\n").into_bytes(),
        };
        c.send(&line).await?;
    }
    left.wait_for(b, Duration::from_secs(300), "left #big")
        .await?;
    let leave_s = t.elapsed().as_secs_f64();
    set(&mut m, "leave_s", leave_s);
    set(&mut m, "leaves_per_s", b as f64 / leave_s);
    set(&mut m, "rss_end_kib", procs::rss_kib(pid)?);
    lost(&mut m, &mut clients).await;
    sh.stop.cancel();
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::History;

    #[test]
    fn history_variants_run_the_fanouts_only() {
        let stalled = Target::Tlschat(History::Stalled);
        let ran: Vec<Scenario> = Scenario::ALL
            .into_iter()
            .filter(|s| s.applies(stalled))
            .collect();
        assert_eq!(ran, [Scenario::Fanout, Scenario::Paced]);
        assert!(Scenario::ALL.iter().all(|s| s.applies(Target::TLSCHAT)));
        assert!(!Scenario::Scale.applies(Target::Baseline));
    }
}
