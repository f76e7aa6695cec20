//! The abuse suite: what a hostile or broken client can throw at
//! the server, and the limits that hold it back. Real TLS over loopback,
//! against the in-process server (limits set explicitly per test: the
//! harness lifts the per-address cap and the rate limit by default) and,
//! where the environment variables, the config file, `check-config` and
//! SIGHUP are the subject, against the real binary.
//!
//! Every wait is bounded (`STEP` per line, a limit per test). Heavy or
//! timing-sensitive tests (slowloris, flood, lockout) run one at a time,
//! the others alongside each other. Tests that need many loopback source
//! addresses (127.0.0.x) are Linux-only; random inputs come from fixed
//! seeds, printed, so a failure reproduces.

use crate::{harness, LOAD};

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use harness::*;
use tlschat_server_core::config::Limits;

/// The exact plaintext refusal, from protocol.md.
const TLS_REQUIRED: &str =
    "ERROR tls-required this port speaks TLS: use tlschat, openssl s_client or ncat --ssl\n";

// ---- running tests ----------------------------------------------------------

/// Runs `test` on its own 2-thread runtime, bounded by `limit`, alongside
/// other light tests.
fn light<F: Future>(limit: Duration, test: F) -> F::Output {
    let _turn = LOAD.read().unwrap_or_else(|e| e.into_inner());
    run(limit, test)
}

/// Runs `test` with no other test of this binary running: it loads the
/// machine, or its timing must not be disturbed.
fn alone<F: Future>(limit: Duration, test: F) -> F::Output {
    let _turn = LOAD.write().unwrap_or_else(|e| e.into_inner());
    run(limit, test)
}

fn run<F: Future>(limit: Duration, test: F) -> F::Output {
    harness::run_bounded(limit, test)
}

/// Client and server side of every connection live in this process.
fn raise_open_files(at_least: u64) {
    #[cfg(unix)]
    {
        let limit = rlimit::increase_nofile_limit(8192).expect("raise RLIMIT_NOFILE");
        assert!(
            limit >= at_least,
            "open-files limit {limit} is below the {at_least} this test needs"
        );
    }
    #[cfg(not(unix))]
    let _ = at_least;
}

fn seeded(name: &str, seed: u64) -> StdRng {
    eprintln!("{name}: random seed {seed}");
    StdRng::seed_from_u64(seed)
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// The in-process server with the documented default limits (not the
/// harness's lifted ones), after `tweak`.
async fn server_with_defaults(tweak: impl FnOnce(&mut Limits)) -> TestServer {
    TestServer::start_with(|c| {
        c.limits = Limits::default();
        tweak(&mut c.limits);
    })
    .await
}

/// alice and bob in #lobby, with alice's `JOIN #lobby bob` consumed.
async fn alice_and_bob(s: &TestServer) -> (Client, Client) {
    let mut a = s.login("alice").await;
    let b = s.login("bob").await;
    a.expect("JOIN #lobby bob").await;
    (a, b)
}

/// alice and bob each say something and both see both lines.
async fn still_chatting(a: &mut Client, b: &mut Client, tag: &str) {
    a.send(&format!("a {tag}")).await;
    a.wait_for(&format!("MSG #lobby alice a {tag}")).await;
    b.wait_for(&format!("MSG #lobby alice a {tag}")).await;
    b.send(&format!("b {tag}")).await;
    b.wait_for(&format!("MSG #lobby bob b {tag}")).await;
    a.wait_for(&format!("MSG #lobby bob b {tag}")).await;
}

/// Reads a raw TCP stream until the server closes it (EOF or reset);
/// panics if it stays open longer than `limit`. Returns what arrived.
async fn read_until_closed(tcp: &mut TcpStream, limit: Duration, what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "{what}: the server did not close the connection within {limit:?} (got {} bytes)",
        got.len()
    );
    got
}

/// The line after `NICK` and `nick`: `WELCOME`, `ERROR …`, `BAN …`.
async fn answer_to_nick(c: &mut Client, nick: &str) -> String {
    c.expect("NICK").await;
    c.send(nick).await;
    c.recv().await
}

// ---- 1. slowloris ----------------------------------------------------------

/// Idle TCP connections that never start TLS.
const IDLE: usize = 2000;
/// Idle connections per source address (under the default cap of 16).
#[cfg(target_os = "linux")]
const IDLE_PER_ADDRESS: usize = 10;

/// Where idle connection `i` comes from: spread over 127.0.1.x on Linux
/// (so the default per-address cap applies unchanged), else 127.0.0.1.
fn idle_source(i: usize) -> IpAddr {
    #[cfg(target_os = "linux")]
    {
        let n = i / IDLE_PER_ADDRESS; // 0..200
        IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            1 + (n / 250) as u8,
            1 + (n % 250) as u8,
        ))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = i;
        loopback(1)
    }
}

/// How many source addresses [`idle_source`] spreads the idle
/// connections over.
fn idle_groups() -> usize {
    #[cfg(target_os = "linux")]
    return IDLE / IDLE_PER_ADDRESS;
    #[cfg(not(target_os = "linux"))]
    return 1;
}

async fn idle_connect(addr: SocketAddr, from: IpAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(from, 0))
        .unwrap_or_else(|e| panic!("bind to {from}: {e}"));
    tokio::time::timeout(STEP, socket.connect(addr))
        .await
        .expect("tcp connect within STEP")
        .expect("tcp connect")
}

#[test]
fn slowloris_2000_idle_connections_do_not_keep_real_clients_out() {
    raise_open_files(2 * IDLE as u64 + 200);
    alone(Duration::from_secs(60), async {
        let s = server_with_defaults(|l| {
            if !cfg!(target_os = "linux") {
                // All idle connections come from 127.0.0.1 here.
                l.max_per_address = 0;
            }
        })
        .await;
        let max_handshakes = Limits::default().max_handshakes;
        assert_eq!(max_handshakes, 1024, "the documented default");

        let started = Instant::now();
        let mut idle = Vec::with_capacity(IDLE);
        // One after another, so the server accepts them in this order.
        for i in 0..IDLE {
            idle.push(idle_connect(s.addr, idle_source(i)).await);
        }
        eprintln!("{IDLE} idle connections in {:?}", started.elapsed());

        // While they are open, two real clients log in and chat.
        let (mut a, mut b) = alice_and_bob(&s).await;
        for i in 0..5 {
            still_chatting(&mut a, &mut b, &i.to_string()).await;
        }
        eprintln!("real clients chatted after {:?}", started.elapsed());

        // Room was made by dropping, from the addresses holding the most
        // unfinished handshakes, their oldest: every address lost about as
        // many as the others, always its oldest first.
        let evicted = IDLE - max_handshakes;
        let closed = futures_util::future::join_all(idle.iter_mut().map(|tcp| async {
            let mut buf = [0u8; 64];
            match tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => true,
                Ok(Ok(n)) => panic!("an idle connection was sent {n} bytes"),
                Err(_) => false,
            }
        }))
        .await;
        let total = closed.iter().filter(|&&c| c).count();
        // The two logins evicted two more; leave some slack.
        assert!(
            (evicted..=evicted + 16).contains(&total),
            "{total} idle connections were closed; {evicted} had to make room"
        );
        let per_address: Vec<usize> = closed
            .chunks(IDLE / idle_groups())
            .enumerate()
            .map(|(g, chunk)| {
                let n = chunk.iter().filter(|&&c| c).count();
                assert!(
                    chunk.iter().take(n).all(|&c| c),
                    "address {g}: not its oldest connections were closed: {chunk:?}"
                );
                n
            })
            .collect();
        let (least, most) = (
            per_address.iter().min().copied().unwrap_or(0),
            per_address.iter().max().copied().unwrap_or(0),
        );
        assert!(
            most - least <= 2,
            "evictions were not shared evenly: {least} to {most} per address"
        );

        // Once they go, the server still accepts.
        drop(idle);
        let mut c = s.login("carol").await;
        a.wait_for("JOIN #lobby carol").await;
        c.send("made it").await;
        c.expect("MSG #lobby carol made it").await;
        still_chatting(&mut a, &mut b, "after").await;
        eprintln!("slowloris test done in {:?}", started.elapsed());
        s.stop().await;
    });
}

// ---- 2. random bytes instead of a ClientHello ----------------------------------

