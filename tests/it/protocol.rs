//! Integration tests of protocol v1 (`docs/protocol.md`) against the real
//! server: TLS over loopback on ephemeral ports, one in-process server per
//! test. Every wait is bounded (the harness's `STEP`); "nothing else
//! arrives" is checked with a `/ping` round trip (`Client::expect_quiet`).

use crate::harness::*;

use std::time::{Duration, Instant};

use tlschat_protocol::command::{ADMIN_HELP, HELP};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The exact plaintext refusal, from protocol.md.
const TLS_REQUIRED: &str =
    "ERROR tls-required this port speaks TLS: use tlschat, openssl s_client or ncat --ssl\n";

/// alice and bob in #lobby, with alice's `JOIN #lobby bob` consumed.
async fn alice_and_bob(s: &TestServer) -> (Client, Client) {
    let mut a = s.login("alice").await;
    let b = s.login("bob").await;
    a.expect("JOIN #lobby bob").await;
    (a, b)
}

/// alice, bob and carol in #lobby, every JOIN consumed.
async fn three(s: &TestServer) -> (Client, Client, Client) {
    let (mut a, mut b) = alice_and_bob(s).await;
    let c = s.login("carol").await;
    a.expect("JOIN #lobby carol").await;
    b.expect("JOIN #lobby carol").await;
    (a, b, c)
}

