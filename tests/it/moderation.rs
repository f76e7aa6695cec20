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