#[test]
fn random_bytes_instead_of_a_client_hello_are_closed_while_others_chat() {
    light(Duration::from_secs(40), async {
        let s =
            TestServer::start_with(|c| c.limits.handshake_timeout = Duration::from_secs(2)).await;
        let (mut a, mut b) = alice_and_bob(&s).await;
        let mut rng = seeded("random ClientHello", 0x5eed_0002);

        let mut cases = tokio::task::JoinSet::new();
        for i in 0..24 {
            let tls_like = i % 2 == 0;
            // Half close their write side (EOF for the server), half stay
            // silently open (the handshake deadline has to close those).
            let half_close = i % 4 < 2;
            let len = rng.random_range(1..=3000usize);
            let mut bytes = vec![0u8; len];
            rng.fill(&mut bytes[..]);
            if tls_like {
                bytes[0] = 0x16;
            } else {
                while bytes[0] == 0x16 {
                    bytes[0] = rng.random();
                }
            }
            let addr = s.addr;
            cases.spawn(async move {
                let what = format!("case {i} ({len} bytes, first {:#04x})", bytes[0]);
                let mut tcp = TcpStream::connect(addr).await.expect("tcp connect");
                // The server may close before reading everything.
                let _ = tcp.write_all(&bytes).await;
                if half_close {
                    let _ = tcp.shutdown().await;
                }
                let got = read_until_closed(&mut tcp, STEP, &what).await;
                if tls_like {
                    // Nothing but possibly a TLS alert record.
                    assert!(
                        got.is_empty() || got[0] == 0x15,
                        "{what}: unexpected answer {:?}",
                        String::from_utf8_lossy(&got)
                    );
                } else {
                    assert_eq!(String::from_utf8_lossy(&got), TLS_REQUIRED, "{what}");
                }
            });
        }
        let chat = async {
            let mut i = 0;
            while !cases.is_empty() {
                still_chatting(&mut a, &mut b, &format!("during {i}")).await;
                i += 1;
                while let Some(done) = cases.try_join_next() {
                    done.expect("case task");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        chat.await;
        still_chatting(&mut a, &mut b, "after").await;
        let _c = s.login("carol").await;
        s.stop().await;
    });
}

// ---- 3. TLS, then garbage --------------------------------------------------------

/// A TLS record header and the start of a ClientHello (TLS 1.2, 512-byte
/// record), then `len - 11` random bytes.
fn client_hello_prefix_then_garbage(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut bytes = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, // handshake record, 512 bytes
        0x01, 0x00, 0x01, 0xfc, // ClientHello, 508 bytes
        0x03, 0x03, // client_version TLS 1.2
    ];
    let mut rest = vec![0u8; len.saturating_sub(bytes.len())];
    rng.fill(&mut rest[..]);
    bytes.extend_from_slice(&rest);
    bytes
}

#[test]
fn client_hello_prefix_then_garbage_is_closed() {
    light(Duration::from_secs(40), async {
        let s =
            TestServer::start_with(|c| c.limits.handshake_timeout = Duration::from_secs(2)).await;
        let (mut a, mut b) = alice_and_bob(&s).await;
        let mut rng = seeded("ClientHello then garbage", 0x5eed_0003);
        // (bytes sent, half close): a whole garbage record and more; a
        // record cut short and left open (the deadline closes it); the same
        // half-closed (EOF mid-record).
        let cases = [
            (client_hello_prefix_then_garbage(&mut rng, 3000), false),
            (client_hello_prefix_then_garbage(&mut rng, 517), false),
            (client_hello_prefix_then_garbage(&mut rng, 100), false),
            (client_hello_prefix_then_garbage(&mut rng, 100), true),
        ];
        let started = Instant::now();
        let runs = cases
            .into_iter()
            .enumerate()
            .map(|(i, (bytes, half_close))| {
                let addr = s.addr;
                async move {
                    let what = format!("case {i} ({} bytes)", bytes.len());
                    let mut tcp = TcpStream::connect(addr).await.expect("tcp connect");
                    let _ = tcp.write_all(&bytes).await;
                    if half_close {
                        let _ = tcp.shutdown().await;
                    }
                    let got = read_until_closed(&mut tcp, STEP, &what).await;
                    assert!(
                        got.is_empty() || got[0] == 0x15,
                        "{what}: unexpected answer {got:?}"
                    );
                }
            });
        tokio::join!(futures_util::future::join_all(runs), async {
            still_chatting(&mut a, &mut b, "during").await
        });
        eprintln!("all closed after {:?}", started.elapsed());
        still_chatting(&mut a, &mut b, "after").await;
        s.stop().await;
    });
}

/// Logs in as `nick` on a bare TLS stream; returns the stream.
async fn bare_login(s: &TestServer, nick: &str) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut tls = tls_stream(s.addr, &s.cert, None).await;
    let mut lines = Lines::new(&mut tls);
    lines.expect("NICK").await;
    lines
        .get_mut()
        .write_all(format!("{nick}\n").as_bytes())
        .await
        .unwrap();
    lines.get_mut().flush().await.unwrap();
    lines.expect(&format!("WELCOME {nick} #lobby")).await;
    lines.expect(&format!("JOIN #lobby {nick}")).await;
    let users = lines.next().await.unwrap();
    assert!(users.starts_with("USERS #lobby "), "{users}");
    tls
}

#[test]
fn garbage_under_an_established_tls_session_closes_only_that_connection() {
    light(Duration::from_secs(40), async {
        let s = TestServer::start().await;
        let (mut a, mut b) = alice_and_bob(&s).await;
        let mut rng = seeded("garbage under TLS", 0x5eed_0033);

        // 1: half a line over TLS, then a well-formed application-data
        // record whose contents are random (it cannot authenticate).
        let mut m1 = bare_login(&s, "mallory1").await;
        a.expect("JOIN #lobby mallory1").await;
        b.expect("JOIN #lobby mallory1").await;
        m1.write_all(b"half a li").await.unwrap();
        m1.flush().await.unwrap();
        let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
        let mut body = [0u8; 0x40];
        rng.fill(&mut body[..]);
        record.extend_from_slice(&body);
        m1.get_mut().0.write_all(&record).await.unwrap();

        // 2: 20,000 random bytes: whatever the first "header" says, it is
        // either invalid or followed by enough bytes to fail decryption.
        let mut m2 = bare_login(&s, "mallory2").await;
        let mut garbage = vec![0u8; 20_000];
        rng.fill(&mut garbage[..]);
        // The server may reset the connection before taking all of it.
        let _ = m2.get_mut().0.write_all(&garbage).await;

        let mut parts = Vec::new();
        for _ in 0..2 {
            let line = a.wait_for("PART ").await;
            parts.push(line);
        }
        parts.sort();
        assert_eq!(
            parts,
            [
                "PART #lobby mallory1 disconnected",
                "PART #lobby mallory2 disconnected"
            ]
        );
        for (name, mut tls) in [("mallory1", m1), ("mallory2", m2)] {
            let _ = read_until_closed(tls.get_mut().0, STEP, name).await;
        }
        // Nothing of theirs (the half line) reached anyone; the others go on.
        b.wait_for("PART #lobby mallory2").await;
        a.expect_quiet("a").await;
        still_chatting(&mut a, &mut b, "after").await;
        a.expect_quiet("a2").await;
        b.expect_quiet("b2").await;
        s.stop().await;
    });
}

// ---- 4. half-closed sockets ----------------------------------------------------------

#[test]
fn a_logged_in_client_that_half_closes_is_disconnected() {
    light(Duration::from_secs(40), async {
        let s = TestServer::start().await;
        let (mut a, mut b) = alice_and_bob(&s).await;
        let mut c = s.login("carol").await;
        a.expect("JOIN #lobby carol").await;
        b.expect("JOIN #lobby carol").await;

        // A last line without its newline, then close_notify + FIN; carol
        // keeps reading. The line still counts (protocol: nothing the peer
        // sent is lost), then she is gone.
        c.send_raw(b"bye").await;
        c.shutdown_write().await;
        for x in [&mut a, &mut b] {
            x.expect("MSG #lobby carol bye").await;
            x.expect("PART #lobby carol disconnected").await;
        }
        let rest = c.expect_closed().await;
        assert_eq!(rest, ["MSG #lobby carol bye"], "carol after half-closing");

        // carol may come back at once: her nickname is free.
        let _c = s.login("carol").await;
        a.expect("JOIN #lobby carol").await;
        still_chatting(&mut a, &mut b, "after").await;
        s.stop().await;
    });
}

#[test]
fn half_closed_raw_and_handshaking_connections_are_closed_without_wedging() {
    light(Duration::from_secs(40), async {
        let s = TestServer::start().await;
        let (mut a, mut b) = alice_and_bob(&s).await;
        let mut rng = seeded("half-closed", 0x5eed_0004);

        // 100 raw TCP clients that connect and at once shut their write half.
        let addr = s.addr;
        let raw = (0..100).map(|i| async move {
            let mut tcp = TcpStream::connect(addr).await.expect("tcp connect");
            tcp.shutdown().await.expect("shutdown(Write)");
            let got = read_until_closed(&mut tcp, STEP, &format!("raw {i}")).await;
            assert!(got.is_empty(), "raw {i} got {got:?}");
        });
        // Half a ClientHello, then FIN.
        let partial = client_hello_prefix_then_garbage(&mut rng, 60);
        let partial = async {
            let mut tcp = TcpStream::connect(s.addr).await.expect("tcp connect");
            tcp.write_all(&partial).await.unwrap();
            tcp.shutdown().await.unwrap();
            let got = read_until_closed(&mut tcp, STEP, "partial ClientHello").await;
            assert!(got.is_empty() || got[0] == 0x15, "{got:?}");
        };
        // TLS done, then close_notify + FIN before answering NICK, and
        // after half a nickname.
        let before_nick = async {
            let mut c = s.connect().await;
            c.shutdown_write().await;
            // NICK may or may not have been sent before the server saw EOF.
            let rest = c.expect_closed().await;
            assert!(rest.iter().all(|l| l == "NICK"), "{rest:?}");
        };
        // A nickname without its newline, then EOF: the last partial line
        // counts (protocol: nothing the peer sent is lost), so dav logs in
        // and is disconnected at once.
        let mid_nick = async {
            let mut c = s.connect().await;
            c.expect("NICK").await;
            c.send_raw(b"dav").await;
            c.shutdown_write().await;
            let rest = c.expect_closed().await;
            assert!(
                rest.is_empty() || rest[0] == "WELCOME dav #lobby",
                "{rest:?}"
            );
        };
        tokio::join!(
            futures_util::future::join_all(raw),
            partial,
            before_nick,
            mid_nick
        );

        // dav came and went; everyone else goes on.
        a.expect("JOIN #lobby dav").await;
        a.expect("PART #lobby dav disconnected").await;
        a.expect_quiet("a").await;
        still_chatting(&mut a, &mut b, "after").await;
        let _d = s.login("dave").await;
        a.expect("JOIN #lobby dave").await;
        s.stop().await;
    });
}

// ---- 5. hostile nicknames and text ------------------------------------------------

/// Each of `bad` (raw bytes, one line each) is answered with an `ERROR` of
/// the given code and `NICK` again; then `good` gets in. At most four bad
/// ones per connection (five tries close it).
async fn bad_nicks_then(s: &TestServer, bad: &[(&[u8], &str)], good: &str) -> Client {
    assert!(bad.len() < 5);
    let mut c = s.connect().await;
    c.expect("NICK").await;
    for (bytes, code) in bad {
        let mut line = bytes.to_vec();
        line.push(b'\n');
        c.send_raw(&line).await;
        let got = c.recv().await;
        assert!(
            got.starts_with(&format!("ERROR {code} ")),
            "nickname {:?}: expected ERROR {code}, got {got:?}",
            String::from_utf8_lossy(bytes)
        );
        c.expect("NICK").await;
    }
    c.send(good).await;
    c.expect(&format!("WELCOME {good} #lobby")).await;
    c.expect(&format!("JOIN #lobby {good}")).await;
    c.expect_prefix("USERS #lobby").await;
    c
}

#[test]
fn control_characters_bidi_and_overlong_utf8_in_nicknames_are_refused() {
    light(Duration::from_secs(40), async {
        let s = TestServer::start().await;
        let mut w = s.login("watcher").await;

        let bad1: &[(&[u8], &str)] = &[
            (b"ali\0ce", "nick-invalid"),
            (b"\x1b[31mred", "nick-invalid"),
            ("ev\u{202e}il".as_bytes(), "nick-invalid"),
            (b"\xC0\xAF", "invalid-utf8"),
        ];
        let bad2: &[(&[u8], &str)] = &[
            (b"ab\xE0\x80\xAFcd", "invalid-utf8"),
            (b"ali\rce", "nick-invalid"),
            ("\u{85}nel".as_bytes(), "nick-invalid"),
            (b"del\x7f", "nick-invalid"),
        ];
        let bad3: &[(&[u8], &str)] = &[
            (b"tab\tnick", "nick-invalid"),
            (b"\xED\xA0\x80surrogate", "invalid-utf8"),
            ("\u{200f}rlm".as_bytes(), "nick-invalid"),
            (b"\x1b]0;title\x07", "nick-invalid"),
        ];
        let _x = bad_nicks_then(&s, bad1, "x1").await;
        w.expect("JOIN #lobby x1").await;
        let _y = bad_nicks_then(&s, bad2, "x2").await;
        w.expect("JOIN #lobby x2").await;
        let _z = bad_nicks_then(&s, bad3, "x3").await;
        w.expect("JOIN #lobby x3").await;

        // A newline ends the nickname: `alice\nbob` is two lines, the
        // nickname alice and then her first message.
        let mut c = s.connect().await;
        c.expect("NICK").await;
        c.send_raw(b"alice\nbob\n").await;
        c.expect("WELCOME alice #lobby").await;
        c.expect("JOIN #lobby alice").await;
        c.expect_prefix("USERS #lobby").await;
        c.expect("MSG #lobby alice bob").await;
        w.expect("JOIN #lobby alice").await;
        w.expect("MSG #lobby alice bob").await;
        // Nothing else reached the watcher.
        w.expect_quiet("w").await;
        s.stop().await;
    });
}

#[test]
fn control_characters_and_overlong_utf8_in_text_reach_nobody_but_bidi_is_text() {
    light(Duration::from_secs(40), async {
        let s = TestServer::start().await;
        let (mut a, mut w) = alice_and_bob(&s).await;

        // (raw line without its \n, the code alice must get)
        let rejected: &[(&[u8], &str)] = &[
            (b"nul\0here", "bad-text"),
            (b"\x1b[2J\x1b[31mred", "bad-text"),
            (b"\x1b]0;pwned\x07", "bad-text"),
            (b"bell\x07", "bad-text"),
            (b"carriage\rreturn", "bad-text"),
            (b"del\x7f", "bad-text"),
            ("c1 \u{9b}31m".as_bytes(), "bad-text"),
            ("nel \u{85}".as_bytes(), "bad-text"),
            (b"/msg bob hi\x1b[31m", "bad-text"),
            (b"/me \0", "bad-text"),
            (b"/join #a\x1b", "bad-text"),
            (b"/quit \x1b[2J", "bad-text"),
            (b"\xC0\xAF", "invalid-utf8"),
            (b"x\xE0\x80\xAFy", "invalid-utf8"),
            (b"\xED\xA0\x80", "invalid-utf8"),
            (b"\xF4\x90\x80\x80", "invalid-utf8"),
            (b"\xFF\xFE", "invalid-utf8"),
        ];
        for (bytes, code) in rejected {
            let mut line = bytes.to_vec();
            line.push(b'\n');
            a.send_raw(&line).await;
            let got = a.recv().await;
            assert!(
                got.starts_with(&format!("ERROR {code} ")),
                "{:?}: expected ERROR {code}, got {got:?}",
                String::from_utf8_lossy(bytes)
            );
            assert!(!got.chars().any(|c| c.is_control()), "{got:?}");
        }
        // alice is still connected, and bob saw none of it.
        a.expect_quiet("a").await;
        w.expect_quiet("w").await;

        // Each line is a line: one write with a newline inside is two messages.
        a.send_raw(b"hello\nworld\n").await;
        // A bidi override, a right-to-left mark and a TAB are text: delivered as is.
        let bidi = "abc \u{202e}gnp.exe\u{202c} \u{200f}x\ty";
        a.send(bidi).await;
        a.send(&format!("/me {bidi}")).await;
        a.send(&format!("/msg bob {bidi}")).await;
        // CRLF is a line ending.
        a.send_raw(b"crlf\r\n").await;
        let expected = [
            "MSG #lobby alice hello".to_owned(),
            "MSG #lobby alice world".to_owned(),
            format!("MSG #lobby alice {bidi}"),
            format!("ACTION #lobby alice {bidi}"),
            format!("PRIVMSG alice bob {bidi}"),
            "MSG #lobby alice crlf".to_owned(),
        ];
        for line in &expected {
            w.expect(line).await;
            a.expect(line).await;
        }
        a.expect_quiet("a2").await;
        w.expect_quiet("w2").await;
        s.stop().await;
    });
}

// ---- 6. flood -------------------------------------------------------------------

/// Lines the flooder tries to send.
const FLOOD: usize = 2000;
/// Lines each of the two others sends, paced under the limit.
const PACED: usize = 50;
/// 8 lines/s, under the default 10.
const PACE: Duration = Duration::from_millis(125);

#[test]
fn a_flood_from_one_client_costs_the_others_nothing() {
    alone(Duration::from_secs(40), async {
        let s = server_with_defaults(|_| {}).await;
        let defaults = Limits::default();
        assert_eq!((defaults.rate_limit, defaults.rate_burst), (10, 20));
        let (mut a, mut b) = alice_and_bob(&s).await;

        let tls = bare_login(&s, "flooder").await;
        a.expect("JOIN #lobby flooder").await;
        b.expect("JOIN #lobby flooder").await;
        let (r, mut w) = tokio::io::split(tls);
        let flood_reader = tokio::spawn(async move { Lines::new(r).rest().await });
        let started = Instant::now();
        let flood = async move {
            let mut sent = 0;
            for i in 0..FLOOD {
                if w.write_all(format!("flood {i}\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
                sent += 1;
            }
            let _ = w.flush().await;
            (sent, w)
        };

        let paced = |mut c: Client, name: &'static str| async move {
            let mut tick = tokio::time::interval(PACE);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for i in 0..PACED {
                tick.tick().await;
                c.send(&format!("{name} {i}")).await;
            }
            c
        };
        let ((sent, _w), a2, b2) = tokio::join!(flood, paced(a, "alice"), paced(b, "bob"));
        let (mut a, mut b) = (a2, b2);
        eprintln!(
            "flooder wrote {sent} lines; paced senders done after {:?}",
            started.elapsed()
        );

        // The flooder was told, then cut off.
        let flooder_got = flood_reader.await.expect("flood reader");
        let limited = flooder_got
            .iter()
            .filter(|l| l.starts_with("ERROR rate-limited line dropped"))
            .count();
        assert!(limited > 0, "no rate-limited error: {flooder_got:#?}");
        assert_eq!(
            flooder_got.last().map(String::as_str),
            Some("ERROR rate-limited flooding: disconnected"),
            "the flooder's last line"
        );
        eprintln!("flooder got {limited} rate-limited errors before the disconnect");

        // alice and bob got every line of each other, in order, and no error.
        for (me, c) in [("alice", &mut a), ("bob", &mut b)] {
            let mut from_alice = Vec::new();
            let mut from_bob = Vec::new();
            let mut flooder_msgs = 0;
            let mut parted = false;
            while from_alice.len() < PACED || from_bob.len() < PACED || !parted {
                let line = c.recv().await;
                if let Some(text) = line.strip_prefix("MSG #lobby alice ") {
                    from_alice.push(text.to_owned());
                } else if let Some(text) = line.strip_prefix("MSG #lobby bob ") {
                    from_bob.push(text.to_owned());
                } else if line.starts_with("MSG #lobby flooder ") {
                    assert!(!parted, "{me}: flooder line after its PART");
                    flooder_msgs += 1;
                } else if line == "PART #lobby flooder disconnected" {
                    parted = true;
                } else {
                    panic!("{me} got an unexpected line {line:?}");
                }
            }
            let want = |n: &str| (0..PACED).map(|i| format!("{n} {i}")).collect::<Vec<_>>();
            assert_eq!(from_alice, want("alice"), "{me}: alice's lines");
            assert_eq!(from_bob, want("bob"), "{me}: bob's lines");
            // The burst and what trickled in at 10/s before the disconnect.
            assert!(
                (20..=50).contains(&flooder_msgs),
                "{me} saw {flooder_msgs} flooder lines"
            );
            c.expect_quiet(me).await;
        }
        s.stop().await;
    });
}

// ---- 7. password guessing ----------------------------------------------------------

#[derive(Debug)]
enum Attempt {
    Welcome,
    Refused,
    /// `ERROR rate-limited <seconds> …` instead of `PASS`.
    Locked(u64),
}

/// One admin login attempt from `from` (127.0.0.1 if `None`); the
/// connection is closed before this returns unless it was welcomed.
async fn admin_attempt(s: &TestServer, from: Option<IpAddr>, password: &str) -> Attempt {
    let mut c = match from {
        Some(ip) => connect_tls_from(s.addr, &s.cert, ip).await,
        None => s.connect().await,
    };
    let first = answer_to_nick(&mut c, "admin").await;
    if let Some(rest) = first.strip_prefix("ERROR rate-limited ") {
        let secs = rest
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no seconds in {first:?}"));
        let after = c.expect_closed().await;
        assert!(after.is_empty(), "lines after the lockout: {after:?}");
        return Attempt::Locked(secs);
    }
    assert_eq!(first, "PASS");
    c.send(password).await;
    let answer = c.recv().await;
    if answer == "WELCOME admin #lobby" {
        return Attempt::Welcome;
    }
    assert!(answer.starts_with("REFUSE "), "{answer}");
    assert!(c.expect_closed().await.is_empty());
    Attempt::Refused
}

/// Five wrong passwords in a row, each refused; returns when the fifth was.
async fn five_wrong(s: &TestServer) -> Instant {
    for i in 0..5 {
        let got = admin_attempt(s, None, &format!("guess {i}")).await;
        assert!(
            matches!(got, Attempt::Refused),
            "wrong password {i}: {got:?}"
        );
    }
    Instant::now()
}

const LOCKOUT: Duration = Duration::from_secs(1);

#[test]
fn twenty_wrong_passwords_lock_the_address_out_for_a_growing_time() {
    alone(Duration::from_secs(40), async {
        // 17 attempts at once from 127.0.0.1: the per-address cap is not
        // the subject here.
        let server = server_with_defaults(|l| {
            l.lockout_time = LOCKOUT;
            l.max_per_address = 0;
        })
        .await;
        assert_eq!(Limits::default().lockout_after, 5);

        // 1-5: refused and counted. The fifth starts a 1 s lockout.
        let s = &server;
        let locked_at = five_wrong(s).await;
        // 6-20, and the right password, from the same address: no PASS at
        // all; a correct password from another address is unaffected.
        let same = (5..20)
            .map(|i| format!("guess {i}"))
            .chain([ADMIN_PASSWORD.to_owned()]);
        let same = futures_util::future::join_all(
            same.map(|pw| async move { (admin_attempt(s, None, &pw).await, pw) }),
        );
        #[cfg(target_os = "linux")]
        let other = admin_attempt(s, Some(loopback(2)), ADMIN_PASSWORD);
        #[cfg(not(target_os = "linux"))]
        let other = async { Attempt::Welcome };
        let (same, other) = tokio::join!(same, other);
        let took = locked_at.elapsed();
        for (got, pw) in same {
            assert!(
                matches!(got, Attempt::Locked(1)),
                "attempt with {pw:?} during the lockout: {got:?} ({took:?} after it began)"
            );
        }
        assert!(matches!(other, Attempt::Welcome), "127.0.0.2: {other:?}");
        assert!(took < LOCKOUT, "the attempts took {took:?}: inconclusive");

        // It expires; five more wrong ones lock out for twice as long.
        tokio::time::sleep_until((locked_at + LOCKOUT + Duration::from_millis(100)).into()).await;
        let locked_again = five_wrong(s).await;
        let got = admin_attempt(s, None, ADMIN_PASSWORD).await;
        assert!(
            matches!(got, Attempt::Locked(1..=2)),
            "right after the second lockout began: {got:?}"
        );
        tokio::time::sleep_until((locked_again + Duration::from_millis(1300)).into()).await;
        let got = admin_attempt(s, None, ADMIN_PASSWORD).await;
        assert!(
            matches!(got, Attempt::Locked(_)),
            "1.3 s into the second lockout (2 s): {got:?}"
        );
        tokio::time::sleep_until((locked_again + 2 * LOCKOUT + Duration::from_millis(100)).into())
            .await;
        let got = admin_attempt(s, None, ADMIN_PASSWORD).await;
        assert!(
            matches!(got, Attempt::Welcome),
            "after the second lockout: {got:?}"
        );
        // A right password clears nothing (otherwise anyone holding a
        // secret of their own could reset the count between guesses at
        // another's): the next lockout is the third, 4 s, not a first one.
        five_wrong(s).await;
        let got = admin_attempt(s, None, ADMIN_PASSWORD).await;
        assert!(
            matches!(got, Attempt::Locked(3..=4)),
            "a lockout after a right password: {got:?}"
        );
        server.stop().await;
    });
}

/// A connection that got `PASS` before the lockout began does not get its
/// guess checked once the lockout is on: otherwise many connections opened
/// at once would each get one, whatever the limit.
#[test]
fn a_lockout_also_stops_connections_prompted_before_it() {
    alone(Duration::from_secs(40), async {
        let s = server_with_defaults(|l| {
            l.lockout_time = Duration::from_secs(30);
            l.max_per_address = 0;
        })
        .await;
        let mut early = s.connect().await;
        assert_eq!(answer_to_nick(&mut early, "admin").await, "PASS");
        five_wrong(&s).await;
        // Even the right password: the address is locked out now.
        early.send(ADMIN_PASSWORD).await;
        early.expect_prefix("ERROR rate-limited ").await;
        assert!(early.expect_closed().await.is_empty());
        s.stop().await;
    });
}

#[test]
fn lockout_after_0_never_locks_out() {
    light(Duration::from_secs(30), async {
        let s = server_with_defaults(|l| {
            l.lockout_after = 0;
            l.max_per_address = 0;
        })
        .await;
        for i in 0..8 {
            let got = admin_attempt(&s, None, &format!("guess {i}")).await;
            assert!(
                matches!(got, Attempt::Refused),
                "wrong password {i}: {got:?}"
            );
        }
        let got = admin_attempt(&s, None, ADMIN_PASSWORD).await;
        assert!(matches!(got, Attempt::Welcome), "{got:?}");
        s.stop().await;
    });
}

/// `ERROR rate-limited <seconds>` tells the client when it may try again:
/// with 2.9 s of a 3 s lockout left that is 3, not 2 (a client that waits
/// 2 s is locked out again).
#[test]
fn lockout_seconds_are_rounded_up() {
    light(Duration::from_secs(30), async {
        let s = server_with_defaults(|l| l.lockout_time = Duration::from_secs(3)).await;
        five_wrong(&s).await;
        let got = admin_attempt(&s, None, ADMIN_PASSWORD).await;
        assert!(
            matches!(got, Attempt::Locked(3)),
            "just after a 3 s lockout began: {got:?} (expected 3)"
        );
        s.stop().await;
    });
}

// ---- 8. per-address cap ----------------------------------------------------------

#[test]
fn the_fourth_connection_from_one_address_is_refused_naming_the_cap() {
    light(Duration::from_secs(40), async {
        let s = server_with_defaults(|l| l.max_per_address = 3).await;
        let mut c1 = s.login("one").await;
        let _c2 = s.login("two").await;
        let mut c3 = s.login("three").await;

        let mut c4 = s.connect().await;
        let refusal = c4.recv().await;
        assert!(
            refusal.starts_with("ERROR server-full ") && refusal.contains("(3 at most)"),
            "{refusal}"
        );
        assert!(c4.expect_closed().await.is_empty());
        drop(c4);

        // Another address is not affected.
        #[cfg(target_os = "linux")]
        {
            let mut other = connect_tls_from(s.addr, &s.cert, loopback(2)).await;
            other.finish_login("other").await;
            c1.wait_for("JOIN #lobby other").await;
        }

        // Once one of the three leaves, a new one gets in.
        c3.send("/quit").await;
        c3.expect_closed().await;
        drop(c3);
        let deadline = Instant::now() + STEP;
        let mut c = loop {
            let mut c = s.connect().await;
            let first = c.recv().await;
            if first == "NICK" {
                break c;
            }
            assert!(first.starts_with("ERROR server-full "), "{first}");
            c.expect_closed().await;
            assert!(Instant::now() < deadline, "the slot never came back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        c.send("four").await;
        c.expect("WELCOME four #lobby").await;
        c1.wait_for("JOIN #lobby four").await;
        s.stop().await;
    });
}

// ---- 9, 10. the real binary, limits from the environment ----------------------------

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// `run --listen 127.0.0.1:0 --data-dir DIR` with exactly `env` for limits.
fn server_with_env(dir: &Path, env: &[(&str, &str)]) -> ServerProcess {
    let mut cmd = server_bin_clean();
    cmd.args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    ServerProcess::spawn(cmd)
}

#[test]
fn max_clients_from_the_environment_makes_the_third_server_full() {
    let dir = tempdir();
    let s = server_with_env(
        dir.path(),
        &[
            ("TLSCHAT_MAX_CLIENTS", "2"),
            ("TLSCHAT_MAX_PER_ADDRESS", "0"),
        ],
    );
    light(Duration::from_secs(40), async {
        let mut a = s.login("alice").await;
        let _b = s.login("bob").await;
        a.expect("JOIN #lobby bob").await;
        let mut c = s.connect().await;
        let refusal = c.recv().await;
        assert!(
            refusal.starts_with("ERROR server-full ") && refusal.contains("limit of 2 clients"),
            "{refusal}"
        );
        assert!(c.expect_closed().await.is_empty());
        a.send("still here").await;
        a.expect("MSG #lobby alice still here").await;
    });
}

#[test]
fn rate_limit_zero_from_the_environment_lets_a_200_line_burst_through() {
    let dir = tempdir();
    let s = server_with_env(
        dir.path(),
        &[
            ("TLSCHAT_RATE_LIMIT", "0"),
            ("TLSCHAT_ADDRESS_RATE_LIMIT", "0"),
        ],
    );
    light(Duration::from_secs(40), async {
        let mut a = s.login("alice").await;
        let mut burst = String::new();
        for i in 0..200 {
            burst.push_str(&format!("line {i}\n"));
        }
        a.send_raw(burst.as_bytes()).await;
        for i in 0..200 {
            a.expect(&format!("MSG #lobby alice line {i}")).await;
        }
        a.expect_quiet("a").await;
    });
}

#[test]
fn rate_limit_and_burst_from_the_environment_limit_the_third_fast_line() {
    let dir = tempdir();
    let s = server_with_env(
        dir.path(),
        &[("TLSCHAT_RATE_LIMIT", "2"), ("TLSCHAT_RATE_BURST", "2")],
    );
    light(Duration::from_secs(40), async {
        let mut a = s.login("alice").await;
        a.send_raw(b"one\ntwo\nthree\n").await;
        a.expect("MSG #lobby alice one").await;
        a.expect("MSG #lobby alice two").await;
        let limited = a.recv().await;
        assert!(
            limited.starts_with("ERROR rate-limited ") && limited.contains("at most 2 lines"),
            "{limited}"
        );
        // Not disconnected: after a second there are tokens again.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        a.send("four").await;
        a.expect("MSG #lobby alice four").await;
    });
}

#[test]
fn idle_timeout_from_the_environment_closes_a_silent_client() {
    let dir = tempdir();
    let s = server_with_env(
        dir.path(),
        &[
            ("TLSCHAT_IDLE_TIMEOUT", "1"),
            ("TLSCHAT_MAX_PER_ADDRESS", "0"),
        ],
    );
    light(Duration::from_secs(40), async {
        let mut b = s.login("bob").await;
        let started = Instant::now();
        let mut a = s.login("alice").await;
        b.expect("JOIN #lobby alice").await;
        let silent = async {
            let line = a.recv().await;
            let after = started.elapsed();
            assert_eq!(line, "ERROR timeout no line for 1 s: disconnected");
            assert!(after >= Duration::from_millis(900), "after {after:?}");
            assert!(a.expect_closed().await.is_empty());
        };
        // bob pings every 300 ms and is never timed out.
        let chatty = async {
            let mut parted = false;
            for i in 0..10 {
                b.send(&format!("/ping {i}")).await;
                loop {
                    let line = b.recv().await;
                    if line == format!("PONG {i}") {
                        break;
                    }
                    assert_eq!(line, "PART #lobby alice disconnected");
                    parted = true;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            assert!(parted, "bob did not see alice go");
        };
        tokio::join!(silent, chatty);
    });
}

// ---- accept loop: out of file descriptors ----------------------------------------

/// The real binary with an open-files limit of 64: 100 connections run it
/// out of descriptors (EMFILE on accept); it logs, backs off, and serves
/// again once they are gone.
#[cfg(unix)]
#[test]
fn running_out_of_file_descriptors_does_not_stop_the_accept_loop() {
    let dir = tempdir();
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "ulimit -n 64 && exec \"$0\" \"$@\"", BIN])
        .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("TLSCHAT_MAX_PER_ADDRESS", "0");
    for var in [
        "TLSCHAT_ADMIN_PASSWORD",
        "TLSCHAT_DATA_DIR",
        "TLSCHAT_CONFIG",
        "RUST_LOG",
    ]
    .into_iter()
    .chain(
        SETTING_ENV
            .into_iter()
            .filter(|v| *v != "TLSCHAT_MAX_PER_ADDRESS"),
    ) {
        cmd.env_remove(var);
    }
    let mut s = ServerProcess::spawn(cmd);
    light(Duration::from_secs(40), async {
        let mut a = s.login("alice").await;
        let mut raw = Vec::new();
        for _ in 0..100 {
            raw.push(TcpStream::connect(s.addr).await.expect("tcp connect"));
        }
        let hit = s.wait_stderr("accept failed", STEP);
        assert!(
            hit.is_some(),
            "no EMFILE with 100 connections: {}",
            s.stderr()
        );
        // alice, logged in before, is still served.
        a.sync("a").await;
        drop(raw);
        // New clients get in again (after the back-off, at most 1 s).
        let mut b = s.login("bob").await;
        a.expect("JOIN #lobby bob").await;
        b.send("in").await;
        a.expect("MSG #lobby bob in").await;
    });
    assert!(
        s.has_exited().is_none(),
        "the server exited: {}",
        s.stderr()
    );
}

// ---- 11. config file, check-config, SIGHUP ----------------------------------------------

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn parse_toml(text: &str) -> toml::Table {
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("check-config printed invalid TOML ({e}):\n{text}"))
}

fn limit(table: &toml::Table, key: &str) -> i64 {
    table["limits"][key]
        .as_integer()
        .unwrap_or_else(|| panic!("no integer limits.{key} in {table:#?}"))
}

#[test]
fn check_config_prints_the_files_values_and_round_trips() {
    let dir = tempdir();
    let file = dir.path().join("my.toml");
    write(
        &file,
        "listen = \"127.0.0.1:7000\"\nsan = [\"chat.example.org\"]\n\
         [limits]\nmax_clients = 9\nmax_per_address = 0\nrate_limit = 3\n\
         idle_timeout = 300\nlockout_time = 7\n",
    );
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let out = run_once_clean(
        &[
            "check-config",
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            data,
        ],
        &[],
        "",
    );
    out.assert_success();
    let t = parse_toml(&out.stdout);
    assert_eq!(t["listen"].as_str(), Some("127.0.0.1:7000"));
    assert_eq!(t["san"][0].as_str(), Some("chat.example.org"));
    assert_eq!(limit(&t, "max_clients"), 9);
    assert_eq!(limit(&t, "max_per_address"), 0, "0 is a value (off)");
    assert_eq!(limit(&t, "rate_limit"), 3);
    assert_eq!(limit(&t, "idle_timeout"), 300);
    assert_eq!(limit(&t, "lockout_time"), 7);
    // The rest are the documented defaults.
    assert_eq!(limit(&t, "rate_burst"), 20);
    assert_eq!(limit(&t, "max_handshakes"), 1024);
    assert_eq!(limit(&t, "lockout_after"), 5);

    // What it prints is itself a valid config file with the same effect.
    let again = dir.path().join("again.toml");
    write(&again, &out.stdout);
    let out2 = run_once_clean(
        &[
            "check-config",
            "--config",
            again.to_str().unwrap(),
            "--data-dir",
            data,
        ],
        &[],
        "",
    );
    out2.assert_success();
    assert_eq!(out2.stdout, out.stdout);
}

#[test]
fn check_config_names_an_unknown_key_and_exits_2() {
    let dir = tempdir();
    let data = dir.path().join("data");
    for (text, key) in [
        ("[limits]\nmax_client = 3\n", "max_client"),
        ("listen_port = 3\n", "listen_port"),
        ("[limit]\nrate_limit = 3\n", "limit"),
    ] {
        let file = dir.path().join("bad.toml");
        write(&file, text);
        let out = run_once_clean(
            &[
                "check-config",
                "--config",
                file.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
            ],
            &[],
            "",
        );
        out.assert_code(2);
        assert!(out.stdout.is_empty(), "{out:#?}");
        assert!(
            out.stderr.contains(&format!("unknown field `{key}`")),
            "stderr does not name {key}: {out:#?}"
        );
    }
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let dir = tempdir();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // The default config file in the data directory.
    write(
        &data.join("tlschat.toml"),
        "listen = \"127.0.0.1:7001\"\n[limits]\nrate_limit = 5\nmax_clients = 50\n",
    );
    let data = data.to_str().unwrap();
    let check_in = |data: &str, flags: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["check-config", "--data-dir", data];
        args.extend_from_slice(flags);
        let out = run_once_clean(&args, env, "");
        out.assert_success();
        parse_toml(&out.stdout)
    };
    let check = |flags: &[&str], env: &[(&str, &str)]| check_in(data, flags, env);
    let env = [
        ("TLSCHAT_RATE_LIMIT", "6"),
        ("TLSCHAT_LISTEN", "127.0.0.1:7002"),
    ];
    let flags = ["--rate-limit", "7", "--listen", "127.0.0.1:7003"];

    let t = check(&flags, &env);
    assert_eq!(limit(&t, "rate_limit"), 7, "flag over env and file");
    assert_eq!(t["listen"].as_str(), Some("127.0.0.1:7003"));
    let t = check(&[], &env);
    assert_eq!(limit(&t, "rate_limit"), 6, "env over file");
    assert_eq!(t["listen"].as_str(), Some("127.0.0.1:7002"));
    let t = check(&[], &[]);
    assert_eq!(limit(&t, "rate_limit"), 5, "file over default");
    assert_eq!(t["listen"].as_str(), Some("127.0.0.1:7001"));
    assert_eq!(limit(&t, "max_clients"), 50);
    // 0 from the environment beats the file's value too.
    let t = check(&[], &[("TLSCHAT_MAX_CLIENTS", "0")]);
    assert_eq!(limit(&t, "max_clients"), 0);

    let empty = tempdir();
    let t = check_in(empty.path().to_str().unwrap(), &[], &[]);
    assert_eq!(limit(&t, "rate_limit"), 10, "the default");
    assert_eq!(t["listen"].as_str(), Some("0.0.0.0:55555"));
}

/// Every limit has its `TLSCHAT_*` variable (the right one), and `0` is
/// accepted for each.
#[test]
fn every_limit_has_its_environment_variable_and_takes_0() {
    let dir = tempdir();
    let data = dir.path().to_str().unwrap();
    let keys = [
        ("TLSCHAT_MAX_CLIENTS", "max_clients"),
        ("TLSCHAT_MAX_PER_ADDRESS", "max_per_address"),
        ("TLSCHAT_RATE_LIMIT", "rate_limit"),
        ("TLSCHAT_RATE_BURST", "rate_burst"),
        ("TLSCHAT_MAX_HANDSHAKES", "max_handshakes"),
        ("TLSCHAT_HANDSHAKE_TIMEOUT", "handshake_timeout"),
        ("TLSCHAT_IDLE_TIMEOUT", "idle_timeout"),
        ("TLSCHAT_OUTBOUND_QUEUE", "outbound_queue"),
        ("TLSCHAT_LOCKOUT_AFTER", "lockout_after"),
        ("TLSCHAT_LOCKOUT_TIME", "lockout_time"),
        ("TLSCHAT_ADDRESS_RATE_LIMIT", "address_rate_limit"),
    ];
    let values: Vec<String> = (0..keys.len()).map(|i| (101 + i).to_string()).collect();
    let env: Vec<(&str, &str)> = keys
        .iter()
        .zip(&values)
        .map(|((var, _), v)| (*var, v.as_str()))
        .collect();
    let out = run_once_clean(&["check-config", "--data-dir", data], &env, "");
    out.assert_success();
    let t = parse_toml(&out.stdout);
    for ((var, key), v) in keys.iter().zip(&values) {
        assert_eq!(limit(&t, key).to_string(), *v, "{var} sets limits.{key}");
    }
    let zeros: Vec<(&str, &str)> = keys.iter().map(|(var, _)| (*var, "0")).collect();
    let out = run_once_clean(&["check-config", "--data-dir", data], &zeros, "");
    out.assert_success();
    let t = parse_toml(&out.stdout);
    for (var, key) in keys {
        assert_eq!(limit(&t, key), 0, "{var}=0");
    }
}

/// Rewrites `tlschat.toml`, sends SIGHUP and waits for the `n`-th
/// `reload complete` in the server's log.
#[cfg(unix)]
fn reconfigure(s: &ServerProcess, config: &Path, text: &str, n: usize) {
    write(config, text);
    s.signal_hup();
    assert!(
        s.wait_stderr_count("reload complete", n, STEP),
        "reload {n} not completed: {}",
        s.stderr()
    );
}

#[cfg(unix)]
#[test]
fn sighup_applies_a_new_rate_limit_to_an_open_connection_without_dropping_it() {
    let dir = tempdir();
    let config = dir.path().join("tlschat.toml");
    write(
        &config,
        "[limits]\nrate_limit = 0\naddress_rate_limit = 0\nmax_per_address = 0\n",
    );
    let s = server_with_env(dir.path(), &[]);
    light(Duration::from_secs(40), async {
        let mut w = s.login("watcher").await;
        let mut a = s.login("alice").await;
        w.expect("JOIN #lobby alice").await;

        // No rate limit from the file: a burst of 60 goes through.
        let burst: String = (0..60).map(|i| format!("burst {i}\n")).collect();
        a.send_raw(burst.as_bytes()).await;
        for i in 0..60 {
            a.expect(&format!("MSG #lobby alice burst {i}")).await;
            w.expect(&format!("MSG #lobby alice burst {i}")).await;
        }

        // 2 lines/s, bursts of 2, then SIGHUP: alice (connected before, and
        // waiting for her next line) is limited from now on, and not dropped.
        reconfigure(
            &s,
            &config,
            "[limits]\nrate_limit = 2\nrate_burst = 2\nmax_per_address = 0\n",
            1,
        );
        a.send_raw(b"one\ntwo\nthree\n").await;
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(a.recv().await);
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
        a.send("four").await;
        a.wait_for("MSG #lobby alice four").await;
        w.wait_for("MSG #lobby alice four").await;
        assert_eq!(
            answers[..2],
            ["MSG #lobby alice one", "MSG #lobby alice two"]
        );
        assert!(
            answers[2].starts_with("ERROR rate-limited ") && answers[2].contains("at most 2 lines"),
            "the third fast line after the reload (2 lines/s, bursts of 2) was not \
             rate-limited: {answers:?}"
        );
    });
}

/// docs/configuration.md: a new `idle_timeout` applies "from its next
/// line (a client already silent keeps the deadline it had)".
#[cfg(unix)]
#[test]
fn sighup_applies_a_new_idle_timeout_from_the_next_line() {
    let dir = tempdir();
    let config = dir.path().join("tlschat.toml");
    write(&config, "[limits]\nidle_timeout = 0\nmax_per_address = 0\n");
    let s = server_with_env(dir.path(), &[]);
    light(Duration::from_secs(40), async {
        let mut a = s.login("alice").await;
        reconfigure(
            &s,
            &config,
            "[limits]\nidle_timeout = 1\nmax_per_address = 0\n",
            1,
        );
        // Silent since before the reload: no deadline yet.
        assert_eq!(a.recv_within(Duration::from_millis(1500)).await, None);
        // From her next line on, 1 s of silence closes her.
        a.send("hello").await;
        a.expect("MSG #lobby alice hello").await;
        let spoke = Instant::now();
        let got = a.recv_within(Duration::from_secs(5)).await;
        assert_eq!(
            got,
            Some(Some(
                "ERROR timeout no line for 1 s: disconnected".to_owned()
            )),
            "{:?} after her last line",
            spoke.elapsed()
        );
        assert!(a.expect_closed().await.is_empty());
    });
}

/// A config file that does not parse: logged, nothing changes, nobody is
/// dropped.
#[cfg(unix)]
#[test]
fn sighup_with_a_broken_config_file_changes_nothing() {
    let dir = tempdir();
    let config = dir.path().join("tlschat.toml");
    write(&config, "[limits]\nrate_limit = 0\nmax_per_address = 0\n");
    let s = server_with_env(dir.path(), &[]);
    light(Duration::from_secs(40), async {
        let mut a = s.login("alice").await;
        write(&config, "[limits]\nrate_limt = 1\nmax_per_address = 0\n");
        s.signal_hup();
        // The error (over several lines) names the unknown key.
        assert!(
            s.wait_stderr("config not reloaded", STEP).is_some()
                && s.wait_stderr("unknown field `rate_limt`", STEP).is_some(),
            "{}",
            s.stderr()
        );
        // Still no rate limit, still connected.
        let burst: String = (0..40).map(|i| format!("burst {i}\n")).collect();
        a.send_raw(burst.as_bytes()).await;
        for i in 0..40 {
            a.expect(&format!("MSG #lobby alice burst {i}")).await;
        }
        a.expect_quiet("a").await;
    });
}

#[cfg(unix)]
#[test]
fn sighup_reloads_a_bans_file_edited_on_disk() {
    let dir = tempdir();
    let s = server_with_env(dir.path(), &[("TLSCHAT_MAX_PER_ADDRESS", "0")]);
    light(Duration::from_secs(40), async {
        let mut w = s.login("watcher").await;
        let mut m = s.connect().await;
        let before = answer_to_nick(&mut m, "mallory").await;
        assert_eq!(before, "WELCOME mallory #lobby", "not banned yet");
        drop(m);
        w.wait_for("PART #lobby mallory").await;

        // A ban added to bans.txt by hand (the file may not exist yet).
        let bans = dir.path().join("bans.txt");
        let mut text = std::fs::read_to_string(&bans).unwrap_or_default();
        text.push_str("mallory - 2026-01-01T00:00:00Z admin spamming, by hand\n");
        write(&bans, &text);
        s.signal_hup();
        assert!(
            s.wait_stderr_count("reload complete", 1, STEP),
            "no reload: {}",
            s.stderr()
        );
        let mut m = s.connect().await;
        let ban = answer_to_nick(&mut m, "mallory").await;
        assert_eq!(
            ban,
            "BAN you are banned from this server: spamming, by hand"
        );
        assert!(m.expect_closed().await.is_empty());

        // The admin sees it; nobody was dropped by the reload.
        let mut adm = s.login_admin(&initial_admin_password(dir.path())).await;
        w.expect("JOIN #lobby admin").await;
        adm.send("/bans").await;
        adm.expect("INFO mallory - since 2026-01-01T00:00:00Z by admin: spamming, by hand")
            .await;
        w.sync("w").await;
    });
}

/// A reload never leaves `admin` without its password: a database that
/// lost the admin's row (here: deleted by another process while the server
/// runs) is not taken, and the admin still needs the password it had.
#[cfg(unix)]
#[test]
fn sighup_keeps_the_admin_password_when_the_database_loses_it() {
    let dir = tempdir();
    let s = server_with_env(dir.path(), &[("TLSCHAT_MAX_PER_ADDRESS", "0")]);
    let password = initial_admin_password(dir.path());
    let db = rusqlite::Connection::open(dir.path().join("tlschat.db")).expect("tlschat.db");
    let deleted = db
        .execute("DELETE FROM accounts WHERE nick_key = 'admin'", [])
        .expect("delete the admin's row");
    assert_eq!(deleted, 1, "the admin's row is in the database");
    drop(db);
    s.signal_hup();
    assert!(
        s.wait_stderr("accounts not reloaded", STEP).is_some(),
        "the reload did not refuse an accounts file without admin: {}",
        s.stderr()
    );
    assert!(
        s.stderr().contains("has no admin account"),
        "{}",
        s.stderr()
    );
    light(Duration::from_secs(40), async {
        let (answer, _c) = s.admin_attempt("").await;
        assert!(answer.starts_with("REFUSE "), "{answer}");
        let (answer, _c) = s.admin_attempt(&password).await;
        assert_eq!(answer, "WELCOME admin #lobby");
    });
}

/// The password a first start wrote to `<data-dir>/initial-admin-password`.
#[cfg(unix)]
fn initial_admin_password(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("initial-admin-password"))
        .expect("initial-admin-password");
    text.trim_end_matches(['\n', '\r']).to_owned()
}

// ---- one address cannot push others out; exact lockout; address budgets ---------

/// A TLS connection from `from` that may fail (a refusal closed at once is
/// no handshake): the first line, if the server sent one.
async fn first_line_from(
    addr: SocketAddr,
    cert: &rustls_pki_types::CertificateDer<'static>,
    from: IpAddr,
) -> Option<String> {
    let tls = tls_connect(socket_for(addr, Some(from)), addr, trusting(cert))
        .await
        .ok()?;
    Lines::new(tls).next().await
}

/// Connections that send the first byte of a TLS record and stall.
#[cfg(target_os = "linux")]
const STALLED: usize = 1100;

/// 1,100 connections from 127.0.0.3 that send one byte and stall: the
/// per-address cap is checked before a connection takes a handshake slot,
/// so they push out nobody else's unfinished login (a nickname being
/// typed, the admin at the password prompt), and refused connections are
/// no clients, so `max_clients` is not used up by them.
#[cfg(target_os = "linux")]
#[test]
fn stalled_connections_from_one_address_push_no_one_else_out() {
    raise_open_files(2 * STALLED as u64 + 200);
    alone(Duration::from_secs(60), async {
        let s = server_with_defaults(|l| l.max_clients = 64).await;
        let cap = Limits::default().max_per_address;
        assert_eq!(cap, 16, "the documented default");

        // Mid-login on 127.0.0.2: one at NICK, the admin at PASS.
        let mut typing = connect_tls_from(s.addr, &s.cert, loopback(2)).await;
        typing.expect("NICK").await;
        let mut admin = connect_tls_from(s.addr, &s.cert, loopback(2)).await;
        assert_eq!(answer_to_nick(&mut admin, "admin").await, "PASS");

        let mut stalled = Vec::with_capacity(STALLED);
        for _ in 0..STALLED {
            let mut tcp = idle_connect(s.addr, loopback(3)).await;
            // A refused connection may already be closed: that is fine.
            let _ = tcp.write_all(&[0x16]).await;
            stalled.push(tcp);
        }

        // Both logins finish.
        typing.send("Zoë-is-not-ASCII").await;
        let answer = typing.recv().await;
        assert!(answer.starts_with("ERROR nick-invalid "), "{answer}");
        typing.expect("NICK").await;
        typing.send("zoe").await;
        typing.expect("WELCOME zoe #lobby").await;
        admin.send(ADMIN_PASSWORD).await;
        admin.expect("WELCOME admin #lobby").await;

        // max_clients (64) is not used up: another address logs in.
        let mut other = connect_tls_from(s.addr, &s.cert, loopback(4)).await;
        other.finish_login("dave").await;
        other
            .send("Привет, Γειά, مرحبا, שלום, 你好 👋🏽 👨‍👩‍👧 e\u{301}")
            .await;
        other
            .expect("MSG #lobby dave Привет, Γειά, مرحبا, שלום, 你好 👋🏽 👨‍👩‍👧 e\u{301}")
            .await;

        // The cap held: at most 16 of the flood are counted connections
        // (still open, waiting for their handshake), plus the few
        // refusals still lingering; the rest were closed.
        let open = futures_util::future::join_all(stalled.iter_mut().map(|tcp| async {
            let mut buf = [0u8; 64];
            tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf))
                .await
                .is_err()
        }))
        .await;
        let open = open.iter().filter(|&&o| o).count();
        eprintln!("{open} of {STALLED} stalled connections are still open");
        assert!(
            (cap..=cap + 8).contains(&open),
            "{open} stalled connections from one address are still open (cap {cap})"
        );
        s.stop().await;
    });
}

