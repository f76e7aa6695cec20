//! The real `tlschat` client against a scripted server in history mode:
//! the replay after a join, the catch-up after a dropped connection, and
//! what a server without history (no ALPN) gets.
//!
//! What flows: [`Hostile`] (from `hostile_server.rs`) serves TLS on an
//! ephemeral loopback port, selecting ALPN `tlschat/2` when the test asks
//! for history mode; each connection runs the test's script, which sends
//! stamped lines, `HISTORY` batches and `HISTORYEND`, drops the connection
//! where the test wants a reconnect, and records what the client sent.
//! The client child runs in plain mode (its stdout is read) or, for the
//! terminal UI, in tmux (the pane is captured). Every wait is bounded.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::hostile_server::{pinned_command, spawn, Hostile, Identity, Peer, Seen, WORLD};
use tlschat_client_core::render::{sanitize, stamp};
use tlschat_protocol::history::HISTORY_ALPN;

/// A stamp on 2025-12-05, with room for the lines of a test after it.
const BASE: u64 = 1_764_907_200_000;

/// The text of line `n`: every script, and a tag to find it by.
fn text(n: u64) -> String {
    format!("{WORLD} m{n}")
}

/// `text(n)` as the client prints it.
fn shown(n: u64) -> String {
    sanitize(&text(n)).into_owned()
}

fn live(n: u64) -> String {
    format!("@{} MSG #lobby bob {}", BASE + n, text(n))
}

fn kept(n: u64) -> String {
    format!("HISTORY #lobby {} bob {}", BASE + n, text(n))
}

/// Sends `lines` in order.
async fn say(peer: &mut Peer, lines: &[String]) {
    for line in lines {
        peer.send(line).await;
    }
}

/// Notes the ALPN protocol the connection settled on.
fn note_alpn(seen: &Seen, peer: &Peer) {
    let alpn = peer
        .alpn()
        .map(|a| String::from_utf8_lossy(&a).into_owned());
    seen.push(format!("alpn {}", alpn.as_deref().unwrap_or("none")));
}

/// A scripted server on a fresh certificate, in history mode (selecting
/// ALPN `tlschat/2`) or not; its script gets each connection, its number
/// (from 0) and the record of what it saw. With the temp dir for the client.
fn serve<F, Fut>(history: bool, script: F) -> (tempfile::TempDir, Identity, Seen, Hostile)
where
    F: Fn(Peer, usize, Seen) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::self_signed(&["localhost"], false);
    let seen = Seen::default();
    let log = seen.clone();
    let connections = Arc::new(AtomicUsize::new(0));
    let script = move |peer: Peer| {
        let n = connections.fetch_add(1, Ordering::SeqCst);
        note_alpn(&log, &peer);
        script(peer, n, log.clone())
    };
    let server = if history {
        Hostile::start_alpn(&id, HISTORY_ALPN, script)
    } else {
        Hostile::start(&id, script)
    };
    (dir, id, seen, server)
}

/// Records every line the client sends until its `/quit`, then closes.
async fn record_until_quit(peer: &mut Peer, log: &Seen) {
    while let Some(line) = peer.recv().await {
        let quit = line.starts_with("/quit");
        log.push(line);
        if quit {
            break;
        }
    }
    peer.close().await;
}

/// Runs the plain client as alice until it prints `marker`, then quits it;
/// what it printed.
fn plain_client_until(dir: &Path, id: &Identity, server: &Hostile, marker: &str) -> Vec<String> {
    let mut client = spawn(pinned_command(dir, "alice", id, server, &[]));
    client.expect_out(marker);
    client.close_stdin();
    client.assert_exit(0);
    client.stdout()
}

/// How many stdout lines end with the tag of line `n` (`m<n>`).
fn times_shown(out: &[String], n: u64) -> usize {
    let tag = format!(" m{n}");
    out.iter().filter(|l| l.ends_with(&tag)).count()
}

/// A live line (500), the replay that overlaps it (400, a `/me` at 450,
/// 500 again) with `left` earlier lines left out, then a live line (501).
fn overlapping_replay(left: u32) -> [String; 6] {
    [
        live(500),
        kept(400),
        format!("HISTORY #lobby {} *bob {}", BASE + 450, text(450)),
        kept(500),
        format!("HISTORYEND #lobby 3 {left}"),
        live(501),
    ]
}

