//! The chat screen on its own (no server behind it): what a hostile line
//! does to the layout, and the input line's keys.

use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;

use tlschat_client_core::state::EntryKind;
use tlschat_client_core::ClientEvent;
use tlschat_gui::ChatView;

const SIZE: [f32; 2] = [1024.0, 640.0];

fn chat_with(lines: &[(&str, &str)]) -> Harness<'static, ChatView> {
    let mut chat = ChatView::new("chat.example.org:55555", "alice", None);
    for (nick, text) in lines {
        chat.on_client_event(
            ClientEvent::Line(EntryKind::Message {
                room: "#lobby".into(),
                nick: (*nick).into(),
                text: (*text).into(),
                at: None,
            }),
            true,
        );
    }
    harness_of(chat)
}

/// A harness drawing `chat` as the window would.
fn harness_of(chat: ChatView) -> Harness<'static, ChatView> {
    Harness::builder()
        .with_size(SIZE)
        // A wheel's scroll is animated over a few frames.
        .with_max_steps(16)
        .with_context_setup(tlschat_gui::fonts::install)
        .allow_missing_glyphs()
        .build_ui_state(
            |ui, chat: &mut ChatView| {
                chat.show(ui, std::time::Instant::now());
            },
            chat,
        )
}

#[test]
fn a_long_unbroken_line_wraps_inside_the_window() {
    let long = "x".repeat(3000);
    let mut h = chat_with(&[("mallory", &long)]);
    h.run();
    let line = h.get_by_label_contains("xxxxxxxxxx");
    let rect = line.rect();
    assert!(rect.max.x <= SIZE[0], "the line ends off screen: {rect:?}");
    assert!(rect.height() > 100.0, "the line did not wrap: {rect:?}");
}

#[test]
fn right_to_left_lines_are_read_in_the_order_they_were_written() {
    let mut h = chat_with(&[("noor", "مرحبا بالجميع 123 ok"), ("dmitri", "שלום עולם!")]);
    h.run();
    assert!(h
        .query_by_label_contains("noor  مرحبا بالجميع 123 ok")
        .is_some());
    assert!(h.query_by_label_contains("dmitri  שלום עולם!").is_some());
}

/// Types `text` into the input line and presses Enter.
fn enter_line(h: &mut Harness<'static, ChatView>, text: &str) {
    let input = h.get_by_label("Message");
    input.focus();
    input.type_text(text);
    h.run();
    h.key_press(egui::Key::Enter);
    h.run();
}

#[test]
fn enter_sends_and_keeps_the_input_focused() {
    let mut h = chat_with(&[]);
    h.run();
    enter_line(&mut h, "hello");
    let input = h.get_by_label("Message");
    assert_eq!(input.value().unwrap_or_default(), "");
    assert!(input.is_focused(), "the input lost its focus");
}

/// The repaint the last frame asked for (`Duration::MAX`: none).
fn repaint_delay<S>(h: &Harness<'static, S>) -> std::time::Duration {
    h.output().viewport_output[&egui::ViewportId::ROOT].repaint_delay
}

#[test]
fn the_reconnect_countdown_repaints_once_a_second_only_while_counting() {
    let mut chat = ChatView::new("chat.example.org:55555", "alice", None);
    chat.on_client_event(
        ClientEvent::Reconnecting {
            reason: "connection lost".into(),
            delay: std::time::Duration::from_secs(3),
            attempt: 1,
        },
        true,
    );
    let start = std::time::Instant::now();
    let mut h = Harness::builder()
        .with_size(SIZE)
        .allow_missing_glyphs()
        .build_ui_state(
            move |ui, (chat, late): &mut (ChatView, bool)| {
                let now = if *late {
                    start + std::time::Duration::from_secs(10)
                } else {
                    start
                };
                chat.show(ui, now);
            },
            (chat, false),
        );
    h.run();
    let delay = repaint_delay(&h);
    assert!(
        delay <= std::time::Duration::from_secs(1),
        "counting down: {delay:?}"
    );
    assert!(
        h.query_by_label("reconnecting in 3 s").is_some(),
        "{:#?}",
        h.root()
    );
    h.state_mut().1 = true;
    h.run();
    h.step();
    assert_eq!(repaint_delay(&h), std::time::Duration::MAX, "done counting");
    assert!(h.query_by_label("reconnecting…").is_some());
}

