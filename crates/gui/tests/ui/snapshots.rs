//! Rendered snapshots of the connect, trust and chat screens, drawn by
//! wgpu on whatever adapter there is (lavapipe, Mesa's software Vulkan, in
//! CI). The screens get fixed data, so the pictures only change when the
//! drawing does (the messages' times included).
//!
//! Without an adapter the test prints why and skips, unless
//! TLSCHAT_TEST_REQUIRE names `vulkan` (or `all`), as `.ci/run` does:
//! then it fails.

use std::io::Write;

use chrono::TimeZone;
use egui_kittest::kittest::Queryable;
use egui_kittest::wgpu::WgpuTestRenderer;
use egui_kittest::{Harness, SnapshotResults};

use tlschat_client_core::state::{Batch, EntryKind, HistoryEnd, Kept};
use tlschat_client_core::ChangedCertificate;
use tlschat_client_core::ClientEvent;
use tlschat_gui::app::ConnectForm;
use tlschat_gui::screens;
use tlschat_gui::settings::Settings;
use tlschat_gui::ChatView;
use tlschat_protocol::Fingerprint;

const REQUIRE_VAR: &str = "TLSCHAT_TEST_REQUIRE";
const SIZE: [f32; 2] = [1024.0, 640.0];

/// A wgpu renderer, or `None` after saying why the caller skips.
fn renderer() -> Option<WgpuTestRenderer> {
    let made = std::panic::catch_unwind(WgpuTestRenderer::new);
    let why = match made {
        Ok(r) => return Some(r),
        Err(e) => e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "no wgpu adapter".to_owned()),
    };
    let current = std::thread::current();
    let test = current.name().unwrap_or("this test");
    let required = std::env::var(REQUIRE_VAR).is_ok_and(|list| {
        list.split(',')
            .map(str::trim)
            .any(|n| n == "vulkan" || n == "all")
    });
    if required {
        panic!("{test} needs a wgpu adapter (vulkan), and {REQUIRE_VAR} requires it: {why}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "{test}: skipping, no wgpu adapter here ({why}); install mesa-vulkan-drivers \
         or set {REQUIRE_VAR}=vulkan to make this a failure"
    );
    None
}

fn harness<S>(
    renderer: WgpuTestRenderer,
    state: S,
    draw: impl FnMut(&mut egui::Ui, &mut S) + 'static,
    dark: bool,
) -> Harness<'static, S> {
    let theme = if dark {
        egui::Theme::Dark
    } else {
        egui::Theme::Light
    };
    Harness::builder()
        .with_size(SIZE)
        .with_theme(theme)
        .with_context_setup(tlschat_gui::fonts::install)
        .renderer(renderer)
        .build_ui_state(draw, state)
}

/// The connect screen holding `form`, in the dark theme.
fn connect_harness(
    renderer: WgpuTestRenderer,
    form: ConnectForm,
    settings: Settings,
) -> Harness<'static, ConnectForm> {
    harness(
        renderer,
        form,
        move |ui, form| {
            screens::connect::show(ui, form, &settings);
        },
        true,
    )
}

#[test]
fn connect_and_trust_screens() {
    let mut results = SnapshotResults::new();
    let Some(r) = renderer() else { return };
    let settings = Settings {
        nickname: "alice".into(),
        recent_servers: vec!["chat.example.org".into(), "10.0.0.7:7000".into()],
    };
    let form = ConnectForm {
        server: "chat.example.org".into(),
        nickname: "alice".into(),
        ..ConnectForm::default()
    };
    let mut h = connect_harness(r, form, settings);
    h.run();
    h.snapshot("connect_dark");
    results.extend_harness(&mut h);

    let Some(r) = renderer() else { return };
    let fp = Fingerprint(std::array::from_fn(|i| (i as u8).wrapping_mul(37)));
    let mut h = harness(
        r,
        fp,
        |ui, fp| {
            screens::trust::first_contact(ui, "chat.example.org:55555", fp);
        },
        false,
    );
    h.run();
    h.snapshot("trust_light");
    results.extend_harness(&mut h);

    let changed = ChangedCertificate {
        server: "chat.example.org:55555".into(),
        known: fp,
        got: Fingerprint([0xc3; 32]),
        known_hosts: "/home/alice/.config/tlschat/known_hosts".into(),
        key: "chat.example.org:55555".into(),
        expected: tlschat_client_core::Expected::KnownHosts,
    };
    for dark in [true, false] {
        let Some(r) = renderer() else { return };
        let mut h = harness(
            r,
            changed.clone(),
            |ui, changed| {
                screens::trust::changed(ui, changed);
            },
            dark,
        );
        h.run();
        h.snapshot(if dark {
            "changed_dark"
        } else {
            "changed_light"
        });
        results.extend_harness(&mut h);
    }
}