/// Every line is shown once, whether it came live, in the replay (which
/// overlaps the live lines), or both; kept lines carry their date.
#[test]
fn a_replay_overlapping_live_lines_shows_each_line_once() {
    let (dir, id, seen, server) = serve(true, |mut peer, _, _| async move {
        peer.login().await;
        say(&mut peer, &overlapping_replay(0)).await;
        peer.send("INFO done").await;
        peer.until_quit().await;
    });
    let out = plain_client_until(dir.path(), &id, &server, "* done");
    for n in [400, 450, 500, 501] {
        assert_eq!(times_shown(&out, n), 1, "m{n}\n{out:#?}");
    }
    let line = |n: u64| out.iter().find(|l| l.ends_with(&format!(" m{n}"))).cloned();
    assert_eq!(
        line(400),
        Some(format!(
            "{} [#lobby] bob: {}",
            stamp(BASE + 400),
            shown(400)
        ))
    );
    assert_eq!(
        line(450),
        Some(format!(
            "{} [#lobby] * bob {}",
            stamp(BASE + 450),
            shown(450)
        ))
    );
    assert_eq!(line(500), Some(format!("[#lobby] bob: {}", shown(500))));
    assert!(out.iter().any(|l| l == "— history —"), "{out:#?}");
    assert_eq!(seen.all(), ["alpn tlschat/2"]);
}

