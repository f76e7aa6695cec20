//! Crash safety of the bans file: the real server binary on one
//! data directory, killed with SIGKILL at random moments while the admin
//! bans (some bans timed, so their lines carry an end) and unbans, then
//! restarted, round after round.
//!
//! After every restart the bans file must parse (the server starts at all)
//! and hold exactly what the confirmed commands say. The server answers
//! `/ban` and `/unban` only after the file is written, and handles one
//! admin's commands in order, so the file must equal the state after some
//! prefix of the commands sent that includes every confirmed one (the
//! commands still in flight at the kill may or may not have landed, in
//! order). Confirmations are `INFO banned …`, `INFO unbanned …` and, for an
//! unban of a nickname that is not banned, `ERROR no-such-nick …`; any of
//! them counts, even when read after the kill (the server sent it).
//!
//! Room history gets rounds of its own ([`confirmed_room_lines_survive_sigkill`]):
//! a room line's echo means the hub queued it for history, and a batch
//! window later it is committed, so it must be there after the kill.
//!
//! `TLSCHAT_CRASH_ROUNDS` sets the number of rounds (default 50),
//! `TLSCHAT_CRASH_SEED` the random seed (printed, so a failure reproduces).
#![cfg(unix)]

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::harness::*;

const PASSWORD: &str = "crash test admin password";
const DEFAULT_ROUNDS: usize = 50;
/// Nicknames nick0..nickN-1: few, so bans and unbans of one nick mix.
const NICKS: usize = 8;
/// At most this many commands per round.
const MAX_OPS: usize = 16;

/// Roughly how long the server takes per command (µs), for the pauses.
const PER_COMMAND_US: u64 = 8000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// A ban of that nickname; `true`: a timed one (a year, so it does not
    /// end during the test).
    Ban(usize, bool),
    Unban(usize),
}

impl Op {
    fn command(self, round: usize) -> String {
        match self {
            Op::Ban(n, false) => format!("/ban nick{n} round {round}\n"),
            Op::Ban(n, true) => format!("/ban nick{n} 365d round {round}\n"),
            Op::Unban(n) => format!("/unban nick{n}\n"),
        }
    }

    fn apply(self, state: &mut BTreeSet<usize>) {
        match self {
            Op::Ban(n, _) => state.insert(n),
            Op::Unban(n) => state.remove(&n),
        };
    }
}

/// How a round ends.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// Every command confirmed, then killed at once.
    AfterAll,
    /// After the first `k` confirmations, the rest in flight.
    AfterConfirmations(usize),
    /// All commands sent at once, killed after a random pause (µs).
    AfterPause(u64),
    /// Commands sent one by one, sometimes waiting for the answer; killed
    /// right after sending command `k`.
    Trickle(usize),
}

/// What one round did, for the check after the restart.
struct Round {
    start: BTreeSet<usize>,
    ops: Vec<Op>,
    confirmed: usize,
    kill: Kill,
}

impl Round {
    fn state_after(&self, prefix: usize) -> BTreeSet<usize> {
        let mut s = self.start.clone();
        for op in &self.ops[..prefix] {
            op.apply(&mut s);
        }
        s
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// The nicknames in `bans.txt`, read directly (not through the server);
/// every non-comment line must be a nickname-only ban of one of ours.
fn bans_on_disk(data_dir: &Path) -> BTreeSet<usize> {
    let path = data_dir.join("bans.txt");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeSet::new(),
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    };
    let mut set = BTreeSet::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        // `NICK - SINCE admin …`, or `NICK - SINCE UNTIL admin …` when timed.
        let by = match fields.get(3) {
            Some(until) if until.contains(':') => fields.get(4),
            by => by,
        };
        assert!(
            fields.len() >= 4 && fields[1] == "-" && by == Some(&"admin"),
            "unexpected line in bans.txt: {line:?}\n{text}"
        );
        let n = fields[0]
            .strip_prefix("nick")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n < NICKS)
            .unwrap_or_else(|| panic!("unexpected nickname in bans.txt: {line:?}"));
        assert!(set.insert(n), "nick{n} banned twice in bans.txt:\n{text}");
    }
    set
}