#[test]
fn a_megabyte_line_from_a_hostile_server_is_cut_short() {
    let long = "y".repeat(1 << 20);
    let mut h = chat_with(&[("mallory", &long)]);
    h.run();
    let line = h.get_by_label_contains("yyyyyyyyyy");
    let node = line.accesskit_node();
    let shown = node.label().or_else(|| node.value()).unwrap_or_default();
    assert!(shown.len() < 10_000, "{} bytes shown", shown.len());
    assert!(shown.ends_with(&format!("({} more characters)", (1 << 20) - 4096)));
}

#[test]
fn up_and_down_keep_the_line_being_typed_as_the_terminal_client_does() {
    let mut h = chat_with(&[]);
    h.run();
    let input = h.get_by_label("Message");
    input.focus();
    input.type_text("first");
    h.run();
    h.key_press(egui::Key::Enter);
    h.run();
    let value =
        |h: &Harness<'static, ChatView>| h.get_by_label("Message").value().unwrap_or_default();
    h.key_press(egui::Key::ArrowUp);
    h.run();
    assert_eq!(value(&h), "first");
    // The cursor is at the end of the recalled line: typing appends.
    h.get_by_label("Message").type_text("!");
    h.run();
    assert_eq!(value(&h), "first!");
    // Editing a recalled line makes it the line being typed: Down has
    // nothing newer, and Up keeps it as the draft.
    h.key_press(egui::Key::ArrowDown);
    h.run();
    assert_eq!(value(&h), "first!");
    h.key_press(egui::Key::ArrowUp);
    h.run();
    assert_eq!(value(&h), "first");
    h.key_press(egui::Key::ArrowDown);
    h.run();
    assert_eq!(value(&h), "first!");
    // A line half typed is still there after a look back.
    h.get_by_label("Message").type_text(" half-typed");
    h.run();
    h.key_press(egui::Key::ArrowUp);
    h.run();
    assert_eq!(value(&h), "first");
    h.key_press(egui::Key::ArrowDown);
    h.run();
    assert_eq!(value(&h), "first! half-typed");
}

#[test]
fn a_room_of_thousands_draws_only_the_users_in_sight() {
    let mut chat = ChatView::new("chat.example.org:55555", "alice", None);
    let nicks: Vec<String> = (0..16_000).map(|i| format!("user{i:05}")).collect();
    chat.on_client_event(ClientEvent::Room("#lobby".into()), true);
    chat.on_client_event(
        ClientEvent::Line(EntryKind::Users {
            room: "#lobby".into(),
            nicks,
        }),
        true,
    );
    let mut h = harness_of(chat);
    h.run();
    assert!(h
        .query_by_label_contains("Users in #lobby (16000)")
        .is_some());
    let drawn = h
        .query_all_by_role(egui::accesskit::Role::Button)
        .filter(|n| {
            n.accesskit_node()
                .label()
                .is_some_and(|l| l.starts_with("user"))
        })
        .count();
    assert!((10..100).contains(&drawn), "{drawn} user rows drawn");
    assert!(
        h.query_by_label("user00000").is_some(),
        "sorted, first on top"
    );
}

#[test]
fn a_hostile_servers_endless_nick_is_cut_everywhere_it_is_drawn() {
    let nick = "n".repeat(100_000);
    let mut chat = ChatView::new("chat.example.org:55555", "alice", None);
    chat.on_client_event(ClientEvent::Room("#lobby".into()), true);
    chat.on_client_event(
        ClientEvent::Line(EntryKind::Users {
            room: "#lobby".into(),
            nicks: vec!["alice".into(), nick.clone()],
        }),
        true,
    );
    chat.on_client_event(
        ClientEvent::Line(EntryKind::Message {
            room: "#lobby".into(),
            nick: nick.clone(),
            text: "hi".into(),
            at: None,
        }),
        true,
    );
    chat.on_client_event(
        ClientEvent::Line(EntryKind::Private {
            from: nick.clone(),
            to: "alice".into(),
            text: "psst".into(),
        }),
        true,
    );
    let mut h = harness_of(chat);
    h.run();
    let longest = h
        .query_all_by_label_contains("nnnnnnnnnn")
        .map(|n| {
            let node = n.accesskit_node();
            node.label()
                .or_else(|| node.value())
                .unwrap_or_default()
                .len()
        })
        .max()
        .unwrap_or_default();
    assert!((64..5000).contains(&longest), "{longest} bytes drawn");
}

