//! Heavier integration tests: a client that stops reading while others
//! chat hard, and a room of 500+ clients. Real TLS over loopback, one
//! in-process server per test, on a multi-threaded runtime. Every wait is
//! bounded (the harness's `STEP`, and an overall limit per test).

use crate::harness;
use crate::harness::*;

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

/// Runs one heavy test on its own multi-threaded runtime, never at the same
/// time as another test of this binary: each is meant to load the machine by
/// itself (two of them at once on two cores starve each other's servers).
/// The server's warnings (e.g. who was dropped for not reading) are shown
/// if the test fails, and so is a test that takes longer than [`TEST_LIMIT`].
fn exclusive<F: Future>(test: F) -> F::Output {
    let _turn = crate::LOAD.write().unwrap_or_else(|e| e.into_inner());
    harness::run_bounded(TEST_LIMIT, test)
}

/// Upper bound for a whole test here: generous for a loaded 2-core machine
/// in a debug build, but finite.
const TEST_LIMIT: Duration = Duration::from_secs(90);

// ---- 8. slow consumer -----------------------------------------------------------

const PER_SENDER: usize = 1000;
/// Messages each sender sends per round before both read everything sent
/// so far: keeps every sender's own backlog (2 x ROUND lines) well under
/// the small queue, whatever the scheduling, so only the staller overflows.
const ROUND: usize = 20;
const _: () = assert!(PER_SENDER.is_multiple_of(ROUND));
/// Payload of each message: big enough that the staller's socket buffers
/// fill after a fraction of the traffic.
const PAD: usize = 3000;
/// Extra rounds of filler after the 2,000 messages while waiting for the
/// staller to be dropped, before the test gives up (about 20 MB).
const MAX_FILLER_ROUNDS: usize = 600;

/// One of the two chatting clients and what it has received.
struct Chatter {
    c: Client,
    me: &'static str,
    /// Messages sent (numbered ones, then filler).
    sent: usize,
    /// Messages received per sender: (own, other's), numbered and filler.
    got: [usize; 2],
    part_seen: bool,
}

const STALLER_PART: &str = "PART #lobby staller disconnected";

impl Chatter {
    fn new(c: Client, me: &'static str) -> Chatter {
        Chatter {
            c,
            me,
            sent: 0,
            got: [0, 0],
            part_seen: false,
        }
    }

    async fn send_round(&mut self, pad: &str) {
        for _ in 0..ROUND {
            let line = if self.sent < PER_SENDER {
                format!("{} {pad}", self.sent)
            } else {
                format!("f {pad}")
            };
            self.c.send(&line).await;
            self.sent += 1;
        }
    }

    /// Reads until `own` of its own and `other` of the other's messages have
    /// arrived, checking that numbered ones arrive in order.
    async fn read_until(&mut self, own: usize, other: usize) {
        while self.got[0] < own || self.got[1] < other {
            let line = self.c.recv().await;
            if line.starts_with(STALLER_PART) {
                assert!(!self.part_seen, "{}: PART twice", self.me);
                self.part_seen = true;
                continue;
            }
            let rest = line
                .strip_prefix("MSG #lobby ")
                .unwrap_or_else(|| panic!("{}: unexpected line `{line:.80}`", self.me));
            let (nick, rest) = rest.split_once(' ').expect("MSG has a nick");
            let (n, _) = rest.split_once(' ').expect("MSG has a number and padding");
            let who = usize::from(nick != self.me);
            if n != "f" {
                let n: usize = n.parse().expect("numbered message");
                assert_eq!(
                    n, self.got[who],
                    "{}: messages from {nick} out of order",
                    self.me
                );
                assert!(n < PER_SENDER);
            } else {
                assert!(
                    self.got[who] >= PER_SENDER,
                    "filler before the numbered messages"
                );
            }
            self.got[who] += 1;
        }
    }
}

/// alice and bob send in rounds until each has sent `until` messages,
/// reading everything after each round; stops early once both have seen
/// the staller's PART if `until_part`.
async fn exchange(a: &mut Chatter, b: &mut Chatter, until: usize, until_part: bool, pad: &str) {
    while a.sent < until && !(until_part && a.part_seen && b.part_seen) {
        a.send_round(pad).await;
        b.send_round(pad).await;
        a.read_until(a.sent, b.sent).await;
        b.read_until(b.sent, a.sent).await;
    }
}

