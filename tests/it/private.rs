//! A closed server (join password, `private = true`, invite codes) against
//! raw clients over real TLS: who is asked `PASS join`, what a right or a
//! wrong answer does, the lockout every kind of `PASS` shares, and invite
//! codes made with `/invite` (used up, expired, revoked, reconnecting).
//! Time is moved with a `ManualClock`; flags go through the binary. That a
//! server on its defaults stays v1 is protocol.rs's golden transcript
//! (`handshake_is_exactly_as_documented`).

use crate::harness::*;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tlschat_protocol::{Fingerprint, InviteLink};
use tlschat_server_core::clock::ManualClock;
use tlschat_server_core::config::ServerConfig;

const JOIN_PASSWORD: &str = "пароль-密码-🔑 four random words";
const WRONG: &str = "wrong password or invite code";

fn closed(config: &mut ServerConfig) {
    config.access.join_password = Some(JOIN_PASSWORD.to_owned());
}

/// Answers `NICK` with `nick`; the next line must be `PASS join`.
async fn asked_to_join(c: &mut Client, nick: &str) {
    c.expect("NICK").await;
    c.send(nick).await;
    c.expect("PASS join").await;
}

/// Logs in as `nick` answering `PASS join` with `secret`; returns the
/// lines after `USERS` that came before a `/ping` round trip.
async fn join_with(s: &TestServer, nick: &str, secret: &str) -> (Client, Vec<String>) {
    let mut c = s.connect().await;
    asked_to_join(&mut c, nick).await;
    c.send(secret).await;
    c.expect(&format!("WELCOME {nick} #lobby")).await;
    c.expect(&format!("JOIN #lobby {nick}")).await;
    c.expect_prefix("USERS #lobby").await;
    c.send("/ping after-login").await;
    let mut extra = Vec::new();
    loop {
        let line = c.recv().await;
        if line == "PONG after-login" {
            return (c, extra);
        }
        extra.push(line);
    }
}

/// Tries `nick` with `secret` as the join answer; returns the answer line.
async fn join_attempt(s: &TestServer, nick: &str, secret: &str) -> (String, Client) {
    let mut c = s.connect().await;
    asked_to_join(&mut c, nick).await;
    c.send(secret).await;
    (c.recv().await, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_password_admits_and_a_wrong_one_is_refused() {
    let s = TestServer::start_with(|c| {
        closed(c);
        c.limits.lockout_after = 20;
    })
    .await;
    let (mut alice, extra) = join_with(&s, "alice", JOIN_PASSWORD).await;
    assert!(extra.is_empty(), "no invite, no INFO: {extra:?}");

    // Exactly as typed: not trimmed, not case-folded.
    for wrong in [
        "пароль-密码-🔑 four random word",
        "ПАРОЛЬ-密码-🔑 four random words",
        " пароль-密码-🔑 four random words",
        "",
    ] {
        let (answer, mut c) = join_attempt(&s, "bob", wrong).await;
        assert_eq!(answer, format!("REFUSE {WRONG}"), "{wrong:?}");
        assert!(c.expect_closed().await.is_empty());
    }

    // The gate comes before the in-use check: an outsider learns nothing
    // about who is online, and an admitted client is not asked again.
    let (answer, _c) = join_attempt(&s, "alice", "guess").await;
    assert_eq!(answer, format!("REFUSE {WRONG}"));
    let mut c = s.connect().await;
    asked_to_join(&mut c, "ALICE").await;
    c.send(JOIN_PASSWORD).await;
    c.expect("ERROR nick-taken ALICE is in use; choose another nickname")
        .await;
    c.expect("NICK").await;
    c.send("bob").await;
    c.expect("WELCOME bob #lobby").await;
    alice.wait_for("JOIN #lobby bob").await;

    // An account is asked for its own password, never for the join one.
    let mut admin = s.connect().await;
    admin.finish_admin_login(ADMIN_PASSWORD).await;
}

/// Every kind of `PASS` counts towards one lockout per address: wrong join
/// answers lock out the admin's login from the same address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_join_answers_lock_out_an_account_login_from_the_address() {
    let s = TestServer::start_with(|c| {
        closed(c);
        c.limits.lockout_after = 3;
        c.limits.lockout_time = Duration::from_secs(600);
    })
    .await;
    for i in 0..3 {
        let (answer, _c) = join_attempt(&s, "mallory", &format!("guess {i} 🔑")).await;
        assert_eq!(answer, format!("REFUSE {WRONG}"));
    }
    let mut c = s.connect().await;
    c.expect("NICK").await;
    c.send("admin").await;
    let line = c.recv().await;
    assert!(
        line.starts_with("ERROR rate-limited ") && line.contains("too many wrong passwords"),
        "{line}"
    );
    // The right join password is no way around it either.
    let mut c = s.connect().await;
    c.expect("NICK").await;
    c.send("mallory").await;
    let line = c.recv().await;
    assert!(line.starts_with("ERROR rate-limited "), "{line}");
}

/// `private = true` without a join password: only invite codes open it,
/// and a password-like answer is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_server_without_a_join_password_takes_only_codes() {
    let s = TestServer::start_with(|c| c.access.private = true).await;
    let (answer, _c) = join_attempt(&s, "bob", "").await;
    assert_eq!(answer, format!("REFUSE {WRONG}"));
    let (answer, _c) = join_attempt(&s, "bob", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").await;
    assert_eq!(answer, format!("REFUSE {WRONG}"));
    s.login_admin().await;
}

/// A clock standing at 2026-11-25T08:00:00Z until a test moves it.
fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        UNIX_EPOCH + Duration::from_secs(1_795_593_600),
    ))
}