/// A chat of `lines` messages from bob, `message number 0` and on.
fn chat_of_numbered(lines: usize) -> Harness<'static, ChatView> {
    let texts: Vec<String> = (0..lines).map(|i| format!("message number {i}")).collect();
    let lines: Vec<(&str, &str)> = texts.iter().map(|t| ("bob", t.as_str())).collect();
    chat_with(&lines)
}

#[test]
fn a_long_conversation_draws_only_the_lines_in_sight() {
    let mut h = chat_of_numbered(5000);
    h.run();
    let drawn = h.query_all_by_label_contains("message number").count();
    assert!((10..100).contains(&drawn), "{drawn} lines drawn");
    // The newest is in sight (the pane sticks to the end).
    assert!(h.query_by_label_contains("message number 4999").is_some());
}

#[test]
fn scrolled_up_a_new_message_offers_the_jump_back_down() {
    let mut h = chat_of_numbered(300);
    h.run();
    h.hover_at(egui::pos2(500.0, 300.0));
    h.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: egui::vec2(0.0, 3000.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Unknown,
        modifiers: egui::Modifiers::NONE,
    });
    h.run();
    assert!(h.query_by_label_contains("message number 299").is_none());
    h.state_mut().on_client_event(
        ClientEvent::Line(EntryKind::Message {
            room: "#lobby".into(),
            nick: "bob".into(),
            text: "the newest".into(),
            at: None,
        }),
        true,
    );
    h.run();
    assert!(
        h.query_by_label_contains("the newest").is_none(),
        "no jump while reading"
    );
    h.get_by_label("↓ New messages").click();
    h.run();
    assert!(h.query_by_label_contains("the newest").is_some());
    assert!(h.query_by_label("↓ New messages").is_none());
}

#[test]
fn page_up_page_down_and_escape_scroll_as_in_the_terminal_client() {
    let mut h = chat_of_numbered(300);
    h.run();
    h.get_by_label("Message").focus();
    h.run();
    h.key_press(egui::Key::PageUp);
    h.run();
    assert!(h.query_by_label_contains("message number 299").is_none());
    h.key_press(egui::Key::PageDown);
    h.run();
    assert!(h.query_by_label_contains("message number 299").is_some());
    h.key_press(egui::Key::PageUp);
    h.key_press(egui::Key::PageUp);
    h.run();
    assert!(h.query_by_label_contains("message number 299").is_none());
    h.key_press(egui::Key::Escape);
    h.run();
    assert!(h.query_by_label_contains("message number 299").is_some());
    assert!(h.get_by_label("Message").is_focused(), "typing goes on");
}

