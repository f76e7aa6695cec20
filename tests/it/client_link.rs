//! Invite links on the real `tlschat` binary (plain mode), against the
//! hostile-server harness of `hostile_server.rs`: the link's certificate
//! is trusted without a question and stored in known_hosts, its code
//! answers `PASS join`; another certificate, or a known_hosts entry that
//! contradicts the link, ends the client with exit 3 and known_hosts as it
//! was; a `RENAME` of us is the nickname a reconnect logs in with; and
//! hostile links on the command line are usage errors (exit 2), never a
//! panic.
//!
//! What flows: a test mints a certificate, starts a [`Hostile`] server on
//! 127.0.0.1 whose script records what the client sent, builds a link
//! `tlschat://127.0.0.1:PORT/?fp=…&code=…` and runs the client child with
//! it, its known_hosts in the test's temp dir.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::WAIT;
use crate::hostile_server::{
    assert_no_control_characters, client_command, pinned_command, run_with, spawn, Hostile,
    Identity, Peer, Seen, WORLD,
};

/// A well-formed invite code.
const CODE: &str = "abcdefghijklmnopqrstuvwxyz234567";

/// The link to `server` naming the certificate `fingerprint` and `code`.
fn link(server: &Hostile, fingerprint: &str, code: Option<&str>) -> String {
    let code = code.map(|c| format!("&code={c}")).unwrap_or_default();
    format!("tlschat://{}/?fp={fingerprint}{code}", server.host())
}

fn known_hosts(dir: &Path) -> std::path::PathBuf {
    dir.join("known_hosts")
}

/// A closed server: `NICK`, then `PASS join`, whose answer is recorded,
/// then a normal session until `/quit`.
fn closed_server(id: &Identity, seen: &Seen) -> Hostile {
    let log = seen.clone();
    Hostile::start(id, move |mut peer| {
        let log = log.clone();
        async move {
            log.push("connection");
            if login_asking(&mut peer, "PASS join", &log).await {
                peer.until_quit().await;
            }
        }
    })
}

/// `NICK`, then `prompt` (`PASS` or `PASS join`), whose answer is recorded
/// as `PROMPT: ANSWER`, then `WELCOME`, `JOIN`, `USERS`. False if the
/// client left before answering.
async fn login_asking(peer: &mut Peer, prompt: &str, log: &Seen) -> bool {
    peer.send("NICK").await;
    let Some(nick) = peer.recv().await else {
        return false;
    };
    peer.send(prompt).await;
    let Some(answer) = peer.recv().await else {
        return false;
    };
    log.push(format!("{prompt}: {answer}"));
    peer.send(&format!("WELCOME {nick} #lobby")).await;
    peer.send(&format!("JOIN #lobby {nick}")).await;
    peer.send(&format!("USERS #lobby {nick}")).await;
    true
}

/// The link's certificate is trusted with no question (there is no
/// terminal to ask, and no --accept-new), stored in known_hosts, and the
/// link's code answers `PASS join`, before TLSCHAT_JOIN_PASSWORD.
#[test]
fn a_link_is_trusted_without_a_question_stored_and_its_code_answers_pass_join() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::self_signed(&["localhost"], false);
    let seen = Seen::default();
    let server = closed_server(&id, &seen);
    let link = link(&server, &id.fingerprint(), Some(CODE));
    let mut cmd = client_command(dir.path(), &["--nick", "alice", &link]);
    cmd.env("TLSCHAT_JOIN_PASSWORD", format!("not this {WORLD}"));
    let mut client = run_with(cmd, "");
    client.assert_exit(0);
    assert_eq!(
        seen.all(),
        ["connection".to_owned(), format!("PASS join: {CODE}")],
        "{}",
        client.dump()
    );
    let err = client.err().text();
    assert!(
        err.contains(&format!("added {}", server.host())) && err.contains("from the invite link"),
        "{}",
        client.dump()
    );
    let kh = std::fs::read_to_string(known_hosts(dir.path())).expect("known_hosts written");
    assert!(
        kh.lines()
            .any(|l| l == format!("{} {}", server.host(), id.fingerprint())),
        "{kh}"
    );

    // The next time known_hosts knows the server: nothing is added again,
    // and the link without its code (cut off by a shell at `&`) leaves
    // PASS join to the join password the client was given.
    let password_file = dir.path().join("join-password");
    std::fs::write(&password_file, format!("пароль-密码-🔑 {WORLD}\n")).unwrap();
    let bare = self::link(&server, &id.fingerprint(), None);
    let args = [
        "--nick",
        "bob",
        "--join-password-file",
        password_file.to_str().expect("UTF-8 path"),
        &bare,
    ];
    let mut client = run_with(client_command(dir.path(), &args), "");
    client.assert_exit(0);
    assert!(!client.err().text().contains("added"), "{}", client.dump());
    assert_eq!(
        seen.all().last(),
        Some(&format!("PASS join: пароль-密码-🔑 {WORLD}")),
        "{}",
        client.dump()
    );
    assert_eq!(
        std::fs::read_to_string(known_hosts(dir.path())).unwrap(),
        kh
    );
}