/// 16 wrong passwords for `admin` at once from one address: exactly
/// `lockout_after` of them are checked (each answered `REFUSE`); the
/// others are told to wait (`ERROR rate-limited <seconds> …`).
#[test]
fn parallel_wrong_passwords_get_exactly_lockout_after_checked() {
    alone(Duration::from_secs(60), async {
        let s = server_with_defaults(|l| {
            l.lockout_time = Duration::from_secs(30);
            l.max_per_address = 0;
        })
        .await;
        let lockout_after = Limits::default().lockout_after as usize;
        // Every connection is at PASS before any guess is sent.
        let mut prompted = Vec::new();
        for _ in 0..16 {
            let mut c = s.connect().await;
            assert_eq!(answer_to_nick(&mut c, "admin").await, "PASS");
            prompted.push(c);
        }
        let guesses = [
            "пароль",
            "κωδικός",
            "كلمة السر",
            "סיסמה",
            "密码",
            "🔑👩🏽‍💻",
            "e\u{301}e\u{301}",
        ];
        let answers = futures_util::future::join_all(prompted.into_iter().enumerate().map(
            |(i, mut c)| async move {
                c.send(&format!("{} {i}", guesses[i % guesses.len()])).await;
                let answer = c.recv().await;
                assert!(c.expect_closed().await.is_empty());
                answer
            },
        ))
        .await;
        let refused = answers.iter().filter(|a| a.starts_with("REFUSE ")).count();
        let waits = answers
            .iter()
            .filter(|a| a.starts_with("ERROR rate-limited "))
            .count();
        assert_eq!(
            (refused, waits),
            (lockout_after, 16 - lockout_after),
            "checked vs told to wait: {answers:#?}"
        );
        // The address is locked out now, even for the right password.
        let got = admin_attempt(&s, None, ADMIN_PASSWORD).await;
        assert!(matches!(got, Attempt::Locked(_)), "{got:?}");
        s.stop().await;
    });
}

