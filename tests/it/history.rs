//! History over real TLS: the in-process server keeps room lines in
//! `<data-dir>/history.db`; history-mode clients (ALPN `tlschat/2`) get
//! stamped live lines and a replay after each join; every session may ask
//! `/history` and `/search`. v1 sessions see exactly v1.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tlschat_protocol::history::split_stamp;
use tlschat_server_core::HistoryGate;

use crate::harness::*;

/// Every line of these tests carries this: Cyrillic, Hebrew, Arabic, CJK,
/// a ZWJ emoji and a combining mark.
const TEXT: &str = "привет שלום مرحبا 你好 👩🏽‍💻 e\u{301}";

/// A kept line, as `HISTORY` and `FOUND` carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Kept {
    room: String,
    at: u64,
    nick: String,
    action: bool,
    text: String,
}

/// `WORD <room> <at> <nick>|*<nick> <text>`.
fn kept(word: &str, line: &str) -> Kept {
    let rest = line
        .strip_prefix(word)
        .and_then(|r| r.strip_prefix(' '))
        .unwrap_or_else(|| panic!("not a {word} line: {line}"));
    let mut parts = rest.splitn(4, ' ');
    let (room, at, who, text) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap_or(""),
    );
    let (action, nick) = match who.strip_prefix('*') {
        Some(nick) => (true, nick),
        None => (false, who),
    };
    Kept {
        room: room.to_owned(),
        at: at.parse().unwrap_or_else(|_| panic!("stamp in {line}")),
        nick: nick.to_owned(),
        action,
        text: text.to_owned(),
    }
}

/// What a client read up to and including a `HISTORYEND` (or `FOUNDEND`):
/// the kept lines, the end line, and the stamped live lines in between.
struct Answer {
    kept: Vec<Kept>,
    end: String,
    live: Vec<(u64, String)>,
}

/// Reads until the line starting with `end_word`, collecting `word` lines
/// and stamped live lines; any other line fails the test unless it starts
/// with one of `allowed`.
async fn read_answer(c: &mut Client, word: &str, end_word: &str, allowed: &[&str]) -> Answer {
    let mut kept_lines = Vec::new();
    let mut live = Vec::new();
    loop {
        let line = c.recv().await;
        if line.starts_with(&format!("{end_word} ")) {
            return Answer {
                kept: kept_lines,
                end: line,
                live,
            };
        }
        if line.starts_with(&format!("{word} ")) {
            kept_lines.push(kept(word, &line));
            continue;
        }
        if let (Some(at), v1) = split_stamp(&line) {
            live.push((at, v1.to_owned()));
            continue;
        }
        assert!(
            allowed.iter().any(|a| line.starts_with(a)),
            "unexpected line while reading {word}: {line}"
        );
    }
}

async fn replay(c: &mut Client) -> Answer {
    read_answer(c, "HISTORY", "HISTORYEND", &["JOIN ", "PART "]).await
}

/// `n` room lines from `c` (every 8th a `/me`), numbered from `from`; the
/// texts, in order. Synced: all of them are in the hub when this returns
/// (and `c`'s echoes are read).
async fn say(c: &mut Client, from: usize, n: usize) -> Vec<(bool, String)> {
    let said = send_lines(c, from, n).await;
    c.sync("said").await;
    said
}

/// [`say`] without the sync: the echoes are still to be read.
async fn send_lines(c: &mut Client, from: usize, n: usize) -> Vec<(bool, String)> {
    let mut said = Vec::new();
    for i in from..from + n {
        let text = format!("{TEXT} {i}");
        let action = i % 8 == 7;
        if action {
            c.send(&format!("/me {text}")).await;
        } else {
            c.send(&text).await;
        }
        said.push((action, text));
    }
    said
}

fn texts(kept: &[Kept]) -> Vec<(bool, String)> {
    kept.iter().map(|k| (k.action, k.text.clone())).collect()
}

