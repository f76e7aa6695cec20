//! What a person does: connect and trust, chat in any script, switch
//! rooms, meet a changed certificate, ride out a server restart.

use std::time::Duration;

use egui_kittest::kittest::{NodeT, Queryable};

use crate::harness::*;
use tlschat_client_core::state::ConnState;
use tlschat_gui::{ConversationKey, Screen};

use tlschat_protocol::Fingerprint;

fn send_line(gui: &mut Gui, text: &str) {
    type_into(gui, "Message", text);
    gui.key_press(egui::Key::Enter);
    gui.run_ok();
}

#[test]
fn first_contact_shows_the_fingerprint_and_trusting_writes_known_hosts() {
    let world = World::start();
    let known_hosts = world.home.path().join("known_hosts");
    let mut watcher = world.peer("watcher");
    let (mut gui, _) = world.gui();
    start_connect(&mut gui, &world.server(), "gui");
    run_until(&mut gui, STEP, "the trust screen", |g| {
        shows(g, "Trust and connect")
    });
    assert!(
        shows(&gui, &grouped(&world.fingerprint)),
        "the trust screen shows the whole fingerprint, grouped"
    );
    // Before the decision: nothing stored, nothing sent (no login).
    assert!(!known_hosts.exists());
    let seen = watcher.lines_until_sync("before");
    assert!(!seen.iter().any(|l| l.contains("gui")), "{seen:?}");

    gui.get_by_label("Trust and connect").click();
    run_until(&mut gui, STEP, "connected", |g| {
        conn(g) == Some(ConnState::Connected)
    });
    let stored = std::fs::read_to_string(&known_hosts).expect("known_hosts written");
    assert!(
        stored.contains(&format!("{} {}", world.addr, world.fingerprint)),
        "{stored}"
    );
    watcher.wait_for("JOIN #lobby gui");
    // Remembered for next time; the password never is (none was asked).
    let settings = std::fs::read_to_string(world.home.path().join("gui.toml")).expect("gui.toml");
    assert!(
        settings.contains(&world.server()) && settings.contains("gui"),
        "{settings}"
    );
}

#[test]
fn a_password_is_asked_in_a_masked_dialog_and_never_stored() {
    let world = World::start();
    let (mut gui, _) = world.gui();
    start_connect(&mut gui, &world.server(), "admin");
    run_until(&mut gui, STEP, "the trust screen", |g| {
        shows(g, "Trust and connect")
    });
    gui.get_by_label("Trust and connect").click();
    run_until(&mut gui, STEP, "the password dialog", |g| {
        g.query_by_role(egui::accesskit::Role::PasswordInput)
            .is_some()
    });
    let field = gui.get_by_role(egui::accesskit::Role::PasswordInput);
    field.focus();
    field.type_text(ADMIN_PASSWORD);
    gui.run_ok();
    gui.get_by_label("Log in").click();
    run_until(&mut gui, STEP, "connected as admin", |g| {
        conn(g) == Some(ConnState::Connected)
    });
    let settings = std::fs::read_to_string(world.home.path().join("gui.toml")).expect("gui.toml");
    assert!(!settings.contains("horse"), "{settings}");
}

/// Texts in many scripts: Cyrillic, Arabic, Hebrew, CJK, an emoji ZWJ
/// sequence with a skin tone, combining marks.
const TEXTS: &[&str] = &[
    "hello, plain ASCII",
    "привет, мир",
    "مرحبا بالعالم",
    "שלום עולם",
    "你好，世界 こんにちは 안녕하세요",
    "family 👩🏽‍💻 and 👨‍👩‍👧‍👦 ok",
    "e\u{301}te\u{301} a\u{308}",
];

#[test]
fn messages_in_any_script_go_out_and_come_in() {
    let world = World::start();
    let mut bob = world.peer("bob");
    let (mut gui, notifier) = connect_trusted(&world, "gui");
    bob.wait_for("JOIN #lobby gui");
    for text in TEXTS {
        send_line(&mut gui, text);
        let got = bob.wait_for("MSG #lobby gui");
        assert_eq!(got, format!("MSG #lobby gui {text}"));
    }
    for text in TEXTS {
        bob.send(&format!("from bob: {text}"));
        run_until(&mut gui, STEP, "bob's message", |g| {
            shows(g, &format!("from bob: {text}"))
        });
    }
    // /me and private messages; a private message while the window is
    // not focused is a notification, and a conversation of its own.
    send_line(&mut gui, "/me waves");
    bob.wait_for("ACTION #lobby gui waves");
    gui.input_mut().focused = false;
    bob.send("/msg gui psst, 秘密");
    run_until(&mut gui, STEP, "the private conversation", |g| {
        let Screen::Chat(chat) = g.state().screen() else {
            return false;
        };
        chat.buffers()
            .iter()
            .any(|b| matches!(&b.key, ConversationKey::Private(p) if p == "bob") && b.unread == 1)
    });
    let shown = notifier.shown();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(shown[0].body.contains("秘密"), "{shown:?}");
    // Open it and answer: plain text there is a private message.
    gui.get_by_label_contains("bob  1").click();
    gui.run_ok();
    send_line(&mut gui, "hi bob");
    bob.wait_for("PRIVMSG gui bob hi bob");
    // Errors from the server are shown.
    send_line(&mut gui, "/nosuchcommand");
    run_until(&mut gui, STEP, "the server's error", |g| {
        shows(g, "unknown-command")
    });
    // Up and Down walk the lines sent before.
    gui.get_by_label("Message").focus();
    gui.run_ok();
    let input = |g: &Gui| g.get_by_label("Message").value().unwrap_or_default();
    gui.key_press(egui::Key::ArrowUp);
    gui.run_ok();
    assert_eq!(input(&gui), "/nosuchcommand");
    gui.key_press(egui::Key::ArrowUp);
    gui.run_ok();
    assert_eq!(input(&gui), "hi bob");
    gui.key_press(egui::Key::ArrowDown);
    gui.key_press(egui::Key::ArrowDown);
    gui.run_ok();
    assert_eq!(input(&gui), "");
}