/// Sends `lines` at once and reads this sender's answers to them (its own
/// `MSG` echoes and `ERROR`s; others' lines are skipped): (passed, refused
/// by the address budget).
async fn burst_from(c: &mut Client, nick: &str, lines: &[String]) -> (usize, usize) {
    let all: String = lines.iter().map(|l| format!("{l}\n")).collect();
    c.send_raw(all.as_bytes()).await;
    let own = format!("MSG #lobby {nick} ");
    let (mut passed, mut limited) = (0, 0);
    while passed + limited < lines.len() {
        let line = c.recv().await;
        if line.starts_with(&own) {
            passed += 1;
        } else if line.starts_with("ERROR rate-limited ") {
            assert!(line.contains("from your address"), "{line}");
            limited += 1;
        } else {
            assert!(
                line.starts_with("MSG #lobby ") || line.starts_with("JOIN #lobby "),
                "{nick} got {line:?}"
            );
        }
    }
    (passed, limited)
}

fn unicode_lines(tag: &str, n: usize) -> Vec<String> {
    let texts = [
        "Привет",
        "Γειά σου",
        "مرحبا",
        "שלום",
        "你好世界",
        "👩🏽‍🚀👨‍👩‍👧",
        "Cafe\u{301}",
    ];
    (0..n)
        .map(|i| format!("{tag} {i} {}", texts[i % texts.len()]))
        .collect()
}