fn line(kind: EntryKind) -> ClientEvent {
    ClientEvent::Line(kind)
}

fn msg(nick: &str, text: &str) -> ClientEvent {
    line(EntryKind::Message {
        room: "#lobby".into(),
        nick: nick.into(),
        text: text.into(),
        at: None,
    })
}

/// A local time on 2026-03-13 or 14 (the same picture in every time
/// zone).
fn local(day: u32, hour: u32, minute: u32) -> chrono::DateTime<chrono::Local> {
    chrono::NaiveDate::from_ymd_opt(2026, 3, day)
        .and_then(|d| d.and_hms_opt(hour, minute, 0))
        .and_then(|t| chrono::Local.from_local_datetime(&t).earliest())
        .expect("a local time")
}

/// alice connects and joins #lobby, where `users` are.
fn arrival(users: [&str; 6]) -> [ClientEvent; 4] {
    [
        ClientEvent::Connected {
            server: "chat.example.org:55555".into(),
            nick: "alice".into(),
            fingerprint: Fingerprint([0x5a; 32]),
            tls: "TLS 1.3, X25519MLKEM768".into(),
        },
        line(EntryKind::Join {
            room: "#lobby".into(),
            nick: "alice".into(),
        }),
        ClientEvent::Room("#lobby".into()),
        line(EntryKind::Users {
            room: "#lobby".into(),
            nicks: users.map(String::from).to_vec(),
        }),
    ]
}

/// A chat view with a few rooms, users and messages in several scripts.
fn busy_chat() -> ChatView {
    let mut chat = ChatView::new("chat.example.org:55555", "alice", None);
    let arrived = arrival(["alice", "bob", "dmitri", "yuki", "noor", "carol"]);
    let events = arrived.into_iter().chain([
        line(EntryKind::Rooms(vec![
            ("#lobby".into(), 6),
            ("#rust".into(), 12),
            ("#music".into(), 3),
        ])),
        msg("bob", "morning all! anyone up for the release tonight?"),
        msg("dmitri", "привет! я готов, только кофе допью ☕"),
        msg("yuki", "こんにちは、私も参加します 🎉"),
        msg("noor", "مرحبا بالجميع 123 ok"),
        msg("dmitri", "שלום עולם!"),
        line(EntryKind::Action {
            room: "#lobby".into(),
            nick: "carol".into(),
            text: "waves 👋🏽".into(),
            at: None,
        }),
        msg(
            "bob",
            "alice, can you check the fingerprint with the new box?",
        ),
        msg("alice", "on it"),
        line(EntryKind::Private {
            from: "carol".into(),
            to: "alice".into(),
            text: "lunch later? 🍜".into(),
        }),
        line(EntryKind::Error {
            code: "no-such-nick".into(),
            text: "nobody called dave is connected".into(),
        }),
    ]);
    // A fixed clock, a minute between lines.
    for (minute, event) in (41..).zip(events) {
        chat.on_client_event_at(event, true, local(14, 9, minute));
    }
    chat
}

/// The chat screen showing `chat`.
fn chat_harness(
    renderer: WgpuTestRenderer,
    chat: ChatView,
    dark: bool,
) -> Harness<'static, ChatView> {
    harness(
        renderer,
        chat,
        |ui, chat| {
            chat.show(ui, std::time::Instant::now());
        },
        dark,
    )
}

#[test]
fn chat_screen_in_both_themes() {
    let mut results = SnapshotResults::new();
    for dark in [true, false] {
        let Some(r) = renderer() else { return };
        let mut h = chat_harness(r, busy_chat(), dark);
        h.run();
        h.snapshot(if dark { "chat_dark" } else { "chat_light" });
        results.extend_harness(&mut h);
    }
}