/// A newcomer in history mode gets the last 50 lines after the `USERS` of
/// its login, oldest first, `/me` marked, and again after a `/join`.
#[tokio::test]
async fn a_newcomer_gets_the_last_50_lines_after_users_at_login_and_after_join() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let said = say(&mut alice, 0, 60).await;
    let mut bob = server.login_history("bob").await;
    let got = replay(&mut bob).await;
    assert_eq!(got.end, "HISTORYEND #lobby 50 10");
    assert_eq!(texts(&got.kept), said[10..]);
    assert!(got
        .kept
        .iter()
        .all(|k| k.room == "#lobby" && k.nick == "alice"));
    assert!(got.kept.iter().any(|k| k.action), "a /me is marked");
    assert!(
        got.kept.windows(2).all(|w| w[0].at < w[1].at),
        "oldest first"
    );
    bob.expect_quiet("after the replay").await;

    let mut carol = server.login("carol").await;
    carol.send("/join #Rust").await;
    carol.wait_for("USERS #Rust").await;
    bob.expect("JOIN #lobby carol").await;
    bob.expect("PART #lobby carol moved").await;
    let in_rust = say(&mut carol, 100, 3).await;
    bob.send("/join #rust").await;
    bob.expect("PART #lobby bob moved").await;
    bob.expect("JOIN #Rust bob").await;
    bob.expect_prefix("USERS #Rust").await;
    let got = replay(&mut bob).await;
    assert_eq!(got.end, "HISTORYEND #Rust 3 0");
    assert_eq!(texts(&got.kept), in_rust);
    // Back in a room it has seen: replayed again (the client drops what it
    // saw, by stamp).
    bob.send("/join #lobby").await;
    bob.wait_for("USERS #lobby").await;
    assert_eq!(replay(&mut bob).await.end, "HISTORYEND #lobby 50 10");
    // Nothing for a v1 session: not at login, not after a join.
    let mut dave = server.login("dave").await;
    dave.expect_quiet("v1 login").await;
    dave.send("/join #rust").await;
    dave.wait_for("USERS #Rust").await;
    dave.expect_quiet("v1 join").await;
    server.stop().await;
}