/// Three connections from one address together get one address budget
/// (10 lines/s, bursts of 20), each still under its own; a connection
/// from another address is not affected.
#[cfg(target_os = "linux")]
#[test]
fn connections_from_one_address_share_one_line_budget() {
    alone(Duration::from_secs(60), async {
        let s = server_with_defaults(|l| {
            l.address_rate_limit = 10;
            l.max_per_address = 0;
        })
        .await;
        let mut same = Vec::new();
        for i in 0..3 {
            let nick = format!("same{i}");
            let mut c = connect_tls_from(s.addr, &s.cert, loopback(3)).await;
            c.finish_login(&nick).await;
            same.push((c, nick));
        }
        let mut other = connect_tls_from(s.addr, &s.cert, loopback(4)).await;
        other.finish_login("other").await;
        // Each sends 15 lines at once: under its own burst of 20.
        let results = futures_util::future::join_all(same.iter_mut().map(|(c, nick)| async {
            let lines = unicode_lines(nick, 15);
            burst_from(c, nick, &lines).await
        }))
        .await;
        let passed: usize = results.iter().map(|r| r.0).sum();
        let limited: usize = results.iter().map(|r| r.1).sum();
        eprintln!("one address: {passed} passed, {limited} refused: {results:?}");
        assert_eq!(passed + limited, 45);
        // The burst of 20, and what trickled in at 10/s meanwhile.
        assert!(
            (20..=30).contains(&passed),
            "{passed} of 45 lines from one address passed"
        );
        let (passed, limited) = burst_from(&mut other, "other", &unicode_lines("o", 15)).await;
        assert_eq!(
            (passed, limited),
            (15, 0),
            "another address is not affected"
        );
        s.stop().await;
    });
}