/// After a dropped connection the client rejoins, sees the replay left
/// lines out past what it saw, asks `/history since <newest seen>` once,
/// and shows exactly the missed lines, once each.
#[test]
fn a_reconnect_catches_up_exactly_the_missed_lines() {
    let (dir, id, seen, server) = serve(true, |mut peer, n, log| async move {
        peer.login().await;
        if n == 0 {
            say(
                &mut peer,
                &["HISTORYEND #lobby 0 0".to_owned(), live(100), live(110)],
            )
            .await;
            // Dropped without a goodbye: the client reconnects.
            return;
        }
        // Lines 111..=299 were said while the client was away; the replay
        // reaches back only to 300.
        say(
            &mut peer,
            &[
                live(400),
                kept(300),
                kept(350),
                "HISTORYEND #lobby 2 7".to_owned(),
            ],
        )
        .await;
        while let Some(line) = peer.recv_within(Duration::from_secs(10)).await {
            let asked = line.starts_with("/history");
            log.push(line);
            if asked {
                break;
            }
        }
        say(
            &mut peer,
            &[
                live(401),
                kept(110),
                kept(120),
                kept(250),
                kept(300),
                "HISTORYEND #lobby 4 0".to_owned(),
                "INFO caught up".to_owned(),
            ],
        )
        .await;
        record_until_quit(&mut peer, &log).await;
    });
    let out = plain_client_until(dir.path(), &id, &server, "* caught up");
    for n in [100, 110, 120, 250, 300, 350, 400, 401] {
        assert_eq!(times_shown(&out, n), 1, "m{n}\n{out:#?}");
    }
    // Printed in the order said, the missed lines before the live ones
    // that came while they were asked for.
    let order: Vec<usize> = [100, 110, 120, 250, 300, 350, 400, 401]
        .iter()
        .filter_map(|n| out.iter().position(|l| l.ends_with(&format!(" m{n}"))))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{out:#?}");
    for n in [120, 250] {
        assert!(
            out.iter()
                .any(|l| l.starts_with(&stamp(BASE + n)) && l.ends_with(&format!(" m{n}"))),
            "m{n} is shown with its date\n{out:#?}"
        );
    }
    let sent = seen.all();
    let asks: Vec<&String> = sent.iter().filter(|l| l.starts_with("/history")).collect();
    assert_eq!(
        asks,
        [&format!("/history since {} 500", BASE + 110)],
        "{sent:?}"
    );
    assert_eq!(
        sent.iter()
            .filter(|l| l.starts_with("alpn"))
            .collect::<Vec<_>>(),
        ["alpn tlschat/2", "alpn tlschat/2"],
        "ALPN offered on every connection"
    );
}

/// Notes the client's lines until its `/join`; false when the connection
/// ended first.
async fn await_join(peer: &mut Peer, log: &Seen) -> bool {
    while let Some(line) = peer.recv_within(Duration::from_secs(10)).await {
        let join = line.starts_with("/join");
        log.push(line);
        if join {
            return true;
        }
    }
    false
}

/// Lost again after the login but before the server answered the rejoin
/// of `#dev`: the next connection still goes back to `#dev` (not the
/// login's lobby) and catches it up from what was seen there.
#[test]
fn a_second_drop_before_the_rejoin_still_goes_back_and_catches_up() {
    let dev = |n: u64| format!("@{} MSG #dev bob {}", BASE + n, text(n));
    let (dir, id, seen, server) = serve(true, move |mut peer, n, log| async move {
        peer.login().await;
        peer.send("HISTORYEND #lobby 0 0").await;
        if !await_join(&mut peer, &log).await {
            return;
        }
        match n {
            0 => {
                let lines = [
                    "JOIN #dev alice".to_owned(),
                    "HISTORYEND #dev 0 0".to_owned(),
                    dev(100),
                ];
                say(&mut peer, &lines).await;
            }
            // Dropped before the JOIN of #dev.
            1 => {}
            _ => {
                let lines = [
                    "JOIN #dev alice".to_owned(),
                    format!("HISTORY #dev {} bob {}", BASE + 300, text(300)),
                    "HISTORYEND #dev 1 9".to_owned(),
                ];
                say(&mut peer, &lines).await;
                if let Some(line) = peer.recv_within(Duration::from_secs(10)).await {
                    log.push(line);
                }
                peer.send("INFO caught up").await;
                record_until_quit(&mut peer, &log).await;
            }
        }
    });
    let mut client = spawn(pinned_command(dir.path(), "alice", &id, &server, &[]));
    client.expect_out("* alice joined #lobby");
    client.send("/join #dev");
    client.expect_out("* caught up");
    client.close_stdin();
    client.assert_exit(0);
    let out = client.stdout();
    assert_eq!(times_shown(&out, 100), 1, "{out:#?}");
    let sent = seen.all();
    let joins = sent.iter().filter(|l| *l == "/join #dev").count();
    assert_eq!(joins, 3, "typed, then on each reconnect\n{sent:?}");
    assert!(
        sent.contains(&format!("/history since {} 500", BASE + 100)),
        "{sent:?}"
    );
}

/// A server that selects no ALPN is a v1 server: the client never sends
/// `/history` (not after a reconnect either) and shows no kept line it did
/// not ask for.
#[test]
fn without_alpn_no_history_is_asked_or_shown() {
    let (dir, id, seen, server) = serve(false, |mut peer, n, log| async move {
        peer.login().await;
        // Even stamped lines (unknown lines in v1, not shown) and a replay
        // that leaves lines out past them, which a v1 server never sends,
        // make it ask nothing.
        say(
            &mut peer,
            &[
                live(100 + n as u64),
                kept(300),
                "HISTORYEND #lobby 1 9".to_owned(),
            ],
        )
        .await;
        if n == 0 {
            return;
        }
        peer.send("INFO done").await;
        record_until_quit(&mut peer, &log).await;
    });
    let out = plain_client_until(dir.path(), &id, &server, "* done");
    assert_eq!(times_shown(&out, 100), 0, "{out:#?}");
    assert_eq!(times_shown(&out, 101), 0, "{out:#?}");
    assert_eq!(times_shown(&out, 300), 0, "{out:#?}");
    let sent = seen.all();
    assert_eq!(
        sent.iter().filter(|l| l.starts_with("alpn none")).count(),
        2,
        "{sent:?}"
    );
    assert!(!sent.iter().any(|l| l.starts_with("/history")), "{sent:?}");
}

/// Each row of a `capture-pane -e` screen as its characters and, for each,
/// whether it is drawn grey (the SGR state carries on across rows).
#[cfg(target_os = "linux")]
fn greyness(styled: &str) -> Vec<(String, Vec<bool>)> {
    const GREY: &[&str] = &["38;5;8", "90"];
    let mut rows = Vec::new();
    let mut grey = false;
    for line in styled.lines() {
        let mut text = String::new();
        let mut flags = Vec::new();
        let mut rest = line;
        while let Some(c) = rest.chars().next() {
            if let Some(sgr) = rest.strip_prefix("\u{1b}[") {
                let end = sgr.find('m').unwrap_or(sgr.len());
                let params = sgr.get(..end).unwrap_or("");
                if GREY.iter().any(|g| params.ends_with(g)) {
                    grey = true;
                } else if params.is_empty()
                    || params == "0"
                    || params == "39"
                    || params.contains("38;")
                {
                    grey = false;
                }
                rest = sgr.get(end + 1..).unwrap_or("");
                continue;
            }
            text.push(c);
            flags.push(grey);
            rest = rest.get(c.len_utf8()..).unwrap_or("");
        }
        rows.push((text, flags));
    }
    rows
}

/// Whether a captured row's message-pane text is all grey, and whether
/// any of it is not.
#[cfg(target_os = "linux")]
fn dim((text, grey): &(String, Vec<bool>)) -> (bool, bool) {
    // The message pane ends where the sidebar's rule begins.
    let end = text.chars().position(|c| c == '│').unwrap_or(grey.len());
    let shown: Vec<bool> = text
        .chars()
        .zip(grey)
        .take(end)
        .filter(|(c, _)| *c != ' ')
        .map(|(_, g)| *g)
        .collect();
    (shown.iter().all(|g| *g), shown.iter().any(|g| !*g))
}

/// The terminal UI shows kept lines dimmed with their date and time, in
/// stamp order before the live lines that overlapped the replay, then a
/// dim separator saying how many earlier lines are left; `/search` hits
/// come as a dim block of their own.
#[cfg(target_os = "linux")]
#[test]
fn the_terminal_ui_dims_and_dates_history_and_search_hits() {
    use crate::harness::outside_program;
    use crate::tui_tmux::Tmux;

    if !outside_program("tmux", &["-V"]) {
        return;
    }
    let (dir, id, _, server) = serve(true, |mut peer, _, _| async move {
        peer.login().await;
        say(&mut peer, &overlapping_replay(12)).await;
        while let Some(line) = peer.recv().await {
            if line.starts_with("/quit") {
                break;
            }
            if line == "/search Привет" {
                let hit =
                    |n: u64, nick: &str| format!("FOUND #lobby {} {nick} {}", BASE + n, text(n));
                let end = "FOUNDEND #lobby 2 0".to_owned();
                say(&mut peer, &[hit(450, "*bob"), hit(400, "bob"), end]).await;
            }
        }
        peer.close().await;
    });
    let cmd = format!(
        "{} --nick alice --fingerprint {} --known-hosts {} {}; echo EXIT=$?; sleep 60",
        env!("CARGO_BIN_EXE_tlschat"),
        id.fingerprint(),
        dir.path().join("known_hosts").display(),
        server.host(),
    );
    let tmux = Tmux::start(&cmd);
    let screen = tmux.wait_for("m501");
    let rows: Vec<&str> = screen.lines().collect();
    let row = |needle: &str| {
        let found: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].contains(needle))
            .collect();
        assert_eq!(found.len(), 1, "`{needle}` once:\n{screen}");
        found[0]
    };
    let separator = row("12 earlier lines");
    let order = [
        row("m400"),
        row("m450"),
        separator,
        row("m500"),
        row("m501"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}\n{screen}");
    assert!(
        rows[order[0]].contains(&format!("{} bob: ", stamp(BASE + 400))),
        "dated:\n{screen}"
    );
    assert!(rows[order[1]].contains("* bob "), "{screen}");
    assert!(rows[separator].contains("───"), "a rule:\n{screen}");
    // Dimmed: every character of a kept line and of the separator is grey,
    // a live line's text is not.
    let styled = greyness(&tmux.styled_screen());
    let row_of = |needle: &str| {
        styled
            .iter()
            .find(|(text, _)| text.contains(needle))
            .unwrap_or_else(|| panic!("`{needle}`:\n{screen}"))
    };
    for needle in ["m400", "m450", "earlier lines"] {
        assert_eq!(
            dim(row_of(needle)),
            (true, false),
            "{needle} is dim:\n{screen}"
        );
    }
    assert!(dim(row_of("m500")).1, "a live line is not dim:\n{screen}");

    // A search typed by the user reaches the server; its hits are a dim
    // block of their own, newest first, after what was there.
    tmux.type_text("/search Привет");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("2 found in #lobby");
    let styled = greyness(&tmux.styled_screen());
    let hits: Vec<&(String, Vec<bool>)> = styled
        .iter()
        .filter(|(text, _)| text.contains('⌕'))
        .collect();
    assert_eq!(hits.len(), 2, "{screen}");
    assert!(
        hits[0].0.contains("m450") && hits[1].0.contains("m400"),
        "{screen}"
    );
    assert!(hits.iter().all(|h| dim(h) == (true, false)), "{screen}");
    let below = |needle: &str| styled.iter().position(|(t, _)| t.contains(needle));
    assert!(below("m501") < below("⌕"), "{screen}");
    tmux.keys(&["/quit", "Enter"]);
    let screen = tmux.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
}
