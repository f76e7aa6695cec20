//! Accounts made from the chat: `/register` makes a nickname ask `PASS`,
//! `/password` changes it under the lockout, the admin's `/unregister`
//! frees it, and the registration policy (`open`, `invite-only`, `off`,
//! the per-address cap, `max_accounts`) decides who may register. Real TLS
//! against the in-process server.

use crate::harness::*;

use tlschat_server_core::config::ServerConfig;
use tlschat_server_core::Registration;

const PASSWORD: &str = "пароль-密码-🔑";

/// Connects as `nick`, which must be an account: answers `PASS` with
/// `password`; returns the answer line.
async fn account_attempt(s: &TestServer, nick: &str, password: &str) -> (String, Client) {
    let mut c = s.connect().await;
    c.expect("NICK").await;
    c.send(nick).await;
    c.expect("PASS").await;
    c.send(password).await;
    (c.recv().await, c)
}

async fn register(c: &mut Client, args: &str) -> String {
    c.send(&format!("/register {args}")).await;
    c.wait_for("").await
}

/// Register, then the nickname asks its password: a wrong one is refused,
/// the right one (in any script) admits, and nobody else gets the name,
/// online or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_nickname_asks_its_password_and_cannot_be_taken() {
    let s = TestServer::start_with(|c| c.limits.lockout_after = 20).await;
    let mut alice = s.login("Alice").await;
    assert_eq!(
        register(&mut alice, PASSWORD).await,
        "INFO registered Alice: connecting as Alice now asks for this password"
    );
    assert_eq!(
        register(&mut alice, PASSWORD).await,
        "ERROR not-permitted Alice is already an account; /password OLD NEW changes its password"
    );
    for bad in ["short", "two words", ""] {
        let line = register(&mut alice, bad).await;
        assert!(line.starts_with("ERROR bad-argument "), "{bad:?}: {line}");
    }

    // Someone else, while Alice is online: taken, as in v1.
    let mut c = s.connect().await;
    c.expect("NICK").await;
    c.send("alice").await;
    c.expect("ERROR nick-taken alice is in use; choose another nickname")
        .await;
    alice.send("/quit").await;
    alice.expect_closed().await;
    // And while she is offline.
    let (answer, _c) = account_attempt(&s, "ALICE", "").await;
    assert_eq!(answer, "REFUSE wrong password");
    let (answer, _c) = account_attempt(&s, "alice", PASSWORD).await;
    assert_eq!(answer, "WELCOME alice #lobby");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_changes_under_the_lockout_and_unregister_frees_the_name() {
    let s = TestServer::start_with(|c| c.limits.lockout_after = 2).await;
    let mut bob = s.login("bob").await;
    register(&mut bob, PASSWORD).await;
    bob.send("/password wrong-old новый-пароль").await;
    bob.expect("ERROR not-permitted wrong password").await;
    bob.send(&format!("/password {PASSWORD} новый-пароль-🔐"))
        .await;
    bob.expect("INFO password changed").await;
    bob.send("/password only-one").await;
    bob.expect_prefix("ERROR bad-argument ").await;
    // The right OLD in between cleared nothing: a second wrong one locks
    // the address out, logins included.
    bob.send("/password wrong-again новый-пароль").await;
    bob.expect("ERROR not-permitted wrong password").await;
    bob.send("/password новый-пароль-🔐 третий-пароль").await;
    bob.expect_prefix("ERROR rate-limited ").await;
    let mut c = s.connect().await;
    c.expect("NICK").await;
    c.send("admin").await;
    c.expect_prefix("ERROR rate-limited ").await;
    drop(bob);

    let dir = s.stop().await;
    // A restart forgets the lockout; the database keeps the new password.
    let s = TestServer::start_in(dir, |_| {}).await;
    let (answer, _c) = account_attempt(&s, "bob", PASSWORD).await;
    assert_eq!(answer, "REFUSE wrong password");
    let (answer, _c) = account_attempt(&s, "bob", "новый-пароль-🔐").await;
    assert_eq!(answer, "WELCOME bob #lobby");
    drop(_c);

    let mut admin = s.login_admin().await;
    admin.send("/unregister BOB").await;
    admin.expect("INFO unregistered BOB").await;
    admin.send("/unregister bob").await;
    admin.expect("ERROR no-such-nick bob is no account").await;
    admin.send("/unregister admin").await;
    admin.expect_prefix("ERROR not-permitted ").await;
    let mut bob = s.login("bob").await;
    bob.send("/password новый-пароль-🔐 третий-пароль").await;
    bob.expect("ERROR not-permitted bob is no account; /register PASSWORD makes it one")
        .await;
}