/// Live room lines carry a stamp for history-mode sessions only, strictly
/// increasing within the room; a v1 session in the same room gets v1's
/// bytes. With the clock standing still, stamps still increase by one.
#[tokio::test]
async fn live_lines_are_stamped_for_history_sessions_only_and_strictly_increase() {
    let (server, _clock) = TestServer::start_clocked().await;
    let start_ms = u64::try_from(
        clock_start()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let mut v1 = server.login("alice").await;
    let mut h = server.login_history("bob").await;
    assert_eq!(replay(&mut h).await.end, "HISTORYEND #lobby 0 0");
    v1.expect("JOIN #lobby bob").await;
    let said = send_lines(&mut v1, 0, 40).await;
    v1.send("/ping said").await;
    let mut stamps = Vec::new();
    for (action, text) in &said {
        let line = h.recv().await;
        let (at, rest) = split_stamp(&line);
        let word = if *action { "ACTION" } else { "MSG" };
        assert_eq!(rest, format!("{word} #lobby alice {text}"));
        stamps.push(at.expect("stamped"));
    }
    assert!(stamps[0] >= start_ms, "{} < {start_ms}", stamps[0]);
    assert!(
        stamps.windows(2).all(|w| w[1] == w[0] + 1),
        "one millisecond apart while the clock stands still: {stamps:?}"
    );
    // The v1 session saw its own lines as v1, nothing else.
    for (action, text) in &said {
        let word = if *action { "ACTION" } else { "MSG" };
        v1.expect(&format!("{word} #lobby alice {text}")).await;
    }
    v1.expect("PONG said").await;
    v1.expect_quiet("nothing more").await;
    // Lines in another room and private lines are never stamped.
    h.send(&format!("/msg alice {TEXT}")).await;
    h.expect(&format!("PRIVMSG bob alice {TEXT}")).await;
    v1.expect(&format!("PRIVMSG bob alice {TEXT}")).await;
    // A history session's own line comes back stamped, after the last.
    h.send(TEXT).await;
    let line = h.recv().await;
    let (at, rest) = split_stamp(&line);
    assert_eq!(rest, format!("MSG #lobby bob {TEXT}"));
    assert!(at.unwrap() > *stamps.last().unwrap());
    v1.expect(&format!("MSG #lobby bob {TEXT}")).await;
    server.stop().await;
}

/// Two writers talk while a history-mode reader leaves and rejoins their
/// room again and again: what it got live and in replays covers every
/// line, each under one stamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_line_is_lost_or_doubled_while_writers_talk_during_repeated_joins() {
    const LINES: usize = 120;
    let server = TestServer::start().await;
    let mut writers = Vec::new();
    for name in ["wa", "wb"] {
        let mut w = server.login_history(name).await;
        replay(&mut w).await;
        w.send("/join #talk").await;
        w.wait_for("HISTORYEND #talk").await;
        writers.push(w);
    }
    let mut reader = server.login_history("reader").await;
    replay(&mut reader).await;
    let talk = writers.into_iter().enumerate().map(|(n, mut w)| {
        tokio::spawn(async move {
            for i in 0..LINES {
                w.send(&format!("{TEXT} w{n} {i}")).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            w.send("/ping done").await;
            w
        })
    });
    let talk: Vec<_> = talk.collect();
    // stamp → text, from everything the reader saw.
    let mut seen: BTreeMap<u64, String> = BTreeMap::new();
    let mut note = |at: u64, text: String| {
        if let Some(before) = seen.insert(at, text.clone()) {
            assert_eq!(before, text, "one stamp, two lines");
        }
    };
    for visit in 0..10 {
        reader.send("/join #talk").await;
        let got = read_answer(
            &mut reader,
            "HISTORY",
            "HISTORYEND",
            &["PART ", "JOIN ", "USERS "],
        )
        .await;
        for k in got.kept {
            note(k.at, format!("MSG #talk {} {}", k.nick, k.text));
        }
        for (at, line) in got.live {
            note(at, line);
        }
        // Live for a while, then away.
        let until = tokio::time::Instant::now() + Duration::from_millis(20 + 10 * visit);
        while let Ok(line) = tokio::time::timeout_at(until, reader.recv()).await {
            if let (Some(at), v1) = split_stamp(&line) {
                note(at, v1.to_owned());
            }
        }
        reader.send("/join #elsewhere").await;
        reader.wait_for("HISTORYEND #elsewhere").await;
    }
    let mut all: BTreeMap<u64, String> = BTreeMap::new();
    for w in talk {
        let mut w = w.await.unwrap();
        // Each writer got every line of the room live, stamped.
        let mut mine = BTreeMap::new();
        loop {
            let line = w.recv().await;
            if line == "PONG done" {
                break;
            }
            if let (Some(at), v1) = split_stamp(&line) {
                mine.insert(at, v1.to_owned());
            }
        }
        all.extend(mine);
    }
    // Lines said after the reader's last visit: one more visit takes them.
    reader.send("/join #talk").await;
    let got = read_answer(
        &mut reader,
        "HISTORY",
        "HISTORYEND",
        &["PART ", "JOIN ", "USERS "],
    )
    .await;
    let mut last_visit: BTreeMap<u64, String> = got
        .kept
        .into_iter()
        .map(|k| (k.at, format!("MSG #talk {} {}", k.nick, k.text)))
        .collect();
    last_visit.extend(got.live);
    for (at, text) in last_visit {
        note(at, text);
    }
    let texts: BTreeSet<&String> = all.values().collect();
    assert_eq!(texts.len(), all.len(), "each line under one stamp");
    assert_eq!(all.len(), 2 * LINES, "every line reached the writers");
    let missing: Vec<_> = all
        .iter()
        .filter(|(at, _)| !seen.contains_key(at))
        .collect();
    assert!(missing.is_empty(), "the reader never got {missing:?}");
    for (at, text) in &all {
        assert_eq!(&seen[at], text, "stamp {at}");
    }
    server.stop().await;
}

/// With history's writer stalled, every line said is still in the replay
/// (read from its queue), chat flows as ever, and once the queue is full
/// further lines are only delivered, not kept.
#[tokio::test]
async fn a_stalled_writer_neither_delays_chat_nor_hides_queued_lines() {
    let gate = Arc::new(HistoryGate::new());
    gate.close();
    let stalled = gate.clone();
    let server = TestServer::start_with(move |c| c.history_gate = Some(stalled)).await;
    let mut alice = server.login("alice").await;
    let said = say(&mut alice, 0, 5).await;
    let mut bob = server.login_history("bob").await;
    let got = replay(&mut bob).await;
    assert_eq!(texts(&got.kept), said, "the queued lines are replayed");
    assert_eq!(got.end, "HISTORYEND #lobby 5 0");

    // Past the queue (8192 rows waiting, 1000 more held by the stalled
    // commit): delivered live, not kept.
    const QUEUE_ROWS: usize = 8192;
    let total = QUEUE_ROWS + 1000 + 300;
    let flood = tokio::spawn(async move {
        for i in 5..total {
            alice.send(&format!("{TEXT} {i}")).await;
        }
        alice.sync("flooded").await;
        alice
    });
    for i in 5..total {
        let line = bob.recv().await;
        let (at, v1) = split_stamp(&line);
        assert!(at.is_some(), "{line}");
        assert_eq!(v1, format!("MSG #lobby alice {TEXT} {i}"));
    }
    let _alice = flood.await.unwrap();
    bob.send("/history 1").await;
    let got = read_answer(&mut bob, "HISTORY", "HISTORYEND", &[]).await;
    let newest: usize = got.kept[0]
        .text
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        (QUEUE_ROWS..total - 1).contains(&newest),
        "the newest kept line is {newest} of {total}: the lines past the full queue are dropped"
    );
    // What was kept is every line up to it, once.
    bob.send("/history 200").await;
    let got = read_answer(&mut bob, "HISTORY", "HISTORYEND", &[]).await;
    let expected: Vec<String> = (newest - 199..=newest)
        .map(|i| format!("{TEXT} {i}"))
        .collect();
    let kept: Vec<String> = got.kept.iter().map(|k| k.text.clone()).collect();
    assert_eq!(kept, expected);
    gate.open();
    server.stop().await;
}