#[test]
fn switching_rooms_updates_the_users_panel() {
    let world = World::start();
    let mut bob = world.peer("bob");
    bob.send("/join #rust");
    bob.wait_for("USERS #rust");
    let (mut gui, _) = connect_trusted(&world, "gui");
    run_until(&mut gui, STEP, "lobby users", |g| users(g) == ["gui"]);
    send_line(&mut gui, "/join #rust");
    run_until(&mut gui, STEP, "#rust users", |g| {
        users(g) == ["bob", "gui"] && shows(g, "Users in #rust (2)")
    });
    // Back to the lobby by clicking it in the side list.
    gui.get_by_label("#lobby").click();
    run_until(&mut gui, STEP, "lobby users again", |g| {
        users(g) == ["gui"] && shows(g, "Users in #lobby (1)")
    });
    bob.wait_for("PART #rust gui");
}

#[test]
fn a_changed_certificate_is_a_dead_end_and_nothing_is_sent() {
    let world = World::start();
    let known_hosts = world.home.path().join("known_hosts");
    let old = Fingerprint([0x42; 32]);
    let line = format!("{} {old}\n", world.addr);
    std::fs::write(&known_hosts, &line).expect("write known_hosts");
    let mut watcher = world.peer("watcher");
    let (mut gui, _) = world.gui();
    start_connect(&mut gui, &world.server(), "gui");
    run_until(&mut gui, STEP, "the changed-certificate screen", |g| {
        shows(g, "has changed")
    });
    assert!(shows(&gui, &grouped(&old)), "names the known fingerprint");
    assert!(
        shows(&gui, &grouped(&world.fingerprint)),
        "names the new one"
    );
    assert!(shows(&gui, "Ask the server's operator"));
    // No way forward from here.
    let buttons: Vec<String> = gui
        .get_all_by_role(egui::accesskit::Role::Button)
        .filter_map(|b| b.accesskit_node().label())
        .collect();
    assert_eq!(buttons, ["Back"]);
    let seen = watcher.lines_until_sync("after");
    assert!(!seen.iter().any(|l| l.contains("gui")), "{seen:?}");
    assert_eq!(std::fs::read_to_string(&known_hosts).expect("read"), line);
    gui.get_by_label("Back").click();
    run_until(&mut gui, STEP, "the connect screen", |g| {
        shows(g, "Connect") && g.query_by_label("Nickname").is_some()
    });
}

#[test]
fn the_session_reconnects_after_the_server_restarts() {
    let mut world = World::start();
    let (mut gui, _) = connect_trusted(&world, "gui");
    world.restart();
    run_until(&mut gui, Duration::from_secs(30), "connected again", |g| {
        shows(g, "connection lost") && conn(g) == Some(ConnState::Connected)
    });
    let mut bob = world.peer("bob");
    send_line(&mut gui, "back again");
    bob.wait_for("MSG #lobby gui back again");
}

#[test]
fn a_certificate_changed_across_a_reconnect_is_the_same_dead_end() {
    let mut world = World::start();
    let (mut gui, _) = connect_trusted(&world, "gui");
    world.restart_with_a_new_certificate();
    run_until(
        &mut gui,
        Duration::from_secs(30),
        "the changed-certificate screen",
        |g| shows(g, "has changed"),
    );
    assert!(
        shows(&gui, &grouped(&world.fingerprint)),
        "names the known one"
    );
    let buttons: Vec<String> = gui
        .get_all_by_role(egui::accesskit::Role::Button)
        .filter_map(|b| b.accesskit_node().label())
        .collect();
    assert_eq!(buttons, ["Back"]);
}

