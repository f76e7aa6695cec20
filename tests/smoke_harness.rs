mod common;
use common::*;

#[tokio::test]
async fn two_users_chat() {
    let s = TestServer::start().await;
    let mut a = s.login("alice").await;
    let mut b = s.login("bob").await;
    a.expect("JOIN #lobby bob").await;
    b.send("hi alice").await;
    a.expect("MSG #lobby bob hi alice").await;
    b.expect("MSG #lobby bob hi alice").await;
    let mut adm = s.login_admin().await;
    adm.send("/kick bob rude").await;
    adm.wait_for("INFO kicked bob").await;
    b.wait_for("KICK bob admin rude").await;
    assert!(b.expect_closed().await.is_empty());
    s.stop().await;
}