/// Leftover temporary files of interrupted atomic writes.
fn temp_files(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir)
        .expect("read the data dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with(".tlschat-tmp"))
        })
        .count()
}

/// The admin's connection, alone in `#lobby`.
struct Admin {
    c: Client,
}

impl Admin {
    async fn login(s: &ServerProcess, cert: &CertificateDer<'static>) -> Admin {
        let mut c = connect_tls(s.addr, cert).await;
        let users = c.finish_admin_login(PASSWORD).await;
        assert_eq!(users, "USERS #lobby admin");
        Admin { c }
    }

    /// `text` as it is: one command or many, each ending in a newline.
    async fn send(&mut self, text: &str) {
        self.c.send_raw(text.as_bytes()).await;
    }

    /// The nicknames `/bans` lists.
    async fn bans(&mut self) -> BTreeSet<usize> {
        self.send("/bans\n/ping listed\n").await;
        let mut set = BTreeSet::new();
        loop {
            let line = self.c.recv().await;
            if line == "PONG listed" {
                return set;
            }
            if line == "INFO no bans" {
                continue;
            }
            let n = line
                .strip_prefix("INFO nick")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("unexpected /bans line {line:?}"));
            set.insert(n);
        }
    }
}

/// Checks the answer to `op` (the `index`-th of the round, so `state` is
/// the state after every command before it).
fn check_answer(op: Op, state: &BTreeSet<usize>, line: &str, index: usize) {
    let ok = match op {
        Op::Ban(n, false) => line == format!("INFO banned nick{n} (not connected: nickname only)"),
        Op::Ban(n, true) => line.starts_with(&format!(
            "INFO banned nick{n} (not connected: nickname only) until "
        )),
        Op::Unban(n) if state.contains(&n) => {
            line.starts_with(&format!("INFO unbanned nick{n} - since "))
        }
        Op::Unban(n) => line.starts_with(&format!("ERROR no-such-nick no ban matches nick{n}")),
    };
    assert!(
        ok,
        "answer to command {index} ({op:?}, banned before: {state:?}): {line:?}"
    );
}