/// The window titles the last frame asked for.
fn titles<S>(h: &Harness<'static, S>) -> Vec<String> {
    h.output().viewport_output[&egui::ViewportId::ROOT]
        .commands
        .iter()
        .filter_map(|c| match c {
            egui::ViewportCommand::Title(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_window_title_names_the_room_and_counts_what_is_unread() {
    let mut h = chat_with(&[]);
    h.step();
    h.state_mut()
        .on_client_event(ClientEvent::Room("#rust".into()), true);
    h.step();
    assert_eq!(titles(&h), ["#rust — chat.example.org:55555 — tlschat"]);
    h.step();
    assert!(titles(&h).is_empty(), "asked again without a change");
    for text in ["one", "two"] {
        h.state_mut().on_client_event(
            ClientEvent::Line(EntryKind::Message {
                room: "#lobby".into(),
                nick: "bob".into(),
                text: text.into(),
                at: None,
            }),
            true,
        );
    }
    h.step();
    assert_eq!(titles(&h), ["(2) #rust — chat.example.org:55555 — tlschat"]);
}

#[test]
fn a_private_conversation_can_be_closed() {
    let mut h = chat_with(&[]);
    h.state_mut().on_client_event(
        ClientEvent::Line(EntryKind::Private {
            from: "carol".into(),
            to: "alice".into(),
            text: "lunch?".into(),
        }),
        true,
    );
    h.run();
    h.get_by_label_contains("carol  1").click();
    h.run();
    assert!(
        matches!(h.state().viewing(), tlschat_gui::ConversationKey::Private(p) if p == "carol")
    );
    h.get_by_label("close the conversation with carol").click();
    h.run();
    assert!(
        h.query_by_label_contains("carol").is_none(),
        "gone from the list"
    );
    assert!(matches!(h.state().viewing(), tlschat_gui::ConversationKey::Room(r) if r == "#lobby"));
}

#[test]
fn a_password_typed_in_register_is_masked_and_up_does_not_recall_it() {
    let mut h = chat_with(&[]);
    h.run();
    enter_line(&mut h, "hello");
    let secret = "пароль-密码-🔑";
    let input = h.get_by_label("Message");
    input.type_text(&format!("/register {secret}"));
    h.run();
    let masked = format!("/register {}", "•".repeat(secret.chars().count()));
    assert_eq!(
        h.get_by_label("Message").value().unwrap_or_default(),
        masked
    );
    assert!(
        h.query_by_label_contains(secret).is_none(),
        "the password is on screen"
    );
    h.key_press(egui::Key::Enter);
    h.run();
    // Up brings back the line before, never the password's.
    h.key_press(egui::Key::ArrowUp);
    h.run();
    assert_eq!(
        h.get_by_label("Message").value().unwrap_or_default(),
        "hello"
    );
    h.key_press(egui::Key::ArrowUp);
    h.run();
    assert_eq!(
        h.get_by_label("Message").value().unwrap_or_default(),
        "hello"
    );
}

/// What the next frame copied to the clipboard after `event` (Copy or
/// Cut), with all of the input line selected.
fn copied_after(h: &mut Harness<'static, ChatView>, event: egui::Event) -> Vec<String> {
    h.get_by_label("Message").focus();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.run();
    h.event(event);
    h.step();
    h.output()
        .platform_output
        .commands
        .iter()
        .filter_map(|c| match c {
            egui::OutputCommand::CopyText(text) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_masked_password_cannot_be_copied_or_cut() {
    let mut h = chat_with(&[]);
    h.run();
    let input = h.get_by_label("Message");
    input.focus();
    input.type_text("hello");
    h.run();
    // The test's own check: a plain line is copied.
    assert_eq!(copied_after(&mut h, egui::Event::Copy), ["hello"]);

    h.key_press(egui::Key::Backspace);
    h.run();
    let line = "/register пароль-密码-🔑";
    h.get_by_label("Message").type_text(line);
    h.run();
    for event in [egui::Event::Copy, egui::Event::Cut] {
        let copied = copied_after(&mut h, event.clone());
        assert!(copied.is_empty(), "{event:?} copied {copied:?}");
    }
    let shown = h.get_by_label("Message").value().unwrap_or_default();
    assert!(shown.starts_with("/register •"), "{shown}");
}

#[test]
fn a_moderator_has_an_at_badge_in_the_users_list() {
    let mut chat = ChatView::new("chat.example.org:55555", "alice", None);
    chat.on_client_event(ClientEvent::Room("#lobby".into()), true);
    chat.on_client_event(
        ClientEvent::Line(EntryKind::Users {
            room: "#lobby".into(),
            nicks: ["alice", "@bob", "carol"].map(String::from).to_vec(),
        }),
        true,
    );
    let mut h = harness_of(chat);
    h.run();
    assert!(h.query_by_label("@bob").is_some(), "{:#?}", h.root());
    assert!(h.query_by_label("carol").is_some());
    assert!(h.query_by_label_contains("@carol").is_none());
}
