//! Moderation over real TLS: timed bans that end by themselves (a manual
//! clock stands in for the passing time), the limits of a moderator's
//! power, and roles that change while their holders are connected.

use std::time::Duration;

use crate::harness::*;

/// Polls `bans.txt` until `done` holds for its text (the sweeper runs
/// every 100 ms in these tests), for at most [`STEP`].
async fn bans_file_until(s: &TestServer, done: impl Fn(&str) -> bool) -> String {
    let path = s.data_dir().join("bans.txt");
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if done(&text) || tokio::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_timed_ban_runs_out_and_the_sweeper_drops_it() {
    let (s, clock) = TestServer::start_clocked().await;
    let mut adm = s.login_admin().await;
    let mut bob = s.login("bob").await;
    adm.wait_for("JOIN #lobby bob").await;
    adm.send("/ban bob 30m спам 垃圾 🚫").await;
    adm.wait_for("INFO banned bob (127.0.0.1) until 2026-11-24T14:30:00Z")
        .await;
    bob.expect("KICK bob admin banned: спам 垃圾 🚫").await;
    adm.send("/bans").await;
    adm.expect(
        "INFO bob 127.0.0.1 since 2026-11-24T14:00:00Z until 2026-11-24T14:30:00Z by admin: спам 垃圾 🚫",
    )
    .await;

    // Still banned a minute before the end.
    clock.advance(Duration::from_secs(29 * 60));
    let mut again = s.connect().await;
    again.expect("NICK").await;
    again.send("bob").await;
    again
        .expect("BAN you are banned from this server: спам 垃圾 🚫")
        .await;
    // A sweep or two later, still in the file.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(s.data_dir().join("bans.txt")).unwrap();
    assert!(text.contains("\nbob 127.0.0.1 "), "{text}");

    clock.advance(Duration::from_secs(2 * 60));
    let mut back = s.connect().await;
    back.finish_login("bob").await;
    adm.wait_for("JOIN #lobby bob").await;
    adm.send("/bans").await;
    adm.expect("INFO no bans").await;
    let text = bans_file_until(&s, |t| !t.contains("bob")).await;
    assert!(!text.contains("bob"), "expired ban not swept: {text}");
    s.stop().await;
}

/// The admin's ban without a duration stays (v1), also past any clock.
#[tokio::test]
async fn the_admins_ban_without_a_duration_stays() {
    let (s, clock) = TestServer::start_clocked().await;
    let mut adm = s.login_admin().await;
    adm.send("/ban mallory").await;
    adm.expect("INFO banned mallory (not connected: nickname only)")
        .await;
    adm.send("/ban 2001:db8:1::/48 1w").await;
    adm.expect("INFO banned 2001:db8:1::/48 (address only) until 2026-12-01T14:00:00Z")
        .await;
    clock.advance(Duration::from_secs(400 * 86_400));
    let mut m = s.connect().await;
    m.expect("NICK").await;
    m.send("mallory").await;
    m.expect("BAN you are banned from this server").await;
    let text = bans_file_until(&s, |t| !t.contains("2001:db8:1::/48")).await;
    assert!(text.contains("\nmallory - "), "{text}");
    assert!(!text.contains("2001:db8:1::/48"), "{text}");
    s.stop().await;
}

/// A moderator's shorter ban on what the admin banned for longer is
/// refused and changes nothing: the admin's ban holds past it.
#[tokio::test]
async fn a_moderator_cannot_shorten_the_admins_ban() {
    let (s, clock) = TestServer::start_clocked_in(data_dir_with_accounts(&["mod1"])).await;
    let mut adm = s.login_admin().await;
    adm.send("/op mod1").await;
    adm.expect("INFO mod1 is now a moderator").await;
    let mut m = s.login_account("mod1").await;
    adm.wait_for("JOIN #lobby mod1").await;
    adm.send("/ban bob").await;
    adm.expect("INFO banned bob (not connected: nickname only)")
        .await;
    adm.send("/ban 198.51.100.0/24 2d").await;
    adm.expect("INFO banned 198.51.100.0/24 (address only) until 2026-11-26T14:00:00Z")
        .await;
    let before = std::fs::read_to_string(s.data_dir().join("bans.txt")).unwrap();

    m.send("/ban bob 1m").await;
    m.expect(
        "ERROR not-permitted bob is banned for longer (with no end); only the admin may shorten it",
    )
    .await;
    m.send("/ban 198.51.100.0/24 1d мод").await;
    m.expect("ERROR not-permitted 198.51.100.0/24 is banned for longer (until 2026-11-26T14:00:00Z); only the admin may shorten it")
        .await;
    // A longer one is the moderator's to make.
    m.send("/ban 198.51.100.0/24 7d").await;
    m.expect("INFO banned 198.51.100.0/24 (address only) until 2026-12-01T14:00:00Z")
        .await;
    let after = std::fs::read_to_string(s.data_dir().join("bans.txt")).unwrap();
    assert!(after.contains("\nbob - "), "{after}");
    assert_eq!(
        before.lines().find(|l| l.starts_with("bob ")),
        after.lines().find(|l| l.starts_with("bob ")),
    );

    clock.advance(Duration::from_secs(2 * 60));
    let mut bob = s.connect().await;
    bob.expect("NICK").await;
    bob.send("bob").await;
    bob.expect("BAN you are banned from this server").await;
    adm.send("/bans").await;
    adm.expect_prefix("INFO bob - since 2026-11-24T14:00:00Z by admin")
        .await;
    s.stop().await;
}

/// `/op` gives a connected account a moderator's rights at once (and its
/// `@` in `USERS`), `/deop` takes them back; within them, a moderator
/// kicks and bans users only, and for a week at most.
#[tokio::test]
async fn op_applies_live_and_a_moderator_stays_within_its_limits() {
    let (s, _clock) = TestServer::start_clocked_in(data_dir_with_accounts(&["mod1"])).await;
    let mut alice = s.login("alice").await;
    let mut m = s.login_account("mod1").await;
    let mut adm = s.login_admin().await;
    alice.wait_for("JOIN #lobby admin").await;
    m.wait_for("JOIN #lobby admin").await;
    let not_admin = "ERROR not-permitted only the admin may do that";
    let not_mod = "ERROR not-permitted only moderators and the admin may do that";
    m.send("/kick alice").await;
    m.expect(not_mod).await;
    alice.send("/ops").await;
    alice.expect("INFO no moderators").await;

    adm.send("/op MOD1").await;
    adm.expect("INFO mod1 is now a moderator").await;
    // The room sees the new `@` at once, without asking.
    adm.expect("USERS #lobby alice @mod1 admin").await;
    m.expect("INFO you are now a moderator").await;
    m.expect("USERS #lobby alice @mod1 admin").await;
    alice.expect("USERS #lobby alice @mod1 admin").await;
    alice.send("/who").await;
    alice.expect("USERS #lobby alice @mod1 admin").await;
    alice.send("/ops").await;
    alice.expect("INFO moderators: mod1").await;
    m.send("/help").await;
    let mut help = Vec::new();
    for _ in
        0..tlschat_protocol::command::HELP.len() + tlschat_protocol::command::MODERATOR_HELP.len()
    {
        help.push(m.recv().await);
    }
    assert!(
        help.iter().any(|l| l.starts_with("INFO /kick ")),
        "{help:?}"
    );
    assert!(
        !help.iter().any(|l| l.starts_with("INFO /unban ")),
        "{help:?}"
    );
    m.expect_quiet("help").await;

    for line in [
        "/unban alice",
        "/op alice",
        "/deop mod1",
        "/registration off",
    ] {
        m.send(line).await;
        m.expect(not_admin).await;
    }
    m.send("/kick admin").await;
    m.expect("ERROR not-permitted a moderator cannot kick the admin or a moderator")
        .await;
    m.send("/ban alice 8d").await;
    m.expect("ERROR not-permitted a moderator bans for at most 7d")
        .await;
    m.send("/ban 127.0.0.0/16 1h").await;
    m.expect(
        "ERROR not-permitted a moderator bans prefixes no wider than /24 (IPv4) or /48 (IPv6)",
    )
    .await;
    // No duration: a week. Staff on the same address stay.
    m.send("/ban alice спам 垃圾").await;
    alice.expect("KICK alice mod1 banned: спам 垃圾").await;
    m.wait_for("INFO banned alice (127.0.0.1) until 2026-12-01T14:00:00Z")
        .await;
    adm.wait_for("PART #lobby alice kicked").await;
    m.send("/bans").await;
    m.expect("INFO alice 127.0.0.1 since 2026-11-24T14:00:00Z until 2026-12-01T14:00:00Z by mod1: спам 垃圾")
        .await;

    adm.send("/op bob").await;
    adm.expect("ERROR no-such-nick bob is not an account").await;
    adm.send("/op admin").await;
    adm.expect("ERROR not-permitted the admin account's role does not change")
        .await;
    adm.send("/deop mod1").await;
    adm.expect("INFO mod1 is no longer a moderator").await;
    adm.expect("USERS #lobby admin mod1").await;
    m.expect("INFO you are no longer a moderator").await;
    m.expect("USERS #lobby admin mod1").await;
    m.send("/kick admin").await;
    m.expect(not_mod).await;
    s.stop().await;
}

/// A moderator's role is the account's: it holds after a reconnect and
/// after a restart.
#[tokio::test]
async fn a_moderator_is_one_again_after_a_restart() {
    let (s, _clock) = TestServer::start_clocked_in(data_dir_with_accounts(&["mod1"])).await;
    let mut adm = s.login_admin().await;
    adm.send("/op mod1").await;
    adm.expect("INFO mod1 is now a moderator").await;
    drop(adm);
    let dir = s.stop().await;
    let (s, _clock) = TestServer::start_clocked_in(dir).await;
    let mut m = s.connect().await;
    let users = m.finish_account_login("mod1", ACCOUNT_PASSWORD).await;
    assert_eq!(users, "USERS #lobby @mod1");
    m.send("/kick nobody").await;
    m.expect("ERROR no-such-nick nobody is not connected").await;
    s.stop().await;
}

/// An account removed while its moderator is connected: the session stays,
/// a user from its next line on.
#[tokio::test]
async fn an_unregistered_moderator_stays_connected_as_a_user() {
    let (s, _clock) = TestServer::start_clocked_in(data_dir_with_accounts(&["mod1"])).await;
    let mut adm = s.login_admin().await;
    adm.send("/op mod1").await;
    adm.expect("INFO mod1 is now a moderator").await;
    let mut m = s.login_account("mod1").await;
    adm.wait_for("JOIN #lobby mod1").await;
    m.send("/bans").await;
    m.expect("INFO no bans").await;
    adm.send("/unregister mod1").await;
    // The room sees the `@` go at once (the admin too, just before its
    // confirmation).
    adm.expect("USERS #lobby admin mod1").await;
    adm.expect("INFO unregistered mod1").await;
    m.expect("USERS #lobby admin mod1").await;
    m.send("/bans").await;
    m.expect("ERROR not-permitted only moderators and the admin may do that")
        .await;
    adm.send("/who").await;
    adm.expect("USERS #lobby admin mod1").await;
    s.stop().await;
}

/// A moderator invites within its caps and sees its own invites only.
#[tokio::test]
async fn a_moderator_invites_within_its_caps() {
    let (s, _clock) = TestServer::start_clocked_in(data_dir_with_accounts(&["mod1"])).await;
    let mut adm = s.login_admin().await;
    adm.send("/op mod1").await;
    adm.expect("INFO mod1 is now a moderator").await;
    let mut m = s.login_account("mod1").await;
    for over in ["/invite 11", "/invite 8d"] {
        m.send(over).await;
        m.expect_prefix("ERROR not-permitted ").await;
    }
    m.send("/invite 2 1h").await;
    m.expect_prefix("INFO invite tlschat://").await;
    let terms = m.expect_prefix("INFO invite ").await;
    assert!(
        terms.ends_with(": 2 uses, until 2026-11-24T15:00:00Z"),
        "{terms}"
    );
    adm.send("/invite").await;
    adm.wait_for("INFO invite tlschat://").await;
    adm.expect_prefix("INFO invite ").await;
    m.send("/invites").await;
    let own = m.expect_prefix("INFO ").await;
    assert!(own.contains("by mod1"), "{own}");
    m.expect_quiet("own").await;
    s.stop().await;
}

/// A timed ban's reason in right-to-left scripts, with a ZWJ emoji sequence
/// and a combining mark, reaches the kicked user, `/bans` and `bans.txt`
/// unchanged.
#[tokio::test]
async fn a_timed_bans_reason_keeps_every_script() {
    let reason = "שלום مرحبا 👩🏽‍💻 é";
    let (s, _clock) = TestServer::start_clocked().await;
    let mut adm = s.login_admin().await;
    let mut bob = s.login("bob").await;
    adm.wait_for("JOIN #lobby bob").await;
    adm.send(&format!("/ban bob 2h {reason}")).await;
    adm.wait_for("INFO banned bob (127.0.0.1) until 2026-11-24T16:00:00Z")
        .await;
    bob.expect(&format!("KICK bob admin banned: {reason}"))
        .await;
    adm.send("/bans").await;
    adm.expect(&format!(
        "INFO bob 127.0.0.1 since 2026-11-24T14:00:00Z until 2026-11-24T16:00:00Z by admin: {reason}"
    ))
    .await;
    let text = std::fs::read_to_string(s.data_dir().join("bans.txt")).unwrap();
    assert!(text.contains(reason), "{text}");
    s.stop().await;
}