/// The per-address cap and the address line budget apply to IPv6 (`::1`,
/// grouped by its /64).
#[test]
fn the_per_address_limits_apply_to_ipv6_loopback() {
    if let Err(e) = std::net::TcpListener::bind("[::1]:0") {
        eprintln!("skipped: IPv6 loopback is not available here ({e})");
        return;
    }
    light(Duration::from_secs(40), async {
        let s = TestServer::start_with(|c| {
            c.listen = "[::1]:0".parse().unwrap();
            c.limits.max_per_address = 2;
            c.limits.address_rate_limit = 10;
        })
        .await;
        let mut a = s.login("v6a").await;
        let mut b = s.login("v6b").await;
        a.expect("JOIN #lobby v6b").await;
        let refusal = s.connect().await.recv().await;
        assert!(
            refusal.starts_with("ERROR server-full ") && refusal.contains("(2 at most)"),
            "{refusal}"
        );
        let (a_lines, b_lines) = (unicode_lines("a", 15), unicode_lines("b", 15));
        let (ra, rb) = tokio::join!(
            burst_from(&mut a, "v6a", &a_lines),
            burst_from(&mut b, "v6b", &b_lines)
        );
        let passed = ra.0 + rb.0;
        assert!(
            (20..=28).contains(&passed),
            "{passed} of 30 lines from ::1 passed: {ra:?} {rb:?}"
        );
        s.stop().await;
    });
}