/// Kept lines survive a restart; a stamp issued after it is past every
/// stamp before it.
#[tokio::test]
async fn history_survives_a_restart() {
    let server = TestServer::start().await;
    let mut alice = server.login_history("alice").await;
    replay(&mut alice).await;
    let said = send_lines(&mut alice, 0, 12).await;
    let mut last = 0;
    for _ in 0..12 {
        last = split_stamp(&alice.recv().await).0.expect("stamped");
    }
    drop(alice);
    let dir = server.stop().await;
    let server = TestServer::start_in(dir, |_| {}).await;
    let mut bob = server.login_history("bob").await;
    let got = replay(&mut bob).await;
    assert_eq!(texts(&got.kept), said);
    assert_eq!(got.kept.last().map(|k| k.at), Some(last));
    bob.send(TEXT).await;
    let at = split_stamp(&bob.recv().await).0.expect("stamped");
    assert!(at > last, "{at} after a restart, {last} before");
    server.stop().await;
}

/// A client that lost its connection asks `/history since` the last stamp
/// it saw and gets exactly the lines it missed.
#[tokio::test]
async fn catch_up_after_a_dropped_connection_is_exactly_the_missed_lines() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login_history("bob").await;
    replay(&mut bob).await;
    alice.expect("JOIN #lobby bob").await;
    say(&mut alice, 0, 3).await;
    let mut cursor = 0;
    for _ in 0..3 {
        cursor = split_stamp(&bob.recv().await).0.expect("stamped");
    }
    drop(bob);
    alice.wait_for("PART #lobby bob").await;
    let missed = say(&mut alice, 3, 7).await;
    let mut bob = server.login_history("bob").await;
    replay(&mut bob).await;
    bob.send(&format!("/history since {cursor}")).await;
    let got = read_answer(&mut bob, "HISTORY", "HISTORYEND", &[]).await;
    assert_eq!(texts(&got.kept), missed);
    assert_eq!(got.end, "HISTORYEND #lobby 7 0");
    // Fewer asked for: the newest, and the rest counted.
    bob.send(&format!("/history since {cursor} 2")).await;
    let got = read_answer(&mut bob, "HISTORY", "HISTORYEND", &[]).await;
    assert_eq!(texts(&got.kept), missed[5..]);
    assert_eq!(got.end, "HISTORYEND #lobby 2 5");
    // Older than the oldest kept line: `before`.
    let oldest = got.kept[0].at;
    bob.send(&format!("/history before {oldest} 3")).await;
    let got = read_answer(&mut bob, "HISTORY", "HISTORYEND", &[]).await;
    assert_eq!(texts(&got.kept), missed[2..5]);
    assert_eq!(got.end, "HISTORYEND #lobby 3 5");
    server.stop().await;
}

/// `/history` is bounded in lines (200) and in bytes (a quarter of the
/// client's queue), and answers a v1 session too; malformed asks are
/// `bad-argument`.
#[tokio::test]
async fn history_answers_are_bounded_in_lines_and_bytes() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let said = say(&mut alice, 0, 250).await;
    alice.send("/history 1000").await;
    let got = read_answer(&mut alice, "HISTORY", "HISTORYEND", &[]).await;
    assert_eq!(got.end, "HISTORYEND #lobby 200 50");
    assert_eq!(texts(&got.kept), said[50..]);
    for bad in [
        "/history 0",
        "/history пять",
        "/history since",
        "/history before x",
    ] {
        alice.send(bad).await;
        alice.expect_prefix("ERROR bad-argument ").await;
    }
    // Long lines: the answer stops at a quarter of the 256 KiB queue,
    // newest kept.
    let long = format!("{TEXT} {}", "ж".repeat(1500));
    for _ in 0..60 {
        alice.send(&long).await;
    }
    alice.sync("long").await;
    alice.send("/history 200").await;
    let got = read_answer(&mut alice, "HISTORY", "HISTORYEND", &[]).await;
    let bytes: usize = got
        .kept
        .iter()
        .map(|k| format!("HISTORY #lobby {} alice {}\n", k.at, k.text).len())
        .sum();
    assert!(bytes <= 64 * 1024, "{bytes} bytes");
    let sent = got.kept.len();
    assert!(sent > 10 && sent < 60, "{sent} lines");
    assert_eq!(
        got.end,
        format!("HISTORYEND #lobby {sent} {}", 250 + 60 - sent)
    );
    server.stop().await;
}

