//! `/nick` over real TLS: the room sees `RENAME`, races for one name have
//! one winner, and a nickname no client may take is refused without harm.

use crate::harness::*;

#[tokio::test]
async fn a_rename_reaches_the_room_and_the_old_name_is_free() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice").await;
    let mut bob = s.login("bob").await;
    let mut carol = s.login("carol").await;
    carol.send("/join #rust").await;
    carol.wait_for("USERS #rust").await;
    alice.wait_for("PART #lobby carol moved").await;
    bob.wait_for("PART #lobby carol moved").await;

    alice.send("/nick Alicia").await;
    alice.expect("RENAME alice Alicia").await;
    bob.expect("RENAME alice Alicia").await;
    bob.send("/who").await;
    bob.expect("USERS #lobby Alicia bob").await;
    bob.send("/msg alicia привет 👋").await;
    alice.expect("PRIVMSG bob Alicia привет 👋").await;
    carol.expect_quiet("c").await;

    // The old name is anyone's again; the new one is taken.
    let _again = s.login("alice").await;
    let mut late = s.connect().await;
    late.expect("NICK").await;
    late.send("ALICIA").await;
    late.expect_prefix("ERROR nick-taken ").await;
    s.stop().await;
}

#[tokio::test]
async fn two_sessions_renaming_to_one_name_one_wins() {
    let s = TestServer::start().await;
    let mut a = s.login("anna").await;
    let mut b = s.login("berta").await;
    a.wait_for("JOIN #lobby berta").await;
    a.send("/nick Same").await;
    b.send("/nick SAME").await;
    // Each reads until its own outcome: its RENAME or its ERROR.
    let mut outcomes = Vec::new();
    for (c, old) in [(&mut a, "anna"), (&mut b, "berta")] {
        let own = format!("RENAME {old} ");
        loop {
            let l = c.recv().await;
            if l.starts_with(&own) || l.starts_with("ERROR ") {
                outcomes.push(l);
                break;
            }
        }
    }
    let taken = outcomes
        .iter()
        .filter(|l| l.starts_with("ERROR nick-taken "))
        .count();
    assert_eq!(taken, 1, "{outcomes:?}");
    s.stop().await;
}

#[tokio::test]
async fn names_no_client_may_take_are_refused_and_the_session_goes_on() {
    let s = TestServer::start().await;
    let mut a = s.login("alice").await;
    let mut adm = s.login_admin().await;
    a.wait_for("JOIN #lobby admin").await;
    for (line, answer) in [
        ("/nick Алиса", "ERROR nick-invalid "),
        ("/nick", "ERROR nick-invalid usage: /nick NEWNICK"),
        ("/nick a b", "ERROR nick-invalid usage: /nick NEWNICK"),
        ("/nick ADMIN", "ERROR nick-taken "),
    ] {
        a.send(line).await;
        a.expect_prefix(answer).await;
    }
    adm.send("/ban mallory 1h флуд").await;
    adm.wait_for("INFO banned mallory").await;
    a.send("/nick Mallory").await;
    a.expect("ERROR not-permitted Mallory is banned").await;
    adm.send("/nick root").await;
    adm.expect("ERROR not-permitted the admin account keeps its name")
        .await;
    a.expect_quiet("a").await;
    s.stop().await;
}

/// An account's nickname is its holder's, also while the holder is
/// offline; a holder renaming takes the account along.
#[tokio::test]
async fn an_account_nickname_is_kept_and_moves_with_its_holder() {
    let dir = data_dir_with_accounts(&["dave"]);
    let s = TestServer::start_in(dir, |_| {}).await;
    let mut alice = s.login("alice").await;
    alice.send("/nick DAVE").await;
    alice
        .expect("ERROR nick-taken DAVE is someone's registered nickname")
        .await;

    let mut dave = s.login_account("dave").await;
    alice.wait_for("JOIN #lobby dave").await;
    dave.send("/nick David").await;
    dave.expect("RENAME dave David").await;
    alice.expect("RENAME dave David").await;
    drop(dave);
    alice.wait_for("PART #lobby David").await;

    // The account is David's now: it asks the password; `dave` is free.
    let _back = s.login_account("david").await;
    alice.wait_for("JOIN #lobby david").await;
    alice.send("/nick dave").await;
    alice.expect("RENAME alice dave").await;
    s.stop().await;
}