/// A server showing another certificate than its link names is refused as
/// a changed certificate (exit 3): nothing is sent, known_hosts is not
/// even created.
#[test]
fn another_certificate_than_the_links_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::self_signed(&["localhost"], false);
    let other = Identity::self_signed(&["localhost"], false);
    let seen = Seen::default();
    let server = closed_server(&id, &seen);
    let link = link(&server, &other.fingerprint(), Some(CODE));
    let mut client = run_with(client_command(dir.path(), &["--nick", "alice", &link]), "");
    client.assert_exit(3);
    assert_no_control_characters(&mut client);
    let err = client.err().text();
    for needle in [
        "INVITE LINK",
        other.fingerprint().as_str(),
        id.fingerprint().as_str(),
    ] {
        assert!(err.contains(needle), "{needle}\n{}", client.dump());
    }
    assert!(!known_hosts(dir.path()).exists(), "{}", client.dump());
    assert!(
        !seen.all().iter().any(|l| l.starts_with("PASS")),
        "{:?}",
        seen.all()
    );
}

/// known_hosts holding another certificate for the server than the link
/// names: refused (exit 3) whichever of the two the server shows, naming
/// known_hosts; a link never replaces what the file holds.
#[test]
fn known_hosts_disagreeing_with_the_link_is_refused_and_kept() {
    let id = Identity::self_signed(&["localhost"], false);
    let other = Identity::self_signed(&["localhost"], false);
    let seen = Seen::default();
    let server = closed_server(&id, &seen);
    for (known, linked) in [(&other, &id), (&id, &other)] {
        let dir = tempfile::tempdir().unwrap();
        let kh = format!(
            "# tlschat known hosts\n{} {}\n",
            server.host(),
            known.fingerprint()
        );
        std::fs::write(known_hosts(dir.path()), &kh).unwrap();
        let link = link(&server, &linked.fingerprint(), Some(CODE));
        let mut client = run_with(client_command(dir.path(), &["--nick", "alice", &link]), "");
        client.assert_exit(3);
        let err = client.err().text();
        for needle in [
            "INVITE LINK NAMES ANOTHER CERTIFICATE",
            "never replaces",
            known.fingerprint().as_str(),
            linked.fingerprint().as_str(),
            known_hosts(dir.path()).to_str().expect("UTF-8 path"),
        ] {
            assert!(err.contains(needle), "{needle}\n{}", client.dump());
        }
        assert_eq!(
            std::fs::read_to_string(known_hosts(dir.path())).unwrap(),
            kh
        );
    }
    assert!(
        !seen.all().iter().any(|l| l.starts_with("PASS")),
        "{:?}",
        seen.all()
    );
}