/// `/search` finds whole words whatever their case and accents, newest
/// first, at most 20.
#[tokio::test]
async fn search_finds_words_and_is_bounded() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    for i in 0..30 {
        alice.send(&format!("Привет мир {i} 👩🏽‍💻 שלום")).await;
    }
    alice.send("/me café naïve 東京 e\u{301}").await;
    alice.send("nothing to see here").await;
    alice.sync("said").await;
    committed(&mut alice, "nothing").await;
    alice.send("/search привет МИР").await;
    let got = read_answer(&mut alice, "FOUND", "FOUNDEND", &[]).await;
    assert_eq!(got.end, "FOUNDEND #lobby 20 1");
    let found: Vec<String> = got.kept.iter().map(|k| k.text.clone()).collect();
    let expected: Vec<String> = (10..30)
        .rev()
        .map(|i| format!("Привет мир {i} 👩🏽‍💻 שלום"))
        .collect();
    assert_eq!(found, expected, "newest first");
    alice.send("/search CAFE").await;
    let got = read_answer(&mut alice, "FOUND", "FOUNDEND", &[]).await;
    assert_eq!(got.end, "FOUNDEND #lobby 1 0");
    assert!(got.kept[0].action);
    assert_eq!(got.kept[0].text, "café naïve 東京 e\u{301}");
    alice.send("/search мир 29").await;
    assert_eq!(
        read_answer(&mut alice, "FOUND", "FOUNDEND", &[]).await.end,
        "FOUNDEND #lobby 1 0"
    );
    alice.send("/search missing").await;
    assert_eq!(
        read_answer(&mut alice, "FOUND", "FOUNDEND", &[]).await.end,
        "FOUNDEND #lobby 0 0"
    );
    // FTS syntax is text, never syntax.
    alice.send("/search \"мир OR NEAR(").await;
    assert_eq!(
        read_answer(&mut alice, "FOUND", "FOUNDEND", &[]).await.end,
        "FOUNDEND #lobby 0 0"
    );
    alice.send("/search").await;
    alice.expect_prefix("ERROR bad-argument ").await;
    server.stop().await;
}