#[test]
fn confirmed_bans_and_unbans_survive_sigkill_at_random_moments() {
    let rounds: usize = env_or("TLSCHAT_CRASH_ROUNDS", DEFAULT_ROUNDS);
    let seed: u64 = env_or(
        "TLSCHAT_CRASH_SEED",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    );
    eprintln!("crash safety: {rounds} rounds, seed {seed} (repeat with TLSCHAT_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let started = Instant::now();
    let mut previous: Option<Round> = None;
    let (mut sent_total, mut confirmed_total, mut landed_unconfirmed, mut in_flight_rounds) =
        (0, 0, 0, 0);
    for round in 0..rounds {
        let mut cmd = run_command(dir.path());
        if round == 0 {
            cmd.env("TLSCHAT_ADMIN_PASSWORD", PASSWORD);
        }
        // Panics with the server's output if it cannot start, e.g. because
        // the bans file does not parse.
        let mut s = ServerProcess::try_spawn(cmd).unwrap_or_else(|e| {
            panic!("round {round}: the server did not restart (seed {seed}): {e}")
        });
        let cert = CertificateDer::from_pem_file(&s.cert_path).expect("certificate");

        let on_disk = bans_on_disk(dir.path());
        if let Some(prev) = &previous {
            let possible: Vec<usize> = (prev.confirmed..=prev.ops.len())
                .filter(|&p| prev.state_after(p) == on_disk)
                .collect();
            assert!(
                !possible.is_empty(),
                "round {round} (seed {seed}): after the kill ({:?}) bans.txt holds {on_disk:?}, \
                 which is no state reachable from {:?} through the {} confirmed of the commands \
                 {:?}; confirmed state was {:?}",
                prev.kill,
                prev.start,
                prev.confirmed,
                prev.ops,
                prev.state_after(prev.confirmed),
            );
            if on_disk != prev.state_after(prev.confirmed) {
                landed_unconfirmed += 1;
            }
        }

        let n = rng.random_range(1..=MAX_OPS);
        let ops: Vec<Op> = (0..n)
            .map(|_| {
                let nick = rng.random_range(0..NICKS);
                if rng.random_bool(0.55) {
                    Op::Ban(nick, rng.random_bool(0.3))
                } else {
                    Op::Unban(nick)
                }
            })
            .collect();
        let kill = match rng.random_range(0..4) {
            0 => Kill::AfterAll,
            1 => Kill::AfterConfirmations(rng.random_range(0..=n)),
            // A command takes a few milliseconds (two fsyncs): the pause
            // ends anywhere from before the first to after the last.
            2 => Kill::AfterPause(rng.random_range(0..n as u64 * PER_COMMAND_US)),
            _ => Kill::Trickle(rng.random_range(0..n)),
        };
        // Decided now so the random sequence does not depend on timing.
        let wait_each: Vec<bool> = (0..n).map(|_| rng.random_bool(0.5)).collect();

        let mut this = Round {
            start: on_disk.clone(),
            ops,
            confirmed: 0,
            kill,
        };
        runtime.block_on(async {
            let mut admin = Admin::login(&s, &cert).await;
            let listed = admin.bans().await;
            assert_eq!(
                listed, on_disk,
                "round {round}: /bans disagrees with bans.txt"
            );

            let mut state = this.start.clone();
            let mut answered = 0;
            // Reads the answer to the next command and checks it.
            macro_rules! confirm_next {
                ($line:expr) => {{
                    let op = this.ops[answered];
                    check_answer(op, &state, &$line, answered);
                    op.apply(&mut state);
                    answered += 1;
                }};
            }
            match kill {
                Kill::AfterAll | Kill::AfterConfirmations(_) | Kill::AfterPause(_) => {
                    let all: String = this.ops.iter().map(|op| op.command(round)).collect();
                    admin.send(&all).await;
                    let wait_for = match kill {
                        Kill::AfterAll => n,
                        Kill::AfterConfirmations(k) => k,
                        _ => 0,
                    };
                    while answered < wait_for {
                        let line = admin.c.recv().await;
                        confirm_next!(line);
                    }
                    if let Kill::AfterPause(us) = kill {
                        std::thread::sleep(Duration::from_micros(us));
                    }
                }
                Kill::Trickle(last) => {
                    for (i, &wait) in wait_each.iter().enumerate().take(last + 1) {
                        admin.send(&this.ops[i].command(round)).await;
                        if i < last && wait {
                            while answered <= i {
                                let line = admin.c.recv().await;
                                confirm_next!(line);
                            }
                        }
                    }
                }
            }
            s.kill();
            // Whatever the server sent before it died still counts.
            while let Some(line) = admin.c.try_recv().await {
                assert!(answered < n, "round {round}: extra line {line:?}");
                confirm_next!(line);
            }
            this.confirmed = answered;
        });
        sent_total += match kill {
            Kill::Trickle(last) => last + 1,
            _ => n,
        };
        confirmed_total += this.confirmed;
        if this.confirmed < n {
            in_flight_rounds += 1;
        }
        // Commands never sent (Trickle) cannot land: only a prefix of the
        // sent ones can.
        if let Kill::Trickle(last) = kill {
            this.ops.truncate(last + 1);
        }
        previous = Some(this);
    }

    // One last restart: the final state is checked like every other.
    let s = ServerProcess::try_spawn(run_command(dir.path()))
        .unwrap_or_else(|e| panic!("final restart failed (seed {seed}): {e}"));
    let on_disk = bans_on_disk(dir.path());
    let prev = previous.expect("at least one round");
    assert!(
        (prev.confirmed..=prev.ops.len()).any(|p| prev.state_after(p) == on_disk),
        "final (seed {seed}): bans.txt holds {on_disk:?} after {:?} from {:?} with {} confirmed",
        prev.ops,
        prev.start,
        prev.confirmed
    );
    drop(s);
    eprintln!(
        "crash safety: {rounds} rounds in {:?}: {sent_total} commands sent, {confirmed_total} \
         confirmed, {in_flight_rounds} rounds killed with commands in flight, \
         {landed_unconfirmed} times an unconfirmed command had landed; \
         {} leftover temporary files in the data dir",
        started.elapsed(),
        temp_files(dir.path())
    );
}

/// How long before the kill an echo must have come for its line to be
/// required after the restart: history's batch window (a commit starts at
/// most every 20 ms, docs/configuration.md) plus the commit itself, with a
/// margin for a loaded machine.
const PAST_THE_BATCH_WINDOW: Duration = Duration::from_millis(250);

/// Room lines are kept across SIGKILL: the real server binary, killed
/// round after round while lines are still going out, 0 to 50 ms after
/// the last one was sent (so often mid-batch). Every line whose echo came
/// at least a batch window before the kill is in `/history 200` after the
/// restart; later ones may be kept or not, but never twice or out of order.
#[test]
fn confirmed_room_lines_survive_sigkill() {
    const ROUNDS: usize = 5;
    let seed = env_or("TLSCHAT_CRASH_SEED", rand::random::<u64>());
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime();
    // Every line sent, in order, and those that must be kept.
    let mut sent: Vec<String> = Vec::new();
    let mut confirmed: BTreeSet<String> = BTreeSet::new();
    for round in 0..=ROUNDS {
        let mut s = ServerProcess::spawn(run_command(dir.path()));
        let cert = s.cert();
        runtime.block_on(async {
            let mut c = login(s.addr, &cert, "writer").await;
            c.send("/history 200").await;
            let mut kept = Vec::new();
            loop {
                let line = c.recv().await;
                if line.starts_with("HISTORYEND ") {
                    break;
                }
                let text = line.splitn(5, ' ').nth(4).unwrap_or_default().to_owned();
                kept.push(text);
            }
            let unique: BTreeSet<&String> = kept.iter().collect();
            assert_eq!(
                unique.len(),
                kept.len(),
                "round {round}: a line kept twice: {kept:?}"
            );
            let missing: Vec<&String> = confirmed.iter().filter(|t| !unique.contains(t)).collect();
            assert!(
                missing.is_empty(),
                "round {round} (seed {seed}): lost {missing:?}"
            );
            let order: Vec<usize> = kept
                .iter()
                .map(|t| {
                    sent.iter()
                        .position(|s| s == t)
                        .expect("a line that was sent")
                })
                .collect();
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "round {round}: out of order"
            );
            if round == ROUNDS {
                return;
            }
            // Lines paced 0-20 ms apart, echoes read (and timed) meanwhile.
            let mut echoes = Echoes::default();
            for i in 0..rng.random_range(5..40) {
                let text = format!("раунд {round} שורה {i} 行 👩🏽‍💻 e\u{301}");
                c.send(&text).await;
                sent.push(text.clone());
                echoes.waiting.push_back(text);
                let pause = Duration::from_millis(rng.random_range(0..=20));
                echoes.read_for(&mut c, pause).await;
            }
            let pause = Duration::from_millis(rng.random_range(0..=50));
            echoes.read_for(&mut c, pause).await;
            let killed = Instant::now();
            s.kill();
            for (text, at) in echoes.came {
                if at + PAST_THE_BATCH_WINDOW <= killed {
                    confirmed.insert(text);
                }
            }
        });
    }
}

/// The room lines sent and not yet echoed, and when each echo came.
#[derive(Default)]
struct Echoes {
    waiting: VecDeque<String>,
    came: Vec<(String, Instant)>,
}

impl Echoes {
    /// Reads echoes for `pause`, timing each; they come in sending order.
    async fn read_for(&mut self, c: &mut Client, pause: Duration) {
        let until = Instant::now() + pause;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            let line = match c.recv_within(left).await {
                Some(Some(line)) => line,
                Some(None) => panic!("the server closed the connection"),
                None => return,
            };
            let Some(text) = line.strip_prefix("MSG #lobby writer ") else {
                continue;
            };
            assert_eq!(
                self.waiting.pop_front().as_deref(),
                Some(text),
                "echo order"
            );
            self.came.push((text.to_owned(), Instant::now()));
        }
    }
}