/// Reads from a raw TCP stream until EOF (or a reset), bounded by `STEP`.
async fn read_to_eof(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(STEP, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server closes the raw connection within STEP");
    got
}

/// Connects until the server admits us (`NICK`) instead of answering
/// `ERROR server-full`; panics after `limit`.
async fn connect_when_admitted(s: &TestServer, limit: Duration) -> Client {
    let deadline = Instant::now() + limit;
    loop {
        let mut c = s.connect().await;
        let first = c.recv().await;
        if first == "NICK" {
            return c;
        }
        assert!(
            first.starts_with("ERROR server-full "),
            "unexpected first line `{first}`"
        );
        assert!(c.expect_closed().await.is_empty());
        assert!(
            Instant::now() < deadline,
            "no client slot became free within {limit:?}"
        );
        // Polling for a slot, not synchronising: nothing to ping yet.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- 1. handshake ----------------------------------------------------------

#[tokio::test]
async fn handshake_is_exactly_as_documented() {
    let s = TestServer::start().await;

    let mut a = s.connect().await;
    a.expect("NICK").await;
    a.send("alice").await;
    a.expect("WELCOME alice #lobby").await;
    a.expect("JOIN #lobby alice").await;
    a.expect("USERS #lobby alice").await;

    let mut b = s.connect().await;
    b.expect("NICK").await;
    b.send("bob").await;
    b.expect("WELCOME bob #lobby").await;
    b.expect("JOIN #lobby bob").await;
    b.expect("USERS #lobby alice bob").await;
    a.expect("JOIN #lobby bob").await;

    let mut c = s.connect().await;
    c.expect("NICK").await;
    c.send("carol").await;
    c.expect("WELCOME carol #lobby").await;
    c.expect("JOIN #lobby carol").await;
    c.expect("USERS #lobby alice bob carol").await;
    a.expect("JOIN #lobby carol").await;
    b.expect("JOIN #lobby carol").await;

    a.expect_quiet("a").await;
    b.expect_quiet("b").await;
    c.expect_quiet("c").await;
    s.stop().await;
}

// ---- 2. nickname rules -----------------------------------------------------

#[tokio::test]
async fn invalid_nicknames_get_nick_invalid_then_nick_again() {
    let s = TestServer::start().await;
    let too_long = "x".repeat(25);
    let longest = "X".repeat(24);

    let mut c = s.connect().await;
    c.expect("NICK").await;
    for bad in ["bo b", too_long.as_str(), "-bob", ".bob"] {
        c.send(bad).await;
        c.expect_prefix("ERROR nick-invalid ").await;
        c.expect("NICK").await;
    }
    c.send(&longest).await;
    c.expect(&format!("WELCOME {longest} #lobby")).await;

    let mut d = s.connect().await;
    d.expect("NICK").await;
    for bad in ["bób", "", "   ", "bo\tb"] {
        d.send(bad).await;
        d.expect_prefix("ERROR nick-invalid ").await;
        d.expect("NICK").await;
    }
    d.send("A_b-c.9").await;
    d.expect("WELCOME A_b-c.9 #lobby").await;
    s.stop().await;
}

#[tokio::test]
async fn taken_nickname_is_case_insensitive() {
    let s = TestServer::start().await;
    let mut a = s.login("alice").await;

    let mut c = s.connect().await;
    c.expect("NICK").await;
    for taken in ["Alice", "ALICE", "alice"] {
        c.send(taken).await;
        c.expect_prefix("ERROR nick-taken ").await;
        c.expect("NICK").await;
    }
    c.send("alice2").await;
    c.expect("WELCOME alice2 #lobby").await;
    c.expect("JOIN #lobby alice2").await;
    c.expect("USERS #lobby alice alice2").await;
    a.expect("JOIN #lobby alice2").await;
    a.expect_quiet("q").await;
    s.stop().await;
}

#[tokio::test]
async fn five_failed_nickname_tries_close_the_connection() {
    let s = TestServer::start().await;
    let _alice = s.login("alice").await;

    let mut c = s.connect().await;
    // Taken and invalid answers both count as tries.
    for (answer, code) in [
        ("Alice", "nick-taken"),
        ("bad nick", "nick-invalid"),
        ("ALICE", "nick-taken"),
        ("-x", "nick-invalid"),
        ("alice", "nick-taken"),
    ] {
        c.expect("NICK").await;
        c.send(answer).await;
        c.expect_prefix(&format!("ERROR {code} ")).await;
    }
    // No sixth NICK: the TLS session ends properly after the fifth ERROR.
    c.expect_clean_close().await;
    s.stop().await;
}

#[tokio::test]
async fn nickname_surrounding_spaces_are_trimmed() {
    let s = TestServer::start().await;
    let mut c = s.connect().await;
    c.expect("NICK").await;
    c.send("  bob  ").await;
    c.expect("WELCOME bob #lobby").await;
    c.expect("JOIN #lobby bob").await;
    c.expect("USERS #lobby bob").await;
    s.stop().await;
}

// ---- 3. client commands ----------------------------------------------------

#[tokio::test]
async fn plain_message_goes_to_the_room_including_its_author() {
    let s = TestServer::start().await;
    let (mut a, mut b, mut c) = three(&s).await;
    c.send("/join #other").await;
    c.wait_for("USERS #other").await;
    a.expect("PART #lobby carol moved").await;
    b.expect("PART #lobby carol moved").await;

    a.send("hello world").await;
    a.expect("MSG #lobby alice hello world").await;
    b.expect("MSG #lobby alice hello world").await;
    // A leading space makes a message, not a command.
    a.send(" /not a command").await;
    a.expect("MSG #lobby alice  /not a command").await;
    b.expect("MSG #lobby alice  /not a command").await;
    c.expect_quiet("c").await;
    s.stop().await;
}

#[tokio::test]
async fn double_slash_sends_a_message_starting_with_one_slash() {
    let s = TestServer::start().await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    a.send("//shrug").await;
    a.expect("MSG #lobby alice /shrug").await;
    b.expect("MSG #lobby alice /shrug").await;
    a.send("///").await;
    a.expect("MSG #lobby alice //").await;
    b.expect("MSG #lobby alice //").await;
    s.stop().await;
}

#[tokio::test]
async fn join_moves_to_another_room() {
    let s = TestServer::start().await;
    let (mut a, mut b, mut c) = three(&s).await;

    b.send("/join #rust").await;
    b.expect("PART #lobby bob moved").await;
    b.expect("JOIN #rust bob").await;
    b.expect("USERS #rust bob").await;
    a.expect("PART #lobby bob moved").await;
    c.expect("PART #lobby bob moved").await;

    // Room names are case-insensitive; the first spelling is kept.
    a.send("/join #RUST").await;
    a.expect("PART #lobby alice moved").await;
    a.expect("JOIN #rust alice").await;
    a.expect("USERS #rust bob alice").await;
    b.expect("JOIN #rust alice").await;
    c.expect("PART #lobby alice moved").await;

    a.send("hi rust").await;
    a.expect("MSG #rust alice hi rust").await;
    b.expect("MSG #rust alice hi rust").await;
    c.expect_quiet("c").await;
    b.expect_quiet("b").await;
    s.stop().await;
}

#[tokio::test]
async fn join_with_a_bad_room_name_is_bad_room() {
    let s = TestServer::start().await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    let long = format!("/join #{}", "r".repeat(33));
    for bad in [
        "/join",
        "/join lobby",
        "/join #",
        "/join #a.b",
        "/join #a b",
        "/join #ünï",
        long.as_str(),
    ] {
        a.send(bad).await;
        a.expect_prefix("ERROR bad-room ").await;
    }
    a.send("/who").await;
    a.expect("USERS #lobby alice bob").await;
    b.expect_quiet("b").await;
    // The longest name is fine.
    let longest = format!("#{}", "R".repeat(32));
    a.send(&format!("/join {longest}")).await;
    a.expect("PART #lobby alice moved").await;
    a.expect(&format!("JOIN {longest} alice")).await;
    s.stop().await;
}

#[tokio::test]
async fn join_of_the_current_room_is_only_an_info() {
    let s = TestServer::start().await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    a.send("/join #LOBBY").await;
    a.expect_prefix("INFO ").await;
    a.expect_quiet("a").await;
    b.expect_quiet("b").await;
    a.send("/who").await;
    a.expect("USERS #lobby alice bob").await;
    s.stop().await;
}

#[tokio::test]
async fn msg_goes_to_the_recipient_and_back_to_the_author_only() {
    let s = TestServer::start().await;
    let (mut a, mut b, mut c) = three(&s).await;

    a.send("/msg bob hi  there").await;
    a.expect("PRIVMSG alice bob hi  there").await;
    b.expect("PRIVMSG alice bob hi  there").await;
    c.expect_quiet("c").await;

    // Nicknames are looked up without regard to case; the line shows the
    // recipient's own spelling. Rooms do not matter.
    b.send("/join #elsewhere").await;
    b.wait_for("USERS #elsewhere").await;
    a.wait_for("PART #lobby bob moved").await;
    c.wait_for("PART #lobby bob moved").await;
    a.send("/msg BOB psst").await;
    a.expect("PRIVMSG alice bob psst").await;
    b.expect("PRIVMSG alice bob psst").await;

    // To oneself: one copy.
    a.send("/msg alice note to self").await;
    a.expect("PRIVMSG alice alice note to self").await;
    a.expect_quiet("a").await;
    b.expect_quiet("b").await;
    c.expect_quiet("c").await;
    s.stop().await;
}

#[tokio::test]
async fn msg_to_an_unknown_nick_is_no_such_nick() {
    let s = TestServer::start().await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    a.send("/msg nobody hello?").await;
    a.expect_prefix("ERROR no-such-nick ").await;
    b.expect_quiet("b").await;
    s.stop().await;
}

#[tokio::test]
async fn me_sends_an_action_to_the_room() {
    let s = TestServer::start().await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    a.send("/me waves at everyone").await;
    a.expect("ACTION #lobby alice waves at everyone").await;
    b.expect("ACTION #lobby alice waves at everyone").await;
    s.stop().await;
}

#[tokio::test]
async fn who_lists_the_current_room() {
    let s = TestServer::start().await;
    let (mut a, mut b, mut c) = three(&s).await;
    a.send("/who").await;
    a.expect("USERS #lobby alice bob carol").await;
    c.send("/join #side").await;
    c.wait_for("USERS #side").await;
    c.send("/who").await;
    c.expect("USERS #side carol").await;
    b.wait_for("PART #lobby carol moved").await;
    b.send("/who").await;
    b.expect("USERS #lobby alice bob").await;
    s.stop().await;
}

#[tokio::test]
async fn rooms_lists_rooms_that_have_people_with_counts() {
    let s = TestServer::start().await;
    let (mut a, mut b, mut c) = three(&s).await;
    a.send("/rooms").await;
    a.expect("ROOMS #lobby=3").await;
    b.send("/join #rust").await;
    b.wait_for("USERS #rust").await;
    c.send("/join #rust").await;
    c.wait_for("USERS #rust").await;
    a.wait_for("PART #lobby carol moved").await;
    a.send("/rooms").await;
    a.expect("ROOMS #lobby=1 #rust=2").await;
    // An emptied room disappears.
    b.send("/join #lobby").await;
    b.wait_for("USERS #lobby").await;
    c.send("/join #lobby").await;
    c.wait_for("USERS #lobby").await;
    a.wait_for("JOIN #lobby carol").await;
    a.send("/rooms").await;
    a.expect("ROOMS #lobby=3").await;
    s.stop().await;
}

#[tokio::test]
async fn help_lists_the_commands_and_the_admin_sees_more() {
    let s = TestServer::start().await;
    let mut a = s.login("alice").await;
    a.send("/help").await;
    for line in HELP {
        a.expect(&format!("INFO {line}")).await;
    }
    a.expect_quiet("a").await;

    let mut adm = s.login_admin().await;
    adm.send("/help").await;
    for line in HELP.iter().chain(ADMIN_HELP) {
        adm.expect(&format!("INFO {line}")).await;
    }
    adm.expect_quiet("adm").await;
    for cmd in ["/kick", "/ban", "/unban", "/bans"] {
        assert!(ADMIN_HELP.iter().any(|l| l.starts_with(cmd)), "{cmd}");
        assert!(!HELP.iter().any(|l| l.starts_with(cmd)), "{cmd}");
    }
    s.stop().await;
}

#[tokio::test]
async fn ping_answers_pong_with_the_token() {
    let s = TestServer::start().await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    a.send("/ping").await;
    a.expect("PONG").await;
    a.send("/ping tok-123").await;
    a.expect("PONG tok-123").await;
    a.send("/PING Upper").await;
    a.expect("PONG Upper").await;
    b.expect_quiet("b").await;
    s.stop().await;
}

#[tokio::test]
async fn quit_parts_the_room_including_self_then_closes() {
    let s = TestServer::start().await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    b.send("/quit gone home").await;
    let own = b.expect_prefix("PART #lobby bob ").await;
    assert!(own.contains("gone home"), "{own}");
    let rest = b.expect_closed().await;
    assert!(rest.is_empty(), "nothing after the PART: {rest:?}");
    a.expect(&own).await;
    a.expect_quiet("a").await;
    // The nickname is free again.
    let _b = s.login("bob").await;
    a.expect("JOIN #lobby bob").await;
    s.stop().await;
}

#[tokio::test]
async fn unknown_command_is_unknown_command() {
    let s = TestServer::start().await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    for line in ["/frobnicate", "/", "/ping2"] {
        a.send(line).await;
        a.expect_prefix("ERROR unknown-command ").await;
    }
    b.expect_quiet("b").await;
    s.stop().await;
}

#[tokio::test]
async fn admin_commands_by_a_user_are_not_permitted() {
    let s = TestServer::start().await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    // Without arguments too: a user learns the command is not theirs, not
    // its usage.
    for line in [
        "/kick alice",
        "/ban alice spam",
        "/unban alice",
        "/bans",
        "/kick",
        "/ban",
        "/UNBAN",
    ] {
        b.send(line).await;
        b.expect_prefix("ERROR not-permitted ").await;
    }
    a.expect_quiet("a").await;
    b.expect_quiet("b").await;
    // Nobody was banned: a new user from the same address gets in.
    let _c = s.login("carol").await;
    s.stop().await;
}

// ---- 4. admin ----------------------------------------------------------------

#[tokio::test]
async fn admin_with_the_right_password_is_welcomed() {
    let s = TestServer::start().await;
    let mut a = s.login("alice").await;
    let mut adm = s.connect().await;
    adm.expect("NICK").await;
    adm.send("admin").await;
    adm.expect("PASS").await;
    adm.send(ADMIN_PASSWORD).await;
    adm.expect("WELCOME admin #lobby").await;
    adm.expect("JOIN #lobby admin").await;
    adm.expect("USERS #lobby alice admin").await;
    a.expect("JOIN #lobby admin").await;
    s.stop().await;
}

#[tokio::test]
async fn admin_with_a_wrong_password_is_refused_and_closed() {
    let s = TestServer::start().await;
    let mut a = s.login("alice").await;
    let mut adm = s.connect().await;
    adm.expect("NICK").await;
    adm.send("admin").await;
    adm.expect("PASS").await;
    adm.send("not the password").await;
    adm.expect_prefix("REFUSE ").await;
    let rest = adm.expect_closed().await;
    assert!(rest.is_empty(), "{rest:?}");
    a.expect_quiet("a").await;
    s.stop().await;
}

/// Transport: a too-long or non-UTF-8 line is answered and discarded, and
/// the connection stays open; at the `PASS` prompt too. Such a line is no
/// password (and no wrong one): `PASS` comes again.
#[tokio::test]
async fn malformed_password_lines_get_their_error_and_pass_again() {
    let s = TestServer::start().await;
    let mut adm = s.connect().await;
    adm.expect("NICK").await;
    adm.send("admin").await;
    adm.expect("PASS").await;
    let mut long = vec![b'x'; 5000];
    long.push(b'\n');
    adm.send_raw(&long).await;
    adm.expect_prefix("ERROR line-too-long ").await;
    adm.expect("PASS").await;
    adm.send_raw(b"pass\xff\xfeword\n").await;
    adm.expect_prefix("ERROR invalid-utf8 ").await;
    adm.expect("PASS").await;
    adm.send(ADMIN_PASSWORD).await;
    adm.expect("WELCOME admin #lobby").await;
    s.stop().await;
}

/// Five malformed answers to `PASS` end it like five bad nicknames: the
/// fifth `ERROR`, then a close.
#[tokio::test]
async fn five_malformed_password_lines_close_the_connection() {
    let s = TestServer::start().await;
    let mut adm = s.connect().await;
    adm.expect("NICK").await;
    adm.send("admin").await;
    for _ in 0..5 {
        adm.expect("PASS").await;
        adm.send_raw(b"\xff\n").await;
        adm.expect_prefix("ERROR invalid-utf8 ").await;
    }
    // No sixth PASS: the TLS session ends properly after the fifth ERROR.
    adm.expect_clean_close().await;
    // None of them counted as a wrong password: no lockout.
    let _adm = s.login_admin().await;
    s.stop().await;
}

#[tokio::test]
async fn kick_removes_the_user_who_may_come_back() {
    let s = TestServer::start().await;
    let mut adm = s.login_admin().await;
    let mut b = s.login("bob").await;
    let mut c = s.login("carol").await;
    adm.expect("JOIN #lobby bob").await;
    adm.expect("JOIN #lobby carol").await;
    b.expect("JOIN #lobby carol").await;

    adm.send("/kick bob be nice").await;
    adm.expect("KICK bob admin be nice").await;
    adm.expect("PART #lobby bob kicked").await;
    adm.expect_prefix("INFO ").await;
    b.expect("KICK bob admin be nice").await;
    assert!(b.expect_closed().await.is_empty());
    c.expect("KICK bob admin be nice").await;
    c.expect("PART #lobby bob kicked").await;

    let mut b = s.login("bob").await;
    adm.expect("JOIN #lobby bob").await;
    c.expect("JOIN #lobby bob").await;
    b.send("I'm back").await;
    b.expect("MSG #lobby bob I'm back").await;
    s.stop().await;
}

#[tokio::test]
async fn kick_of_an_unknown_nick_is_no_such_nick() {
    let s = TestServer::start().await;
    let mut adm = s.login_admin().await;
    adm.send("/kick nobody").await;
    adm.expect_prefix("ERROR no-such-nick ").await;
    // The admin's misuse gets the usage (a user's gets not-permitted).
    for (line, usage) in [
        ("/kick", "usage: /kick NICK [REASON]"),
        ("/ban", "usage: /ban NICK [REASON]"),
        ("/unban", "usage: /unban NICK|ADDRESS"),
    ] {
        adm.send(line).await;
        adm.expect(&format!("ERROR no-such-nick {usage}")).await;
    }
    adm.expect_quiet("q").await;
    s.stop().await;
}

#[tokio::test]
async fn ban_kicks_every_session_of_the_nickname_and_address_but_not_the_admin() {
    let s = TestServer::start().await;
    let mut adm = s.login_admin().await;
    let mut b = s.login("bob").await;
    let mut c = s.login("carol").await;
    adm.expect("JOIN #lobby bob").await;
    adm.expect("JOIN #lobby carol").await;
    b.expect("JOIN #lobby carol").await;

    adm.send("/ban bob spamming").await;
    let kick = b.expect_prefix("KICK bob admin banned").await;
    assert!(kick.ends_with("spamming"), "{kick}");
    assert!(b.expect_closed().await.is_empty());
    c.expect(&kick).await;
    c.expect("PART #lobby bob kicked").await;
    // carol comes from the same address (every loopback client does): the
    // ban reaches her session too. The admin's does not.
    c.expect("KICK carol admin banned: spamming").await;
    assert!(c.expect_closed().await.is_empty());
    adm.expect(&kick).await;
    adm.expect("PART #lobby bob kicked").await;
    adm.expect("KICK carol admin banned: spamming").await;
    adm.expect("PART #lobby carol kicked").await;
    adm.expect("INFO banned bob (127.0.0.1)").await;
    adm.expect("INFO also disconnected from 127.0.0.1: carol")
        .await;

    // The nickname is banned.
    let mut b = s.connect().await;
    b.expect("NICK").await;
    b.send("bob").await;
    b.expect_prefix("BAN ").await;
    assert!(b.expect_closed().await.is_empty());
    // So is the address (every loopback client comes from 127.0.0.1).
    let mut d = s.connect().await;
    d.expect("NICK").await;
    d.send("dave").await;
    d.expect_prefix("BAN ").await;
    assert!(d.expect_closed().await.is_empty());
    // The admin stays.
    adm.send("still here").await;
    adm.expect("MSG #lobby admin still here").await;
    // The admin is exempt from address bans.
    adm.send("/quit").await;
    adm.wait_for("PART #lobby admin").await;
    assert!(adm.expect_closed().await.is_empty());
    let mut adm = s.login_admin().await;
    adm.send("/bans").await;
    let line = adm.expect_prefix("INFO bob 127.0.0.1 ").await;
    assert!(line.contains("by admin"), "{line}");
    assert!(line.ends_with("spamming"), "{line}");
    adm.expect_quiet("q").await;
    s.stop().await;
}

#[tokio::test]
async fn ban_of_an_absent_nickname_bans_only_that_nickname() {
    let s = TestServer::start().await;
    let mut adm = s.login_admin().await;
    adm.send("/ban ghost").await;
    adm.expect_prefix("INFO ").await;
    adm.send("/ban admin").await;
    adm.expect_prefix("ERROR not-permitted ").await;
    let mut g = s.connect().await;
    g.expect("NICK").await;
    g.send("GHOST").await;
    g.expect_prefix("BAN ").await;
    assert!(g.expect_closed().await.is_empty());
    let _alice = s.login("alice").await;
    adm.expect("JOIN #lobby alice").await;
    adm.send("/bans").await;
    adm.expect_prefix("INFO ghost - ").await;
    adm.expect_quiet("q").await;
    s.stop().await;
}

#[tokio::test]
async fn bans_lists_and_unban_by_nick_lets_the_user_back() {
    let s = TestServer::start().await;
    let mut adm = s.login_admin().await;
    adm.send("/bans").await;
    adm.expect("INFO no bans").await;
    let _b = s.login("bob").await;
    adm.expect("JOIN #lobby bob").await;
    adm.send("/ban bob").await;
    adm.expect("KICK bob admin banned").await;
    adm.expect("PART #lobby bob kicked").await;
    adm.expect_prefix("INFO ").await;
    adm.send("/bans").await;
    adm.expect_prefix("INFO bob 127.0.0.1 since ").await;
    adm.expect_quiet("q1").await;

    adm.send("/unban nobody").await;
    adm.expect_prefix("ERROR no-such-nick ").await;
    adm.send("/unban BOB").await;
    adm.expect_prefix("INFO unbanned bob 127.0.0.1 ").await;
    adm.expect_quiet("q2").await;
    adm.send("/bans").await;
    adm.expect("INFO no bans").await;

    // Nickname and address are both free again.
    let _b = s.login("bob").await;
    let _d = s.login("dave").await;
    s.stop().await;
}

#[tokio::test]
async fn ban_survives_a_restart() {
    let s = TestServer::start().await;
    let mut adm = s.login_admin().await;
    let _b = s.login("bob").await;
    adm.expect("JOIN #lobby bob").await;
    adm.send("/ban bob flooding").await;
    adm.wait_for("INFO ").await;
    drop(adm);
    let dir = s.stop().await;

    let s = TestServer::start_in(dir, |_| {}).await;
    let mut b = s.connect().await;
    b.expect("NICK").await;
    b.send("bob").await;
    let ban = b.expect_prefix("BAN ").await;
    assert!(ban.contains("flooding"), "{ban}");
    assert!(b.expect_closed().await.is_empty());
    let mut adm = s.login_admin().await;
    adm.send("/bans").await;
    adm.expect_prefix("INFO bob 127.0.0.1 since ").await;
    adm.send("/unban bob").await;
    adm.expect_prefix("INFO unbanned bob").await;
    let _b = s.login("bob").await;
    s.stop().await;
}

// ---- 5. line rules -------------------------------------------------------------

#[tokio::test]
async fn overlong_line_is_line_too_long_and_the_connection_stays_usable() {
    let s = TestServer::start().await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    a.send(&"x".repeat(5000)).await;
    a.expect_prefix("ERROR line-too-long ").await;
    a.send("after").await;
    a.expect("MSG #lobby alice after").await;
    b.expect("MSG #lobby alice after").await;
    s.stop().await;
}

#[tokio::test]
async fn line_too_long_is_reported_before_the_newline_arrives() {
    let s = TestServer::start().await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    a.send_raw(&[b'y'; 4097]).await;
    a.expect_prefix("ERROR line-too-long ").await;
    // The rest of that line is discarded up to its newline.
    a.send_raw(&[b'z'; 3000]).await;
    a.send_raw(b"tail of the long line\nnext\n").await;
    a.expect("MSG #lobby alice next").await;
    b.expect("MSG #lobby alice next").await;
    b.expect_quiet("b").await;
    s.stop().await;
}

#[tokio::test]
async fn line_of_exactly_4096_bytes_is_accepted() {
    let s = TestServer::start().await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    let text = "m".repeat(4095);
    a.send(&text).await;
    a.expect(&format!("MSG #lobby alice {text}")).await;
    b.expect(&format!("MSG #lobby alice {text}")).await;
    // One byte more is too long.
    a.send(&format!("{text}m")).await;
    a.expect_prefix("ERROR line-too-long ").await;
    b.expect_quiet("b").await;
    s.stop().await;
}

#[tokio::test]
async fn crlf_line_endings_are_accepted() {
    let s = TestServer::start().await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    a.send_raw(b"windows line\r\n/ping crlf\r\n").await;
    a.expect("MSG #lobby alice windows line").await;
    a.expect("PONG crlf").await;
    b.expect("MSG #lobby alice windows line").await;
    s.stop().await;
}

#[tokio::test]
async fn crlf_nickname_is_accepted() {
    let s = TestServer::start().await;
    let mut c = s.connect().await;
    c.expect("NICK").await;
    c.send_raw(b"bob\r\n").await;
    c.expect("WELCOME bob #lobby").await;
    s.stop().await;
}

#[tokio::test]
async fn invalid_utf8_is_invalid_utf8_and_the_connection_stays_usable() {
    let s = TestServer::start().await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    a.send_raw(b"bad \xff\xfe bytes\n").await;
    a.expect_prefix("ERROR invalid-utf8 ").await;
    a.send("fine").await;
    a.expect("MSG #lobby alice fine").await;
    b.expect("MSG #lobby alice fine").await;
    b.expect_quiet("b").await;
    s.stop().await;
}

#[tokio::test]
async fn control_characters_are_bad_text_and_reach_nobody() {
    let s = TestServer::start().await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    for bad in [
        "nul \u{0} here",
        "\u{1b}[31mred",
        "del \u{7f}",
        "csi \u{9b}31m",
        "bell \u{7}",
        "/me \u{1b}[2J",
        "/msg bob \u{0}",
        "lone cr \r in the middle",
    ] {
        a.send(bad).await;
        a.expect_prefix("ERROR bad-text ").await;
    }
    b.expect_quiet("b").await;
    a.send("tab\tallowed").await;
    a.expect("MSG #lobby alice tab\tallowed").await;
    b.expect("MSG #lobby alice tab\tallowed").await;
    s.stop().await;
}

// ---- 6. plaintext client ---------------------------------------------------------

#[tokio::test]
async fn plaintext_client_gets_tls_required_and_eof_while_others_chat() {
    let s = TestServer::start().await;
    let (mut a, mut b) = alice_and_bob(&s).await;

    let mut raw = TcpStream::connect(s.addr).await.expect("tcp connect");
    raw.write_all(b"hello\n").await.expect("raw write");
    let plaintext = async {
        let got = read_to_eof(&mut raw).await;
        assert_eq!(String::from_utf8_lossy(&got), TLS_REQUIRED);
    };
    let chat = async {
        for i in 0..20 {
            a.send(&format!("a{i}")).await;
            b.send(&format!("b{i}")).await;
            a.wait_for(&format!("MSG #lobby bob b{i}")).await;
            b.wait_for(&format!("MSG #lobby alice a{i}")).await;
        }
    };
    tokio::join!(plaintext, chat);
    a.sync("a").await;
    b.sync("b").await;
    s.stop().await;
}

// ---- 7. handshake deadline ----------------------------------------------------

const SHORT_DEADLINE: Duration = Duration::from_secs(1);

#[tokio::test]
async fn handshake_deadline_closes_a_client_that_sends_no_nickname() {
    let s = TestServer::start_with(|c| c.limits.handshake_timeout = SHORT_DEADLINE).await;
    let silent_nick = async {
        let start = Instant::now();
        let mut c = s.connect().await;
        c.expect("NICK").await;
        c.expect_prefix("ERROR timeout ").await;
        assert!(start.elapsed() >= SHORT_DEADLINE - Duration::from_millis(50));
        assert!(c.expect_closed().await.is_empty());
    };
    let silent_password = async {
        let mut c = s.connect().await;
        c.expect("NICK").await;
        c.send("admin").await;
        c.expect("PASS").await;
        c.expect_prefix("ERROR timeout ").await;
        assert!(c.expect_closed().await.is_empty());
    };
    tokio::join!(silent_nick, silent_password);
    s.stop().await;
}

#[tokio::test]
async fn handshake_deadline_closes_a_silent_raw_tcp_client() {
    let s = TestServer::start_with(|c| c.limits.handshake_timeout = SHORT_DEADLINE).await;
    let mut raw = TcpStream::connect(s.addr).await.expect("tcp connect");
    let got = read_to_eof(&mut raw).await;
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    s.stop().await;
}

#[tokio::test]
async fn handshake_deadline_does_not_close_a_logged_in_client() {
    let s = TestServer::start_with(|c| c.limits.handshake_timeout = SHORT_DEADLINE).await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    // Let the deadline pass (waiting for time itself, not for an event).
    tokio::time::sleep(SHORT_DEADLINE + Duration::from_millis(500)).await;
    a.send("still here").await;
    a.expect("MSG #lobby alice still here").await;
    b.expect("MSG #lobby alice still here").await;
    b.expect_quiet("b").await;
    s.stop().await;
}

// ---- 11. server full -------------------------------------------------------------

#[tokio::test]
async fn third_client_over_max_clients_gets_server_full() {
    let s = TestServer::start_with(|c| c.limits.max_clients = 2).await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    let mut c = s.connect().await;
    c.expect_prefix("ERROR server-full ").await;
    assert!(c.expect_closed().await.is_empty());
    a.send("still fine").await;
    a.expect("MSG #lobby alice still fine").await;
    b.expect("MSG #lobby alice still fine").await;

    // A slot frees once a client leaves.
    b.send("/quit").await;
    assert!(!b.expect_closed().await.is_empty());
    let mut c = connect_when_admitted(&s, STEP).await;
    c.send("carol").await;
    c.expect("WELCOME carol #lobby").await;
    s.stop().await;
}

#[tokio::test]
async fn handshaking_clients_count_towards_max_clients() {
    let s = TestServer::start_with(|c| c.limits.max_clients = 2).await;
    let _a = s.login("alice").await;
    let mut pending = s.connect().await;
    pending.expect("NICK").await;
    let mut c = s.connect().await;
    c.expect_prefix("ERROR server-full ").await;
    assert!(c.expect_closed().await.is_empty());
    pending.send("bob").await;
    pending.expect("WELCOME bob #lobby").await;
    s.stop().await;
}

// ---- 12. graceful shutdown and closing clients that do not read ---------------

/// Makes `c` (connected with a small receive buffer, not reading) fill its
/// socket: many large `PONG`s it never reads. `outbound_queue_bytes` must be
/// large enough that this does not overflow its queue.
async fn stuff_socket(c: &mut Client) {
    let ping = format!("/ping {}", "p".repeat(4000));
    for _ in 0..2000 {
        c.send(&ping).await;
    }
}

#[tokio::test]
async fn shutdown_sends_info_then_eof_and_does_not_wait_for_a_stalled_client() {
    let s = TestServer::start_with(|c| c.limits.outbound_queue = 64 << 20).await;
    let (mut a, mut b) = alice_and_bob(&s).await;
    let mut staller = connect_tls_small_rcvbuf(s.addr, &s.cert).await;
    staller.finish_login("staller").await;
    a.expect("JOIN #lobby staller").await;
    b.expect("JOIN #lobby staller").await;
    stuff_socket(&mut staller).await;
    staller.send("stuffed").await;
    // Everything the staller sent has been processed.
    a.expect("MSG #lobby staller stuffed").await;
    b.expect("MSG #lobby staller stuffed").await;

    let started = Instant::now();
    let clients = async {
        for c in [&mut a, &mut b] {
            c.expect_prefix("INFO ").await;
            let rest = c.expect_closed().await;
            assert!(rest.is_empty(), "EOF after the INFO: {rest:?}");
        }
    };
    // stop() itself fails the test if the server takes more than 6 s.
    let (_dir, ()) = tokio::join!(s.stop(), clients);
    eprintln!("stopped in {:?}", started.elapsed());
    drop(staller);
}

#[tokio::test]
async fn quitting_client_that_does_not_read_is_closed_within_the_drain_limit() {
    let s = TestServer::start_with(|c| {
        c.limits.max_clients = 1;
        c.limits.outbound_queue = 64 << 20;
    })
    .await;
    let mut staller = connect_tls_small_rcvbuf(s.addr, &s.cert).await;
    staller.finish_login("staller").await;
    stuff_socket(&mut staller).await;
    staller.send("/quit").await;
    // The staller keeps its socket open and reads nothing. Its slot must
    // still come back: the server gives up delivering to a closing client
    // after DRAIN_LIMIT (2 s).
    let mut c = connect_when_admitted(&s, tlschat_server_core::outbound::DRAIN_LIMIT + STEP).await;
    c.send("next").await;
    c.expect("WELCOME next #lobby").await;
    drop(staller);
    s.stop().await;
}

// ---- 10. addresses (Linux: all of 127/8 is local) -------------------------------

#[cfg(target_os = "linux")]
mod source_addresses {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    fn loopback(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    #[tokio::test]
    async fn ban_bans_the_source_address_only() {
        let s = TestServer::start().await;
        let mut adm = s.login_admin().await;
        let mut b = connect_tls_from(s.addr, &s.cert, loopback(2)).await;
        b.finish_login("bob").await;
        let mut c = connect_tls_from(s.addr, &s.cert, loopback(3)).await;
        c.finish_login("carol").await;

        adm.send("/ban bob").await;
        adm.wait_for("INFO ").await;
        b.wait_for("KICK bob admin banned").await;
        assert!(b.expect_closed().await.is_empty());

        // Another nickname from 127.0.0.2 is banned too.
        let mut d = connect_tls_from(s.addr, &s.cert, loopback(2)).await;
        d.expect("NICK").await;
        d.send("dave").await;
        d.expect_prefix("BAN ").await;
        assert!(d.expect_closed().await.is_empty());
        // 127.0.0.3 and 127.0.0.1 are not.
        let mut e = connect_tls_from(s.addr, &s.cert, loopback(3)).await;
        e.finish_login("erin").await;
        let _f = s.login("frank").await;
        c.wait_for("JOIN #lobby frank").await;
        c.send("unaffected").await;
        c.expect("MSG #lobby carol unaffected").await;
        e.wait_for("MSG #lobby carol unaffected").await;

        adm.send("/bans").await;
        adm.wait_for("INFO bob 127.0.0.2 since ").await;
        // Unbanning by address lifts it.
        adm.send("/unban 127.0.0.2").await;
        adm.expect_prefix("INFO unbanned bob 127.0.0.2").await;
        let mut d = connect_tls_from(s.addr, &s.cert, loopback(2)).await;
        d.finish_login("dave").await;
        s.stop().await;
    }

    /// True if a socket on `[::]` also accepts IPv4 (not `bindv6only`).
    fn dual_stack_available() -> bool {
        let Ok(l) = std::net::TcpListener::bind("[::]:0") else {
            return false;
        };
        let Ok(addr) = l.local_addr() else {
            return false;
        };
        std::net::TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], addr.port())),
            Duration::from_secs(1),
        )
        .is_ok()
    }

    #[tokio::test]
    async fn dual_stack_listener_compares_addresses_in_ipv4_form() {
        if !dual_stack_available() {
            eprintln!("skipped: no dual-stack [::] listener here");
            return;
        }
        let s = TestServer::start_with(|c| c.listen = "[::]:0".parse().unwrap()).await;
        let v4 = SocketAddr::from(([127, 0, 0, 1], s.addr.port()));
        let mut adm = connect_tls(v4, &s.cert).await;
        adm.expect("NICK").await;
        adm.send("admin").await;
        adm.expect("PASS").await;
        adm.send(ADMIN_PASSWORD).await;
        adm.expect("WELCOME admin #lobby").await;
        let mut b = connect_tls_from(v4, &s.cert, loopback(2)).await;
        b.finish_login("bob").await;
        // The socket sees ::ffff:127.0.0.2; the ban is on 127.0.0.2.
        adm.send("/ban bob").await;
        adm.wait_for("INFO ").await;
        adm.send("/bans").await;
        adm.wait_for("INFO bob 127.0.0.2 since ").await;
        b.wait_for("KICK bob").await;
        drop(adm);
        let dir = s.stop().await;

        // An IPv4-only listener sees the plain IPv4 address: still banned.
        let s = TestServer::start_in(dir, |_| {}).await;
        let mut d = connect_tls_from(s.addr, &s.cert, loopback(2)).await;
        d.expect("NICK").await;
        d.send("dave").await;
        d.expect_prefix("BAN ").await;
        s.stop().await;
    }
}

#[tokio::test]
async fn ipv6_loopback_client_can_log_in() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: ::1 is not available");
        return;
    }
    let s = TestServer::start_with(|c| c.listen = "[::1]:0".parse().unwrap()).await;
    assert!(s.addr.is_ipv6());
    let (mut a, mut b) = alice_and_bob(&s).await;
    a.send("over v6").await;
    b.expect("MSG #lobby alice over v6").await;
    let mut adm = s.login_admin().await;
    adm.send("/ban bob").await;
    adm.wait_for("INFO ").await;
    adm.send("/bans").await;
    adm.wait_for("INFO bob ::1 since ").await;
    s.stop().await;
}