/// Waits until `word`, which only the last line said holds, is found:
/// search reads what is committed, and lines are committed in order, each
/// within a batch window of being said. Bounded; the polls back off, so
/// they stay inside the address's read budget.
async fn committed(c: &mut Client, word: &str) {
    let deadline = tokio::time::Instant::now() + STEP;
    let mut pause = Duration::from_millis(20);
    loop {
        c.send(&format!("/search {word}")).await;
        let got = read_answer(c, "FOUND", "FOUNDEND", &[]).await;
        if got.end == "FOUNDEND #lobby 1 0" {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {}", got.end);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// History reads come from one budget per address: connections from one
/// address run out of it (a replay comes empty, commands are refused),
/// while another address is still served. The budget refills one read a
/// second, so the counts allow for what a refill adds while the test runs.
#[tokio::test]
async fn one_address_with_many_connections_runs_out_of_history_reads() {
    const BURST: usize = 60;
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    say(&mut alice, 0, 3).await;
    let from: IpAddr = "127.0.0.2".parse().unwrap();
    let started = std::time::Instant::now();
    let mut clients = Vec::new();
    for i in 0..4 {
        let (mut c, _) = connect_tls_history(server.addr, &server.cert, Some(from)).await;
        c.finish_login(&format!("many{i}")).await;
        assert_eq!(replay(&mut c).await.end, "HISTORYEND #lobby 3 0");
        clients.push(c);
    }
    let mut served = clients.len();
    for i in 0.. {
        if !history_served(&mut clients[i % 4]).await {
            break;
        }
        served += 1;
        assert!(served <= 2 * BURST, "never refused");
    }
    let refills = usize::try_from(started.elapsed().as_secs()).unwrap() + 1;
    assert!(
        (BURST..=BURST + refills).contains(&served),
        "{served} reads served; the burst is {BURST}"
    );
    // A refill between the last refusal and the replay would serve it:
    // spend what came back and try again (a few rounds at most).
    let mut emptied = false;
    for round in 0..5 {
        while history_served(&mut clients[0]).await {}
        let (mut late, _) = connect_tls_history(server.addr, &server.cert, Some(from)).await;
        late.finish_login(&format!("late{round}")).await;
        let end = replay(&mut late).await.end;
        if end == "HISTORYEND #lobby 0 0" {
            late.send("/search мир").await;
            late.expect_prefix("ERROR rate-limited ").await;
            late.expect("FOUNDEND #lobby 0 0").await;
            emptied = true;
            break;
        }
        assert_eq!(end, "HISTORYEND #lobby 3 0");
    }
    assert!(emptied, "a replay over the budget is sent empty");
    let (mut other, _) = connect_tls_history(
        server.addr,
        &server.cert,
        Some("127.0.0.3".parse().unwrap()),
    )
    .await;
    other.finish_login("other").await;
    assert_eq!(replay(&mut other).await.end, "HISTORYEND #lobby 3 0");
    other.send("/history").await;
    assert_eq!(
        read_answer(&mut other, "HISTORY", "HISTORYEND", &["JOIN "])
            .await
            .end,
        "HISTORYEND #lobby 3 0"
    );
    server.stop().await;
}

/// Sends `/history` and reads its answer: whether it was served (the
/// `HISTORYEND` came) or refused (`ERROR rate-limited`, then an empty
/// `HISTORYEND`).
async fn history_served(c: &mut Client) -> bool {
    c.send("/history").await;
    loop {
        let line = c.recv().await;
        if line.starts_with("ERROR rate-limited ") {
            c.expect("HISTORYEND #lobby 0 0").await;
            return false;
        }
        if line.starts_with("HISTORYEND ") {
            return true;
        }
    }
}

/// Over the address's read budget, `/history` and `/search` are refused
/// with `ERROR rate-limited`, each followed by its empty end line in the
/// client's current room, so the client knows the answer is over.
#[tokio::test]
async fn over_the_read_budget_a_command_gets_its_end_line_after_the_error() {
    let server = TestServer::start().await;
    let from: IpAddr = "127.0.0.4".parse().unwrap();
    let (mut c, _) = connect_tls_history(server.addr, &server.cert, Some(from)).await;
    c.finish_login("reader").await;
    replay(&mut c).await;
    c.send("/join #Kitchen").await;
    c.wait_for("USERS #Kitchen").await;
    replay(&mut c).await;
    say(&mut c, 0, 1).await;
    let mut refused = false;
    for _ in 0..200 {
        c.send("/history").await;
        let got = read_answer(&mut c, "HISTORY", "HISTORYEND", &["ERROR rate-limited "]).await;
        if got.end == "HISTORYEND #Kitchen 0 0" {
            refused = true;
            break;
        }
        assert_eq!(got.end, "HISTORYEND #Kitchen 1 0");
    }
    assert!(refused, "the budget ran out");
    c.send(&format!("/search {TEXT}")).await;
    c.expect_prefix("ERROR rate-limited ").await;
    c.expect("FOUNDEND #Kitchen 0 0").await;
    c.expect_quiet("nothing more").await;
    server.stop().await;
}

/// A `/history` or `/search` line dropped by the line budget gets the
/// drop's `ERROR rate-limited` and then its empty end line; a dropped line
/// that does not parse as one (`/history 0`) gets the `ERROR` alone.
#[tokio::test]
async fn a_history_command_dropped_by_the_line_budget_still_ends() {
    let server = TestServer::start_with(|c| {
        c.limits.rate_limit = 1;
        c.limits.rate_burst = 2;
    })
    .await;
    dropped_history_lines_end(&server).await;
    server.stop().await;
}

/// The same for a line dropped by its address's line budget (one line a
/// second, bursts of two, for all its connections together).
#[tokio::test]
async fn a_history_command_dropped_by_the_address_line_budget_still_ends() {
    let server = TestServer::start_with(|c| c.limits.address_rate_limit = 1).await;
    dropped_history_lines_end(&server).await;
    server.stop().await;
}

/// Spends a burst of two lines, then sends `/history`, `/search` and
/// `/history 0`, all dropped: the first two end, the last does not.
async fn dropped_history_lines_end(server: &TestServer) {
    let mut c = server.login_history("alice").await;
    replay(&mut c).await;
    // Spend the burst on pings, so the next lines are dropped.
    c.send("/ping a").await;
    c.send("/ping b").await;
    c.send("/history").await;
    c.send("/search привет").await;
    c.send("/history 0").await;
    c.expect("PONG a").await;
    c.expect("PONG b").await;
    c.expect_prefix("ERROR rate-limited line dropped").await;
    c.expect("HISTORYEND #lobby 0 0").await;
    c.expect_prefix("ERROR rate-limited line dropped").await;
    c.expect("FOUNDEND #lobby 0 0").await;
    c.expect_prefix("ERROR rate-limited line dropped").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    c.expect_quiet("the budget refilled").await;
}

/// A line that parses as `/search` but whose words the store refuses gets
/// `ERROR bad-argument` and then `FOUNDEND <room> 0 0`; a `/history` line
/// the parser refuses gets its `ERROR` alone (the client parses it the
/// same way and waits for no end).
#[tokio::test]
async fn a_refused_search_ends_and_an_unparsed_history_does_not() {
    let server = TestServer::start().await;
    let mut c = server.login_history("alice").await;
    replay(&mut c).await;
    say(&mut c, 0, 1).await;
    c.send(&format!("/search {TEXT} a.b*")).await;
    c.expect_prefix("ERROR bad-argument ").await;
    c.expect("FOUNDEND #lobby 0 0").await;
    c.send("/history 0").await;
    c.expect_prefix("ERROR bad-argument ").await;
    c.expect_quiet("no end line").await;
    server.stop().await;
}

/// Private messages are delivered and never kept: not replayed, not found,
/// not in history.db.
#[tokio::test]
async fn private_messages_are_never_kept() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect("JOIN #lobby bob").await;
    let secret = format!("тайна סוד 秘密 {TEXT}");
    alice.send(&format!("/msg bob {secret}")).await;
    bob.expect(&format!("PRIVMSG alice bob {secret}")).await;
    alice.send("/me said nothing in public").await;
    alice.sync("said").await;
    let mut carol = server.login_history("carol").await;
    let got = replay(&mut carol).await;
    assert_eq!(got.end, "HISTORYEND #lobby 1 0");
    carol.send("/search тайна").await;
    assert_eq!(
        read_answer(&mut carol, "FOUND", "FOUNDEND", &[]).await.end,
        "FOUNDEND #lobby 0 0"
    );
    let dir = server.stop().await;
    let mut on_disk = Vec::new();
    for name in ["history.db", "history.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(name)) {
            on_disk.extend(bytes);
        }
    }
    assert!(!on_disk.is_empty(), "history.db was written");
    let needle = "тайна".as_bytes();
    assert!(!on_disk.windows(needle.len()).any(|w| w == needle));
    let said = "said nothing in public".as_bytes();
    assert!(on_disk.windows(said.len()).any(|w| w == said));
    #[cfg(unix)]
    assert_eq!(mode(&dir.path().join("history.db")) & 0o777, 0o600);
}

/// History off: no ALPN selected, `/history` and `/search` are unknown
/// words, `/help` does not list them, and no history.db is made.
#[tokio::test]
async fn history_off_is_protocol_v1() {
    let server = TestServer::start_with(|c| c.history.on = false).await;
    let (mut c, alpn) = connect_tls_history(server.addr, &server.cert, None).await;
    assert_eq!(alpn, None, "no ALPN without history");
    c.finish_login("alice").await;
    c.send(TEXT).await;
    c.expect(&format!("MSG #lobby alice {TEXT}")).await;
    // Exactly v1's answer to any unknown word: the word as typed, before
    // anything about its arguments.
    for (line, word) in [
        ("/history", "history"),
        ("/search мир", "search"),
        ("/HISTORY", "HISTORY"),
        ("/history 0", "history"),
        ("/search", "search"),
        ("/Search a b c d e f g h i", "Search"),
    ] {
        c.send(line).await;
        c.expect(&format!(
            "ERROR unknown-command /{word} is not a command; /help lists them, //text sends a message starting with /"
        ))
        .await;
    }
    for line in help(&mut c).await {
        assert!(
            !line.contains("/history") && !line.contains("/search"),
            "{line}"
        );
    }
    let dir = server.stop().await;
    assert!(!dir.path().join("history.db").exists());
}

/// What `/help` lists, up to the `PONG end` after it.
async fn help(c: &mut Client) -> Vec<String> {
    c.send("/help").await;
    c.send("/ping end").await;
    let mut listed = Vec::new();
    loop {
        let line = c.recv().await;
        if line == "PONG end" {
            return listed;
        }
        listed.push(line);
    }
}

/// With history on, `/help` lists the history commands to a history-mode
/// session; a v1 session's `/help` stays v1's.
#[tokio::test]
async fn help_lists_the_history_commands_to_history_sessions() {
    let server = TestServer::start().await;
    let mut h = server.login_history("alice").await;
    replay(&mut h).await;
    let listed = help(&mut h).await;
    for command in ["/history [N]", "/search WORDS"] {
        assert!(
            listed
                .iter()
                .any(|l| l.starts_with(&format!("INFO {command}"))),
            "{command} in {listed:?}"
        );
    }
    let mut v1 = server.login("bob").await;
    let listed = help(&mut v1).await;
    assert!(listed
        .iter()
        .all(|l| !l.contains("/history") && !l.contains("/search")));
    server.stop().await;
}

/// The real binary: a SIGHUP applies a new `history_lines` to what is kept
/// and the reloaded certificate still offers ALPN `tlschat/2`.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_retention_and_keeps_history_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("настройки.toml");
    std::fs::write(&config, "history_lines = 50\nhistory_days = 0\n").unwrap();
    let mut cmd = run_command(&tmp.path().join("data"));
    cmd.arg("--config").arg(&config);
    let server = ServerProcess::spawn(cmd);
    let cert = server.cert();
    let mut alice = login(server.addr, &cert, "alice").await;
    let said = say(&mut alice, 0, 5).await;
    std::fs::write(&config, "history_lines = 2\nhistory_days = 7\n").unwrap();
    server.signal_hup();
    for logged in [
        "history retention reloaded",
        "certificate reloaded",
        "reload complete",
    ] {
        assert!(
            server.wait_stderr(logged, STEP).is_some(),
            "{logged}: {}",
            server.stderr()
        );
    }
    let (mut bob, alpn) = connect_tls_history(server.addr, &cert, None).await;
    assert_eq!(alpn.as_deref(), Some(&b"tlschat/2"[..]));
    bob.finish_login("bob").await;
    replay(&mut bob).await;
    // The writer applies the new count at once; a few polls at most.
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        bob.send("/history 200").await;
        let got = read_answer(&mut bob, "HISTORY", "HISTORYEND", &[]).await;
        if got.end == "HISTORYEND #lobby 2 0" {
            assert_eq!(texts(&got.kept), said[3..]);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {}", got.end);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The real binary with `--history-stall` (the benchmark's stalled disk):
/// chat goes on, the lines past the full queue are dropped, and the count
/// is logged.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_binary_delivers_everything_and_logs_what_it_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = run_command(tmp.path());
    cmd.arg("--history-stall");
    let mut server = ServerProcess::spawn(cmd);
    assert!(server.wait_stderr("--history-stall", STEP).is_some());
    let mut alice = login(server.addr, &server.cert(), "alice").await;
    let total = 8192 + 1000 + 200;
    for i in 0..total {
        alice.send(&format!("{i} Ж")).await;
    }
    for i in 0..total {
        alice.expect(&format!("MSG #lobby alice {i} Ж")).await;
    }
    assert!(
        server.wait_stderr("history lines not kept", STEP).is_some(),
        "{}",
        server.stderr()
    );
    drop(alice);
    server.terminate();
    let stderr = server.stderr();
    assert!(
        stderr.contains("room lines since the start were not kept"),
        "{stderr}"
    );
}

/// A `/search` answer is bounded in bytes like `/history`: a quarter of the
/// client's queue, the newest hits first, `more` set for the rest.
#[tokio::test]
async fn search_answers_are_bounded_in_bytes() {
    let server = TestServer::start_with(|c| c.limits.outbound_queue = 64 * 1024).await;
    let mut alice = server.login("alice").await;
    let long = format!("поиск {TEXT} {}", "ж".repeat(1500));
    for _ in 0..12 {
        alice.send(&long).await;
    }
    alice.send("nothing more").await;
    alice.sync("said").await;
    committed(&mut alice, "nothing").await;
    alice.send("/search ПОИСК").await;
    let got = read_answer(&mut alice, "FOUND", "FOUNDEND", &[]).await;
    let bytes: usize = got
        .kept
        .iter()
        .map(|k| format!("FOUND #lobby {} alice {}\n", k.at, k.text).len())
        .sum();
    assert!(bytes <= 16 * 1024, "{bytes} bytes");
    let count = got.kept.len();
    assert!(count >= 4, "{count} hits");
    assert_eq!(got.end, format!("FOUNDEND #lobby {count} 1"));
    assert!(
        got.kept.windows(2).all(|w| w[0].at > w[1].at),
        "newest first"
    );
    server.stop().await;
}

/// The real binary with a history.db it cannot open (here a directory of
/// that name): the error names the file, and the server runs without
/// history, offering no ALPN and answering the history words as unknown.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_db_that_cannot_be_opened_leaves_history_off() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("данные");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::create_dir(data.join("history.db")).unwrap();
    let server = ServerProcess::spawn(run_command(&data));
    assert!(
        server
            .wait_stderr("running without history", STEP)
            .is_some_and(|line| line.contains("history.db")),
        "{}",
        server.stderr()
    );
    let (mut c, alpn) = connect_tls_history(server.addr, &server.cert(), None).await;
    assert_eq!(alpn, None, "no ALPN without history");
    c.finish_login("alice").await;
    c.send(&format!("/search {TEXT}")).await;
    c.expect_prefix("ERROR unknown-command /search is not a command")
        .await;
    c.send(TEXT).await;
    c.expect(&format!("MSG #lobby alice {TEXT}")).await;
}