/// Refused connections are logged once a minute per address, not once
/// each (the count held back comes with the next line; see the limiter's
/// unit test).
#[cfg(target_os = "linux")]
#[test]
fn refusals_from_one_address_are_logged_once_a_minute() {
    let dir = tempdir();
    let s = server_with_env(dir.path(), &[("TLSCHAT_MAX_PER_ADDRESS", "1")]);
    light(Duration::from_secs(60), async {
        let _alice = s.login("alice").await;
        let cert = s.cert();
        let mut told = 0;
        for _ in 0..30 {
            if let Some(line) = first_line_from(s.addr, &cert, loopback(1)).await {
                assert!(line.starts_with("ERROR server-full "), "{line}");
                told += 1;
            }
        }
        assert!(told > 0, "no refusal was delivered");
        // Accepted in order: once 127.0.0.2 is in, all 30 were handled.
        let mut bob = connect_tls_from(s.addr, &cert, loopback(2)).await;
        bob.finish_login("bob").await;
    });
    let needle = "too many connections from your address";
    let logged: Vec<String> = s
        .stderr()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect();
    assert_eq!(logged.len(), 1, "refusal warnings: {logged:#?}");
}

/// The new settings: defaults in `check-config`, and a prefix length
/// outside 1..=128 refused from the file and from the environment.
#[test]
fn check_config_shows_the_address_settings_and_refuses_a_bad_prefix() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let out = run_once_clean(&["check-config", "--data-dir", data], &[], "");
    out.assert_success();
    let t = parse_toml(&out.stdout);
    assert_eq!(limit(&t, "address_rate_limit"), 30);
    assert_eq!(limit(&t, "ipv6_prefix_len"), 64);
    let out = run_once_clean(
        &["check-config", "--data-dir", data],
        &[("TLSCHAT_IPV6_PREFIX_LEN", "48")],
        "",
    );
    out.assert_success();
    assert_eq!(limit(&parse_toml(&out.stdout), "ipv6_prefix_len"), 48);

    let file = dir.path().join("bad.toml");
    write(&file, "[limits]\nipv6_prefix_len = 0\n");
    let out = run_once_clean(
        &[
            "check-config",
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            data,
        ],
        &[],
        "",
    );
    out.assert_code(2);
    assert!(out.stderr.contains("ipv6_prefix_len"), "{}", out.stderr);
    let out = run_once_clean(
        &["check-config", "--data-dir", data],
        &[("TLSCHAT_IPV6_PREFIX_LEN", "129")],
        "",
    );
    out.assert_code(2);
    assert!(out.stderr.contains("129"), "{}", out.stderr);
}