#[test]
fn ctrl_plus_and_minus_zoom() {
    let (mut gui, _) = gui_with(tlschat_gui::settings::Paths::in_dir(
        tempfile::tempdir().expect("dir").path(),
    ));
    gui.run_ok();
    let before = gui.ctx.zoom_factor();
    gui.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Plus);
    gui.run_ok();
    assert!(gui.ctx.zoom_factor() > before);
    gui.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Minus);
    gui.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Minus);
    gui.run_ok();
    assert!(gui.ctx.zoom_factor() < before);
}

#[test]
fn a_flood_of_private_messages_and_mentions_is_a_few_notifications() {
    let world = World::start();
    let mut mallory = world.peer("mallory");
    let (mut gui, notifier) = connect_trusted(&world, "gui");
    mallory.wait_for("JOIN #lobby gui");
    gui.input_mut().focused = false;
    for i in 0..100 {
        mallory.send(&format!("/msg gui psst {i}"));
        mallory.send(&format!("gui: look {i}"));
    }
    run_until(&mut gui, STEP, "the whole flood", |g| {
        let Screen::Chat(chat) = g.state().screen() else {
            return false;
        };
        chat.buffers().iter().any(|b| {
            matches!(&b.key, ConversationKey::Private(p) if p == "mallory") && b.unread == 100
        })
    });
    let shown = notifier.shown();
    // One for the private conversation and one for the room (more only if
    // the flood took longer than the quiet time).
    assert!((2..=4).contains(&shown.len()), "{shown:#?}");
}

#[test]
fn an_idle_connected_window_asks_for_no_repaint() {
    let world = World::start();
    let (mut gui, _) = connect_trusted(&world, "gui");
    // The harness turns egui's cursor blinking off; a real window has it.
    gui.ctx
        .all_styles_mut(|s| s.visuals.text_cursor.blink = true);
    gui.run_ok();
    assert!(
        gui.get_by_label("Message").is_focused(),
        "the input has the keyboard (its cursor must not blink the window awake)"
    );
    // Settled: a few more frames with nothing happening.
    for _ in 0..4 {
        gui.step();
    }
    let delay = gui.output().viewport_output[&egui::ViewportId::ROOT].repaint_delay;
    assert_eq!(
        delay,
        Duration::MAX,
        "an idle window repaints: {:?}",
        gui.ctx.repaint_causes()
    );
}

#[test]
fn the_connect_form_takes_typing_at_once_and_enter_in_either_field() {
    let world = World::start();
    let (mut gui, _) = world.gui();
    gui.run_ok();
    assert!(
        gui.get_by_label("Server").is_focused(),
        "the empty Server field has the keyboard"
    );
    gui.get_by_label("Server").type_text(&world.server());
    gui.run_ok();
    type_into(&mut gui, "Nickname", "gui");
    gui.get_by_label("Server").focus();
    gui.run_ok();
    gui.key_press(egui::Key::Enter);
    run_until(&mut gui, STEP, "the trust screen", |g| {
        shows(g, "Trust and connect")
    });
}

#[test]
fn what_the_input_rules_refuse_is_never_sent_and_a_long_line_fits_the_protocol() {
    let world = World::start();
    let mut bob = world.peer("bob");
    let (mut gui, _) = connect_trusted(&world, "gui");
    bob.wait_for("JOIN #lobby gui");
    // A paste with a right-to-left override and a terminal escape: both
    // are left out, the rest goes as typed.
    send_line(&mut gui, "שלום \u{202E}evil\u{1b}[2J ok");
    assert_eq!(
        bob.wait_for("MSG #lobby gui"),
        "MSG #lobby gui שלום evil[2J ok"
    );
    // Cyrillic takes two bytes a letter: as many letters as the protocol
    // has bytes would be twice too long. The line is cut to fit instead.
    send_line(&mut gui, &"ж".repeat(tlschat_protocol::MAX_CLIENT_LINE));
    let got = bob.wait_for("MSG #lobby gui");
    let body = got.strip_prefix("MSG #lobby gui ").unwrap_or_default();
    assert!(body.chars().all(|c| c == 'ж'), "{got:?}");
    let limit = tlschat_client_core::MAX_INPUT_BYTES;
    assert!(
        body.len() <= limit && body.len() + 2 > limit,
        "{} bytes",
        body.len()
    );
}

#[test]
fn a_password_line_in_a_private_conversation_never_reaches_the_peer() {
    let world = World::start();
    let mut bob = world.peer("bob");
    let (mut gui, _) = connect_trusted(&world, "gui");
    bob.wait_for("JOIN #lobby gui");
    bob.send("/msg gui hi");
    run_until(&mut gui, STEP, "bob's conversation", |g| shows(g, "bob  1"));
    gui.get_by_label_contains("bob  1").click();
    gui.run_ok();
    // Leading spaces would make it a message (to bob, here).
    send_line(&mut gui, "  /password old-пароль new-密码");
    send_line(&mut gui, "after");
    // In order on one connection: a private line with the password
    // would come first.
    assert_eq!(bob.wait_for("PRIVMSG gui bob"), "PRIVMSG gui bob after");
}