/// A private server (invites only) on `clock`, and its admin.
async fn private_server(clock: &Arc<ManualClock>) -> (TestServer, Client) {
    let clock = clock.clone();
    let s = TestServer::start_with(move |c| {
        c.access.private = true;
        c.clock = clock;
        c.limits.lockout_after = 50;
    })
    .await;
    let admin = s.login_admin().await;
    (s, admin)
}

/// `/invite ARGS` by `admin`: the link (parsed) and the terms line.
async fn invite(admin: &mut Client, args: &str) -> (InviteLink, String) {
    admin.send(format!("/invite {args}").trim_end()).await;
    let line = admin.expect_prefix("INFO invite tlschat://").await;
    let link = line.strip_prefix("INFO invite ").expect("the link");
    let link = InviteLink::parse(link).unwrap_or_else(|e| panic!("{link}: {e}"));
    let terms = admin.expect_prefix("INFO invite ").await;
    (link, terms)
}

fn code_of(link: &InviteLink) -> String {
    link.code().expect("a code").expose().to_owned()
}

const INVITEE_INFO: &str = "INFO you came in with an invite valid until 2026-11-26T08:00:00Z; /register PASSWORD keeps your nickname after that";

/// One use admits one nickname, which may come back until the code
/// expires; nobody else gets in on it, and after expiry nobody at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_is_used_up_by_one_nickname_which_returns_until_it_expires() {
    let clock = manual_clock();
    let (s, mut admin) = private_server(&clock).await;
    let (link, terms) = invite(&mut admin, "").await;
    assert_eq!(link.fingerprint(), Fingerprint::of_der(&s.cert));
    assert_eq!(link.server().port(), s.addr.port());
    let code = code_of(&link);
    let prefix: String = code.chars().take(6).collect();
    assert_eq!(
        terms,
        format!("INFO invite {prefix}: 1 uses, until 2026-11-26T08:00:00Z")
    );

    // Codes are case-insensitive.
    let (mut bob, extra) = join_with(&s, "bob", &code.to_uppercase()).await;
    assert_eq!(extra, [INVITEE_INFO]);
    let (answer, _c) = join_attempt(&s, "carol", &code).await;
    assert_eq!(answer, format!("REFUSE {WRONG}"), "the one use is gone");

    admin.send("/invites").await;
    assert_eq!(
        admin.wait_for("INFO ").await,
        format!("INFO {prefix} 0 uses left, until 2026-11-26T08:00:00Z, by admin, used by bob")
    );

    bob.send("/quit").await;
    bob.expect_closed().await;
    clock.advance(Duration::from_secs(23 * 3600));
    let (bob, extra) = join_with(&s, "BOB", &code).await;
    assert_eq!(extra, [INVITEE_INFO], "the bound nickname comes back free");
    drop(bob);

    clock.advance(Duration::from_secs(2 * 3600));
    let (answer, _c) = join_attempt(&s, "bob", &code).await;
    assert_eq!(answer, format!("REFUSE {WRONG}"), "expired after 24 h");
    admin.send("/invites").await;
    assert_eq!(admin.wait_for("INFO ").await, "INFO no invites");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_invite_admits_nobody() {
    let clock = manual_clock();
    let (s, mut admin) = private_server(&clock).await;
    let (link, terms) = invite(&mut admin, "5 2h").await;
    let code = code_of(&link);
    let prefix: String = code.chars().take(6).collect();
    assert_eq!(
        terms,
        format!("INFO invite {prefix}: 5 uses, until 2026-11-25T10:00:00Z")
    );
    admin
        .send(&format!("/uninvite {}", code.to_uppercase()))
        .await;
    admin.expect(&format!("INFO revoked {prefix}")).await;
    let (answer, _c) = join_attempt(&s, "bob", &code).await;
    assert_eq!(answer, format!("REFUSE {WRONG}"));
    admin.send(&format!("/uninvite {prefix}")).await;
    admin
        .expect(&format!("ERROR no-such-nick no invite matches {prefix}"))
        .await;
}