/// known_hosts keys an IPv6 server by its address, however it was spelled.
/// The file pins `[0:0::1]:PORT` (typed so once and accepted) to one
/// certificate; a server at `[::1]:PORT` showing another, named by a link,
/// is refused as contradicting the file. The other way round, a file
/// written as `[::1]:PORT` pins what `tlschat [0:0::1]:PORT --accept-new`
/// connects to. Either way nothing is sent and the file is kept.
#[test]
fn an_ipv6_pin_holds_whatever_spelling_the_file_or_the_link_uses() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: ::1 is not available here");
        return;
    }
    let pinned = Identity::self_signed(&["localhost"], false);
    let impostor = Identity::self_signed(&["localhost"], false);
    let seen = Seen::default();
    let log = seen.clone();
    let server = Hostile::start_on(&impostor, "[::1]:0", move |mut peer| {
        let log = log.clone();
        async move {
            log.push("connection");
            peer.login().await;
            peer.until_quit().await;
        }
    });
    let host = server.host();
    let port = host.rsplit_once(':').map(|(_, p)| p).expect("a port");
    let link = format!(
        "tlschat://[::1]:{port}/?fp={}&code={CODE}",
        impostor.fingerprint()
    );
    let typed = format!("[0:0::1]:{port}");
    let cases = [
        (
            "0:0::1",
            vec!["--nick", "alice", &link],
            "INVITE LINK NAMES ANOTHER CERTIFICATE",
        ),
        (
            "::1",
            vec!["--nick", "alice", "--accept-new", &typed],
            "CHANGED",
        ),
    ];
    for (in_file, args, refusal) in cases {
        let dir = tempfile::tempdir().unwrap();
        let kh = format!("[{in_file}]:{port} {}\n", pinned.fingerprint());
        std::fs::write(known_hosts(dir.path()), &kh).unwrap();
        let mut client = run_with(client_command(dir.path(), &args), "");
        client.assert_exit(3);
        assert!(client.err().text().contains(refusal), "{}", client.dump());
        assert_eq!(
            std::fs::read_to_string(known_hosts(dir.path())).unwrap(),
            kh
        );
    }
    assert!(seen.all().is_empty(), "{:?}", seen.all());
}