fn kept(minute: u32, nick: &str, action: bool, text: &str) -> Kept {
    let at = local(13, 22, minute).timestamp_millis();
    Kept {
        room: "#lobby".into(),
        at: u64::try_from(at).expect("after 1970"),
        nick: nick.into(),
        action,
        text: text.into(),
    }
}

#[test]
fn history_dimmed_with_dates_a_separator_and_search_hits() {
    let mut results = SnapshotResults::new();
    let Some(r) = renderer() else { return };
    let mut chat = ChatView::new("chat.example.org:55555", "alice", None);
    let history = [
        kept(2, "dmitri", false, "кто-нибудь видел релиз? 🚀"),
        kept(5, "noor", false, "نعم، قبل ساعة"),
        kept(9, "yuki", true, "は寝ます 😴"),
        kept(14, "zoe", false, "à demain, e\u{301}quipe 👩‍👩‍👧"),
    ];
    let mut events = arrival(["alice", "bob", "dmitri", "yuki", "noor", "zoe"]).to_vec();
    events.extend(history.iter().cloned().map(|k| line(EntryKind::History(k))));
    events.push(line(EntryKind::HistoryEnd(HistoryEnd {
        room: "#lobby".into(),
        batch: Batch::Replay,
        sent: 4,
        left: 0,
        shown: 4,
        oldest: Some(history[0].at),
        newest_shown: Some(history[3].at),
    })));
    events.extend([
        msg("bob", "morning all! what did I miss?"),
        msg("dmitri", "привет! всё выше ☝️"),
    ]);
    events.extend([&history[3], &history[0]].map(|k| line(EntryKind::Found(k.clone()))));
    events.push(line(EntryKind::FoundEnd {
        room: "#lobby".into(),
        count: 2,
        more: false,
    }));
    for (minute, event) in (41..).zip(events) {
        chat.on_client_event_at(event, true, local(14, 9, minute));
    }
    let mut h = chat_harness(r, chat, true);
    h.run();
    // The kept lines say when they were said, the live ones when they came.
    assert!(h
        .query_by_label_contains("2026-03-13 22:09  * yuki は寝ます")
        .is_some());
    assert!(h.query_by_label("— history —").is_some());
    assert!(h
        .query_by_label_contains("bob  morning all! what did I miss?")
        .is_some_and(|l| l.value().is_some_and(|v| v.starts_with("09:"))));
    assert_eq!(
        h.query_all_by_label_contains("2026-03-13 22:14  zoe")
            .count(),
        2,
        "in the timeline and among the hits"
    );
    h.snapshot("history_dark");
    results.extend_harness(&mut h);
}

#[test]
fn a_typed_password_is_masked_and_a_moderator_badged() {
    let mut results = SnapshotResults::new();
    let Some(r) = renderer() else { return };
    let mut chat = busy_chat();
    let at = chrono::Local
        .with_ymd_and_hms(2026, 3, 14, 10, 0, 0)
        .earliest()
        .expect("a local time");
    let users = ["alice", "@bob", "dmitri", "yuki", "noor", "carol"];
    chat.on_client_event_at(
        line(EntryKind::Users {
            room: "#lobby".into(),
            nicks: users.map(String::from).to_vec(),
        }),
        true,
        at,
    );
    let mut h = chat_harness(r, chat, true);
    h.run();
    let input = h.get_by_label("Message");
    input.focus();
    input.type_text("/password hunter2 пароль-密码-🔑");
    h.run();
    h.snapshot("chat_password_dark");
    results.extend_harness(&mut h);
}

#[test]
fn the_connect_screen_of_an_invite() {
    let mut results = SnapshotResults::new();
    let Some(r) = renderer() else { return };
    let link = "tlschat://chat.example.org:55555/?fp=SHA256:\
        5ba093e7d4c1a0a4f2f0c4ef3b2b1c0f9a8e7d6c5b4a39281706f5e4d3c2b13b\
        &code=abcdefghijklmnopqrstuvwxyz234567";
    let mut form = ConnectForm::default();
    form.take_invite(tlschat_protocol::InviteLink::parse(link).expect("a link"));
    let settings = Settings::default();
    let mut h = connect_harness(r, form, settings);
    h.run();
    assert!(h
        .query_by_label_contains("invited: the certificate SHA256:5ba0…b13b will be trusted")
        .is_some());
    h.snapshot("connect_invite_dark");
    results.extend_harness(&mut h);
}
