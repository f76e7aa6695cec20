//! What the command line does to the window: a server and a nickname
//! connect at once (a pin instead of the trust screen), and bad input is
//! shown on the connect screen.

use egui_kittest::kittest::Queryable;

use crate::harness::*;
use tlschat_gui::{cli, Screen};

fn begin(gui: &mut Gui, args: &[&str]) {
    let args = std::iter::once("tlschat-gui").chain(args.iter().copied());
    let start = cli::parse(args).expect("not --help or --version");
    gui.state_mut().begin(start);
    gui.run_ok();
}

#[test]
fn a_server_and_a_nickname_connect_at_once_with_the_pin_checked() {
    let world = World::start();
    let mut watcher = world.peer("watcher");
    let (mut gui, _) = world.gui();
    let pin = world.fingerprint.to_string();
    begin(
        &mut gui,
        &["--nick", "pinned", "--fingerprint", &pin, &world.server()],
    );
    in_chat(&mut gui);
    watcher.wait_for("JOIN #lobby pinned");
    // A pin is not a known_hosts entry.
    assert!(!world.home.path().join("known_hosts").exists());
}

#[test]
fn a_wrong_pin_is_refused_before_anything_is_sent() {
    let world = World::start();
    let mut watcher = world.peer("watcher");
    let (mut gui, _) = world.gui();
    let other = format!("SHA256:{}", "ab".repeat(32));
    begin(
        &mut gui,
        &["--nick", "pinned", "--fingerprint", &other, &world.server()],
    );
    run_until(&mut gui, STEP, "the connect screen again", |g| {
        matches!(g.state().screen(), Screen::Connect)
    });
    let seen = watcher.lines_until_sync("after");
    assert!(!seen.iter().any(|l| l.contains("pinned")), "{seen:?}");
}

#[test]
fn a_server_alone_fills_in_the_connect_screen() {
    let world = World::start();
    let (mut gui, _) = world.gui();
    begin(&mut gui, &[&world.server()]);
    assert!(matches!(gui.state().screen(), Screen::Connect));
    assert_eq!(gui.state_mut().form_mut().server, world.server());
}

#[test]
fn bad_input_is_shown_on_the_connect_screen() {
    let world = World::start();
    let (mut gui, _) = world.gui();
    begin(&mut gui, &["--nick", "robin", "localhost:0"]);
    assert!(matches!(gui.state().screen(), Screen::Connect));
    assert!(shows(&gui, "server: bad port `0`"), "{:#?}", gui.root());
    assert!(gui.query_by_label("Connect").is_some());
}