/// A right code with a nickname in use takes nothing: `nick-taken`, `NICK`
/// again, no second `PASS join`, and the use goes to the nickname that gets
/// in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_answered_for_a_taken_nickname_is_used_by_the_next_one() {
    let clock = manual_clock();
    let (s, mut admin) = private_server(&clock).await;
    let (link, _) = invite(&mut admin, "2").await;
    let code = code_of(&link);
    let (_alice, _) = join_with(&s, "alice", &code).await;
    let mut c = s.connect().await;
    asked_to_join(&mut c, "alice").await;
    c.send(&code).await;
    c.expect("ERROR nick-taken alice is in use; choose another nickname")
        .await;
    c.expect("NICK").await;
    c.send("dave").await;
    c.expect("WELCOME dave #lobby").await;
    c.expect("JOIN #lobby dave").await;
    c.expect_prefix("USERS #lobby").await;
    c.expect(INVITEE_INFO).await;
    admin.send("/invites").await;
    let line = admin.wait_for("INFO ").await;
    assert!(
        line.contains(" 0 uses left,") && line.ends_with("used by alice dave"),
        "{line}"
    );
}

/// The admin's caps and the argument checks; a user may not invite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_arguments_and_caps() {
    let clock = manual_clock();
    let s = TestServer::start_with({
        let clock = clock.clone();
        move |c| c.clock = clock
    })
    .await;
    let mut admin = s.login_admin().await;
    for (args, prefix) in [
        ("0", "ERROR bad-argument "),
        ("1001", "ERROR not-permitted at most 1000 uses"),
        ("1 366d", "ERROR bad-argument "),
        ("x", "ERROR bad-argument "),
    ] {
        admin.send(&format!("/invite {args}")).await;
        admin.expect_prefix(prefix).await;
    }
    let (_, terms) = invite(&mut admin, "1000 365d").await;
    assert!(
        terms.ends_with(": 1000 uses, until 2027-11-25T08:00:00Z"),
        "{terms}"
    );
    let mut bob = s.login("bob").await;
    let not_mod = "ERROR not-permitted only moderators and the admin may do that";
    let not_admin = "ERROR not-permitted only the admin may do that";
    for (cmd, refused) in [
        ("/invite", not_mod),
        ("/invites", not_mod),
        ("/uninvite abcdef", not_mod),
        ("/unregister bob", not_admin),
        ("/registration off", not_admin),
    ] {
        bob.send(cmd).await;
        bob.expect(refused).await;
    }
}