/// A secret typed at the terminal's hidden prompt (the join password, or
/// an account's password) is kept in memory for the session's reconnects:
/// after the server drops the connection, the client logs in again with
/// it and does not ask a second time.
#[cfg(target_os = "linux")]
#[test]
fn a_secret_typed_at_the_prompt_answers_the_reconnects() {
    use crate::tui_tmux::Tmux;
    if !crate::harness::outside_program("tmux", &["-V"]) {
        return;
    }
    let secret = format!("пароль {WORLD}");
    for (nick, prompt, question) in [
        ("alice", "PASS join", "join password or invite code for"),
        ("admin", "PASS", "password for admin"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::self_signed(&["localhost"], false);
        let seen = Seen::default();
        let log = seen.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let server = Hostile::start(&id, move |mut peer| {
            let log = log.clone();
            let n = connections.fetch_add(1, Ordering::SeqCst);
            async move {
                if !login_asking(&mut peer, prompt, &log).await {
                    return;
                }
                if n == 0 {
                    // A network blip: the first connection is dropped.
                    peer.close().await;
                } else {
                    peer.until_quit().await;
                }
            }
        });
        let cmd = format!(
            "{} --plain --nick {nick} --fingerprint {} --known-hosts {} {}; echo EXIT=$?; sleep 60",
            env!("CARGO_BIN_EXE_tlschat"),
            id.fingerprint(),
            known_hosts(dir.path()).display(),
            server.host(),
        );
        let tmux = Tmux::start(&cmd);
        tmux.wait_for(question);
        tmux.type_text(&secret);
        tmux.keys(&["Enter"]);
        let deadline = Instant::now() + WAIT;
        while seen.all().len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let answer = format!("{prompt}: {secret}");
        assert_eq!(seen.all(), [answer.clone(), answer], "{}", tmux.screen());
        tmux.wait_for("in #lobby");
        let screen = tmux.screen();
        assert_eq!(screen.matches(question).count(), 1, "{screen}");
        assert!(!screen.contains(&secret), "{screen}");
        tmux.type_text("/quit");
        tmux.keys(&["Enter"]);
        assert!(
            tmux.wait_for("EXIT=").contains("EXIT=0"),
            "{}",
            tmux.screen()
        );
    }
}

/// `RENAME` of us, then a lost connection: the client reconnects as the
/// new nickname (and takes the `WELCOME` for it).
#[test]
fn a_rename_of_us_is_the_nickname_a_reconnect_logs_in_with() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::self_signed(&["localhost"], false);
    let seen = Seen::default();
    let log = seen.clone();
    let connections = Arc::new(AtomicUsize::new(0));
    let server = Hostile::start(&id, move |mut peer| {
        let log = log.clone();
        let n = connections.fetch_add(1, Ordering::SeqCst);
        async move {
            let nick = peer.login().await;
            log.push(format!("login {nick}"));
            if n == 0 {
                peer.send(&format!("RENAME {nick} Alicia")).await;
                peer.send(&format!("MSG #lobby Alicia renamed {WORLD}"))
                    .await;
                // Long enough for the client to read both lines.
                tokio::time::sleep(Duration::from_millis(300)).await;
                peer.close().await;
            } else {
                peer.until_quit().await;
            }
        }
    });
    let mut client = spawn(pinned_command(dir.path(), "alice", &id, &server, &[]));
    client.saw_out("* alice is now known as Alicia");
    let start = Instant::now();
    while seen.all().len() < 2 {
        assert!(
            start.elapsed() < WAIT,
            "{:?}\n{}",
            seen.all(),
            client.dump()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    client.close_stdin();
    client.assert_exit(0);
    assert_eq!(
        seen.all(),
        ["login alice", "login Alicia"],
        "{}",
        client.dump()
    );
    assert!(
        client.err().text().contains("connected to") && client.err().text().contains("as Alicia"),
        "{}",
        client.dump()
    );
}

/// Links a person could be handed, broken or hostile: each is a usage
/// error (exit 2) with a sanitized message that names what is wrong,
/// never a panic, never the whole argument echoed.
#[test]
fn hostile_links_on_the_command_line_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let fp = format!("SHA256:{}", "ab".repeat(32));
    let other = format!("SHA256:{}", "cd".repeat(32));
    let long = format!("tlschat://h.example:1/?fp={fp}&x={}", "a".repeat(2049));
    let link = format!("tlschat://h.example:1/?fp={fp}&code={CODE}");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![format!("tlschat://h.example:1/?fp=SHA256:zz")],
            "fingerprint",
        ),
        (
            vec![format!("tlschat://h.example:1/?fp={fp}&fp={fp}")],
            "twice",
        ),
        (vec![long.clone()], "longer than 2048"),
        (vec![format!("tlschat://тест.рф/?fp={fp}")], "xn--"),
        (
            vec![format!("TLSCHAT://h\u{1b}]0;PWNED\u{7}:1/?fp={fp}")],
            "bad host",
        ),
        (vec![format!("tlschat://h.example:0/?fp={fp}")], "port"),
        (
            vec![format!("tlschat://h.example:1/?code={CODE}")],
            "no fingerprint",
        ),
        (
            vec![format!("tlschat://h.example:1/?fp={fp}&code=short")],
            "invite code",
        ),
        (vec![format!("tlschat://[::1/?fp={fp}")], "bad host"),
        (
            vec!["--ca".into(), "ca.pem".into(), link.clone()],
            "--ca cannot be used with an invite link",
        ),
        (
            vec!["--fingerprint".into(), other.clone(), link.clone()],
            "is not the certificate the invite link names",
        ),
    ];
    for (args, needle) in &cases {
        let mut all = vec!["--nick", "alice"];
        all.extend(args.iter().map(String::as_str));
        let mut client = run_with(client_command(dir.path(), &all), "");
        client.assert_exit(2);
        assert_no_control_characters(&mut client);
        let err = client.err().text();
        assert!(
            err.contains(needle),
            "{args:?}: {needle}\n{}",
            client.dump()
        );
        assert!(!err.contains("panicked"), "{args:?}\n{}", client.dump());
        assert!(
            err.len() < 1500,
            "{args:?}: the argument echoed\n{}",
            client.dump()
        );
    }
    // The same fingerprint as the link's is no contradiction: the client
    // gets as far as connecting (nothing listens there: exit 1).
    let dead = format!("tlschat://127.0.0.1:9/?fp={fp}");
    let args = [
        "--nick",
        "alice",
        "--fingerprint",
        &fp,
        "--no-reconnect",
        &dead,
    ];
    let mut client = run_with(client_command(dir.path(), &args), "");
    client.assert_exit(1);
    assert!(!known_hosts(dir.path()).exists());
}