/// `off` and `invite-only` from the configuration, `/registration` over
/// it until `default`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registration_policy_decides_who_registers() {
    let s = TestServer::start_with(|c: &mut ServerConfig| {
        c.access.registration = Registration::Off;
    })
    .await;
    let mut admin = s.login_admin().await;
    let mut carol = s.login("carol").await;
    assert_eq!(
        register(&mut carol, PASSWORD).await,
        "ERROR not-permitted registration is off on this server; ask its operator"
    );
    admin.send("/registration").await;
    admin
        .wait_for("INFO registration is off (configured)")
        .await;
    admin.send("/registration invite-only").await;
    admin.wait_for("INFO registration is now invite-only").await;
    assert_eq!(
        register(&mut carol, PASSWORD).await,
        "ERROR not-permitted registration needs an invite here: /register PASSWORD CODE"
    );
    let fake = "a".repeat(32);
    assert_eq!(
        register(&mut carol, &format!("{PASSWORD} {fake}")).await,
        "ERROR not-permitted that invite code is not valid (used up, expired or revoked)"
    );
    admin.send("/invite").await;
    let link = admin.wait_for("INFO invite tlschat://").await;
    let code = link.rsplit("code=").next().expect("a code").to_owned();
    assert_eq!(
        register(&mut carol, &format!("{PASSWORD} {code}")).await,
        "INFO registered carol: connecting as carol now asks for this password"
    );
    let mut dave = s.login("dave").await;
    assert_eq!(
        register(&mut dave, &format!("{PASSWORD} {code}")).await,
        "ERROR not-permitted that invite code is not valid (used up, expired or revoked)",
        "the code's one use went to carol"
    );
    admin.send("/registration default").await;
    admin
        .wait_for("INFO registration is now off (configured)")
        .await;
    admin.send("/registration open").await;
    admin.wait_for("INFO registration is now open").await;
    let dir = s.stop().await;
    // Saved: it outlives a restart.
    let s = TestServer::start_in(dir, |c| c.access.registration = Registration::Off).await;
    let mut dave = s.login("dave").await;
    assert_eq!(
        register(&mut dave, PASSWORD).await,
        "INFO registered dave: connecting as dave now asks for this password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_capped_per_address_and_in_all() {
    let s = TestServer::start_with(|c| {
        c.limits.registrations_per_address = 2;
        c.limits.max_accounts = 4;
    })
    .await;
    for nick in ["u1", "u2"] {
        let mut c = s.login(nick).await;
        let line = register(&mut c, PASSWORD).await;
        assert!(line.starts_with("INFO registered "), "{line}");
    }
    let mut u3 = s.login("u3").await;
    assert_eq!(
        register(&mut u3, PASSWORD).await,
        "ERROR rate-limited at most 2 registrations a day from your address"
    );

    let s2 = TestServer::start_with(|c| {
        c.limits.registrations_per_address = 0;
        c.limits.max_accounts = 2;
    })
    .await;
    let mut v1 = s2.login("v1").await;
    let line = register(&mut v1, PASSWORD).await;
    assert!(line.starts_with("INFO registered "), "{line}");
    let mut v2 = s2.login("v2").await;
    assert_eq!(
        register(&mut v2, PASSWORD).await,
        "ERROR not-permitted this server has all the accounts it takes; ask its operator"
    );
}

/// A right answer clears no wrong ones: an address that knows its own
/// account's password cannot use it to reset its count of guesses at the
/// admin's (all kinds of secret share one lockout record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_right_password_does_not_reset_the_guesses_at_another() {
    let s = TestServer::start_with(|c| c.limits.lockout_after = 3).await;
    let mut eve = s.login("eve").await;
    register(&mut eve, "evepassword1").await;
    for _ in 0..2 {
        let (answer, _c) = admin_attempt(s.addr, &s.cert, "guess").await;
        assert_eq!(answer, "REFUSE wrong password");
    }
    eve.send("/password evepassword1 evepassword2").await;
    eve.expect("INFO password changed").await;
    let (answer, _c) = admin_attempt(s.addr, &s.cert, "guess").await;
    assert_eq!(answer, "REFUSE wrong password");
    let mut c = s.connect().await;
    c.expect("NICK").await;
    c.send("admin").await;
    c.expect_prefix("ERROR rate-limited ").await;
}

/// Registrations running at once from one address cannot pass its cap
/// together: the cap is checked where the account is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_registrations_from_one_address_stop_at_its_cap() {
    let s = TestServer::start_with(|c| {
        c.limits.registrations_per_address = 3;
        c.limits.lockout_after = 50;
    })
    .await;
    let mut sessions = Vec::new();
    for i in 0..8 {
        sessions.push(s.login(&format!("p{i}")).await);
    }
    for c in &mut sessions {
        c.send(&format!("/register {PASSWORD}")).await;
    }
    let mut made = 0;
    for c in &mut sessions {
        let mut line = c.recv().await;
        while line.starts_with("JOIN ") {
            line = c.recv().await;
        }
        if line.starts_with("INFO registered ") {
            made += 1;
        } else {
            assert_eq!(
                line,
                "ERROR rate-limited at most 3 registrations a day from your address"
            );
        }
    }
    assert_eq!(made, 3, "exactly the cap");
}

/// Under `invite-only`, a `/register PASSWORD CODE` refused for another
/// reason spends none of the code's uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_registration_spends_no_use_of_its_code() {
    let s = TestServer::start_with(|c: &mut ServerConfig| {
        c.access.registration = Registration::InviteOnly;
        c.limits.max_accounts = 1;
    })
    .await;
    let mut admin = s.login_admin().await;
    admin.send("/invite 2").await;
    let link = admin.wait_for("INFO invite tlschat://").await;
    let terms = admin.wait_for("INFO invite ").await;
    assert!(terms.contains(": 2 uses, until "), "{terms}");
    let code = link.rsplit("code=").next().expect("a code").to_owned();
    let mut carol = s.login("carol").await;
    assert_eq!(
        register(&mut carol, &format!("{PASSWORD} {code}")).await,
        "ERROR not-permitted this server has all the accounts it takes; ask its operator"
    );
    admin.send("/invites").await;
    let listed = admin.wait_for("INFO ").await;
    assert!(listed.contains(" 2 uses left, "), "{listed}");
}