/// Expired codes leave the database at the next sweep, not only the lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_invites_are_swept_out_of_the_database() {
    let clock = manual_clock();
    let s = TestServer::start_with({
        let clock = clock.clone();
        move |c| {
            c.clock = clock;
            c.sweep_every = Duration::from_millis(50);
        }
    })
    .await;
    let mut admin = s.login_admin().await;
    invite(&mut admin, "1 1h").await;
    invite(&mut admin, "1 2h").await;
    let db = rusqlite::Connection::open(s.data_dir().join("tlschat.db")).expect("tlschat.db");
    let count = || -> i64 {
        db.query_row("SELECT count(*) FROM invites", [], |r| r.get(0))
            .expect("count")
    };
    assert_eq!(count(), 2);
    clock.advance(Duration::from_secs(3600));
    let deadline = std::time::Instant::now() + STEP;
    while count() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "not swept: {}",
            count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Under `invite-only` a session that came in with an invite registers
/// without a code; from then on its nickname is an account, which answers
/// `PASS` (its own password), not `PASS join`, even on a closed server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitee_registers_and_then_logs_in_as_an_account() {
    let clock = manual_clock();
    let s = TestServer::start_with({
        let clock = clock.clone();
        move |c| {
            c.clock = clock;
            c.access.private = true;
            c.access.registration = tlschat_server_core::Registration::InviteOnly;
        }
    })
    .await;
    let mut admin = s.login_admin().await;
    let (link, _) = invite(&mut admin, "").await;
    let (mut bob, extra) = join_with(&s, "bob", &code_of(&link)).await;
    assert_eq!(extra, [INVITEE_INFO]);
    bob.send("/register пароль-密码-🔑").await;
    bob.expect("INFO registered bob: connecting as bob now asks for this password")
        .await;
    bob.send("/quit").await;
    bob.expect_closed().await;
    clock.advance(Duration::from_secs(48 * 3600));
    let mut c = s.connect().await;
    c.expect("NICK").await;
    c.send("bob").await;
    c.expect("PASS").await;
    c.send("пароль-密码-🔑").await;
    c.expect("WELCOME bob #lobby").await;
}

/// A nickname that becomes an account while another connection waits at
/// its `PASS join` is not handed to that connection: the join password
/// admits, but the nickname now asks its account's `PASS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nickname_registered_during_a_join_prompt_asks_its_password() {
    let s = TestServer::start_with(|c| {
        closed(c);
        c.limits.lockout_after = 20;
    })
    .await;
    let (mut alice, _) = join_with(&s, "alice", JOIN_PASSWORD).await;
    let (mut bob, _) = join_with(&s, "bob", JOIN_PASSWORD).await;
    alice.wait_for("JOIN #lobby bob").await;
    let mut mallory = s.connect().await;
    asked_to_join(&mut mallory, "bob").await;
    bob.send("/register bobs-own-password").await;
    bob.expect_prefix("INFO registered bob").await;
    bob.send("/quit").await;
    alice.wait_for("PART #lobby bob quit").await;

    mallory.send(JOIN_PASSWORD).await;
    mallory
        .expect("ERROR nick-taken bob became an account meanwhile; send it again for its password")
        .await;
    mallory.expect("NICK").await;
    mallory.send("bob").await;
    mallory.expect("PASS").await;
    mallory.send("guess").await;
    mallory.expect("REFUSE wrong password").await;
}

/// A code the server cannot check (its database held by another writer
/// past the busy timeout) gets an honest `server-full` and is no wrong
/// guess: with a lockout after one wrong answer, the same code admits
/// once the database is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_the_database_cannot_check_is_no_wrong_guess() {
    let clock = manual_clock();
    let s = {
        let clock = clock.clone();
        TestServer::start_with(move |c| {
            c.access.private = true;
            c.clock = clock;
            c.limits.lockout_after = 1;
        })
        .await
    };
    let mut admin = s.login_admin().await;
    let (link, _) = invite(&mut admin, "").await;
    let code = code_of(&link);
    let db = rusqlite::Connection::open(s.data_dir().join("tlschat.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (answer, _c) = join_attempt(&s, "dora", &code).await;
    assert_eq!(
        answer,
        "ERROR server-full the server could not check the code (its database is unavailable); try again later"
    );
    db.execute_batch("COMMIT").unwrap();
    drop(db);
    let (_dora, extra) = join_with(&s, "dora", &code).await;
    assert_eq!(extra.len(), 1, "{extra:?}");
}