#[test]
fn slow_consumer_is_dropped_while_others_exchange_2000_messages() {
    exclusive(async {
        let s = TestServer::start_with(|c| c.limits.outbound_queue = 192 * 1024).await;
        let mut a = s.login("alice").await;
        let mut b = s.login("bob").await;
        a.expect("JOIN #lobby bob").await;
        let mut staller = connect_tls_small_rcvbuf(s.addr, &s.cert).await;
        staller.finish_login("staller").await;
        a.expect("JOIN #lobby staller").await;
        b.expect("JOIN #lobby staller").await;
        // From here on the staller reads nothing but keeps its socket open.

        let pad = "p".repeat(PAD);
        let started = Instant::now();
        let (mut a, mut b) = (Chatter::new(a, "alice"), Chatter::new(b, "bob"));
        exchange(&mut a, &mut b, PER_SENDER, false, &pad).await;
        assert_eq!((a.got, b.got), ([PER_SENDER; 2], [PER_SENDER; 2]));
        let elapsed = started.elapsed();
        let dropped_during = (a.part_seen, b.part_seen);
        // The staller must eventually be dropped: keep the traffic going
        // until its PART arrives (bounded).
        let limit = PER_SENDER + MAX_FILLER_ROUNDS * ROUND;
        exchange(&mut a, &mut b, limit, true, &pad).await;
        assert!(a.part_seen && b.part_seen, "the staller was never dropped");
        eprintln!(
            "2 x {PER_SENDER} messages in {elapsed:?}; staller dropped during them: {dropped_during:?}; filler: {}",
            a.sent - PER_SENDER
        );

        // Both senders are still connected and served.
        let (mut a, mut b) = (a.c, b.c);
        a.expect_quiet("a-end").await;
        b.expect_quiet("b-end").await;
        a.send("/rooms").await;
        a.expect("ROOMS #lobby=2").await;

        // The staller's connection was closed by the server.
        let buffered = staller.expect_closed().await;
        assert!(
            !buffered
                .iter()
                .any(|l| l.starts_with("PART #lobby staller")),
            "the dropped client is not told it left"
        );
        s.stop().await;
    });
}

// ---- 9. many clients, big room -------------------------------------------------------

/// Clients that log in at once; with the newcomer the room then has more
/// than 500 members.
const CROWD: usize = 501;

fn nick(i: usize) -> String {
    format!("u{i:03}")
}

#[test]
fn five_hundred_clients_log_in_at_once_and_a_big_room_is_quiet() {
    #[cfg(unix)]
    {
        let limit = rlimit::increase_nofile_limit(4096).expect("raise RLIMIT_NOFILE");
        // Client and server side of every connection live in this process.
        assert!(
            limit >= 2 * CROWD as u64 + 100,
            "open-files limit {limit} too low"
        );
    }
    exclusive(async {
        let s = TestServer::start().await;

        // All at once.
        let started = Instant::now();
        let mut set = JoinSet::new();
        for i in 0..CROWD {
            let (addr, cert) = (s.addr, s.cert.clone());
            set.spawn(async move { (i, login(addr, &cert, &nick(i)).await) });
        }
        let mut crowd: Vec<Option<Client>> = (0..CROWD).map(|_| None).collect();
        while let Some(r) = set.join_next().await {
            let (i, c) = r.expect("login task");
            crowd[i] = Some(c);
        }
        let mut crowd: Vec<Client> = crowd.into_iter().map(Option::unwrap).collect();
        eprintln!("{CROWD} logins in {:?}", started.elapsed());

        // One message reaches all of them (after the JOINs of later arrivals).
        crowd[0].send("hello all").await;
        for c in crowd.iter_mut() {
            c.wait_for("MSG #lobby u000 hello all").await;
        }

        // A newcomer makes the room 502 strong: its JOIN goes to itself only,
        // and its USERS lists everyone.
        let mut x = s.connect().await;
        let users = x.finish_login("newcomer").await;
        let listed: Vec<&str> = users.split(' ').skip(2).collect();
        assert_eq!(listed.len(), CROWD + 1);
        assert_eq!(listed.last(), Some(&"newcomer"));
        let mut expected: Vec<String> = (0..CROWD).map(nick).collect();
        expected.push("newcomer".into());
        let mut sorted: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
        sorted.sort();
        expected.sort();
        assert_eq!(sorted, expected);

        x.send("/who").await;
        let who = x.expect_prefix("USERS #lobby ").await;
        assert_eq!(who, users, "/who lists everyone, like the joiner's USERS");

        x.send("after newcomer").await;
        x.expect("MSG #lobby newcomer after newcomer").await;
        for c in crowd.iter_mut() {
            c.expect("MSG #lobby newcomer after newcomer").await;
        }

        // PART of others is not broadcast either: one quits, one vanishes.
        let mut quitter = crowd.remove(1);
        quitter.send("/quit bye").await;
        quitter.expect_prefix("PART #lobby u001 ").await;
        assert!(quitter.expect_closed().await.is_empty());
        let vanished = crowd.remove(1); // u002
        drop(vanished);
        // Wait (bounded, by round trips) until the server has noticed.
        let deadline = Instant::now() + STEP;
        loop {
            x.send("/who").await;
            let who = x.expect_prefix("USERS #lobby ").await;
            if !who.split(' ').any(|n| n == "u002") {
                // /who still lists everyone else.
                assert_eq!(who.split(' ').skip(2).count(), CROWD - 1);
                assert!(!who.split(' ').any(|n| n == "u001"));
                break;
            }
            assert!(Instant::now() < deadline, "u002's disconnect not noticed");
        }
        x.send("after parts").await;
        x.expect("MSG #lobby newcomer after parts").await;
        for c in crowd.iter_mut() {
            c.expect("MSG #lobby newcomer after parts").await;
        }
        s.stop().await;
    });
}