/// A search the server refuses for its words (`bad-argument`) reads
/// nothing and costs no reads of the address's budget.
#[tokio::test]
async fn a_refused_search_costs_no_reads() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send(&format!("{TEXT} поиск")).await;
    alice.sync("said").await;
    for _ in 0..20 {
        alice.send("/search мир жа*").await;
        alice.expect_prefix("ERROR bad-argument ").await;
        alice.expect("FOUNDEND #lobby 0 0").await;
    }
    alice.send("/search поиск").await;
    let end = read_answer(&mut alice, "FOUND", "FOUNDEND", &[]).await.end;
    assert!(end.starts_with("FOUNDEND #lobby "), "{end}");
    server.stop().await;
}

/// A client offering only other ALPN protocols (a browser's, Go's
/// `NextProtos`, `openssl s_client -alpn http/1.1`) is not refused by a
/// server with history: it gets no ALPN and protocol v1.
#[tokio::test]
async fn a_client_offering_other_alpn_ids_only_gets_protocol_v1() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send(TEXT).await;
    alice.expect(&format!("MSG #lobby alice {TEXT}")).await;
    let mut config = (*trusting(&server.cert)).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec(), b"h2".to_vec()];
    let tls = tls_connect(socket_for(server.addr, None), server.addr, Arc::new(config))
        .await
        .expect("TLS handshake offering http/1.1 and h2");
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    let mut bob = Client::new(tls);
    bob.finish_login("bob").await;
    alice.send(&format!("{TEXT} 2")).await;
    bob.expect(&format!("MSG #lobby alice {TEXT} 2")).await;
    server.stop().await;
}
