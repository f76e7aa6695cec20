//! The real `tlschat` binary in plain mode chats in every script: lines in
//! Cyrillic, Greek, Arabic, Hebrew, CJK, Thai, Devanagari, Persian (with
//! ZWNJ), combining marks and emoji (ZWJ sequences, skin tones, flags) go
//! from the client through the server to another connection and back, and
//! so do `/me`, `/msg` and `/quit` with non-ASCII arguments.
//!
//! The server is the harness' in-process one on a 127.0.0.1
//! ephemeral port; the other side of the chat is its TLS client.
//! Every client gets its own known_hosts and HOME in a temp dir, pins the
//! server's fingerprint, and is killed if a bounded wait runs out.

use crate::harness::{client_command, runtime, ClientProcess, Reading, TestServer};

/// Real text in many scripts; each must arrive and be shown unchanged.
const SAMPLES: &[(&str, &str)] = &[
    ("Cyrillic", "привет мир"),
    ("Greek", "Καλημέρα κόσμε"),
    ("Arabic", "مرحبا بالعالم"),
    ("Hebrew", "שלום עולם"),
    ("Chinese", "你好，世界"),
    ("Japanese", "こんにちは、世界。カタカナ"),
    ("Korean", "안녕하세요 세계"),
    ("Thai", "สวัสดีชาวโลก"),
    ("Devanagari", "नमस्ते दुनिया"),
    ("Persian with ZWNJ", "می\u{200C}خواهم"),
    ("combining marks", "e\u{301}te\u{301} n\u{303}o\u{308}"),
    ("emoji ZWJ family", "👨\u{200D}👩\u{200D}👧\u{200D}👦"),
    ("emoji skin tone", "👋🏽 👍🏿"),
    ("emoji ZWJ + skin tone", "🧑🏽\u{200D}💻"),
    (
        "flags",
        "🇺🇦🇯🇵 🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
    ),
    ("emoji presentation", "❤\u{FE0F} ☺\u{FE0F}"),
    ("fifth byte inside a character", "ab😀"),
];

/// A `tlschat --plain` child for `nick`, pinned to `server`'s certificate,
/// once it shows that it joined; its output must be UTF-8. The temp dir
/// holds its HOME and known_hosts.
fn start(server: &TestServer, nick: &str) -> (ClientProcess, tempfile::TempDir) {
    let home = tempfile::tempdir().expect("temp dir");
    let fingerprint = tlschat_protocol::Fingerprint::of_der(&server.cert).to_string();
    let host = server.addr.to_string();
    let cmd = client_command(
        home.path(),
        &home.path().join("known_hosts"),
        &[
            "--plain",
            "--nick",
            nick,
            "--fingerprint",
            &fingerprint,
            &host,
        ],
    );
    let strict = Reading {
        strict_utf8: true,
        ..Reading::default()
    };
    let mut chat = ClientProcess::spawn_with(cmd, strict);
    chat.saw_out(&format!("* {nick} joined #lobby"));
    (chat, home)
}

#[test]
fn lines_in_every_script_go_both_ways() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let (mut ivan, _home) = start(&server, "ivan");
    let mut olga = rt.block_on(server.login("olga"));
    ivan.saw_out("* olga joined #lobby");

    // The report this test comes from: an ASCII line, then Cyrillic.
    ivan.send("hello");
    for (script, text) in std::iter::once(&("ASCII", "hello")).chain(SAMPLES) {
        if *script != "ASCII" {
            ivan.send(text);
        }
        // Client → server → another connection, and the echo shown as sent.
        rt.block_on(olga.expect(&format!("MSG #lobby ivan {text}")));
        ivan.saw_out(&format!("[#lobby] ivan: {text}"));
        // Another connection → client output.
        rt.block_on(olga.send(text));
        rt.block_on(olga.expect(&format!("MSG #lobby olga {text}")));
        ivan.saw_out(&format!("[#lobby] olga: {text}"));
    }

    // `/me` and `/msg` with non-ASCII arguments, both ways.
    ivan.send("/me машет рукой 👋🏽");
    rt.block_on(olga.expect("ACTION #lobby ivan машет рукой 👋🏽"));
    ivan.saw_out("[#lobby] * ivan машет рукой 👋🏽");
    ivan.send("/msg olga 你好，世界 👨\u{200D}👩\u{200D}👧");
    rt.block_on(olga.expect("PRIVMSG ivan olga 你好，世界 👨\u{200D}👩\u{200D}👧"));
    ivan.saw_out("[ivan -> olga] 你好，世界 👨\u{200D}👩\u{200D}👧");
    rt.block_on(olga.send("/msg ivan שלום, מה שלומך?"));
    rt.block_on(olga.expect("PRIVMSG olga ivan שלום, מה שלומך?"));
    ivan.saw_out("[olga -> ivan] שלום, מה שלומך?");
    rt.block_on(olga.send("/me يلوّح"));
    rt.block_on(olga.expect("ACTION #lobby olga يلوّح"));
    ivan.saw_out("[#lobby] * olga يلوّح");
    // Nicknames are ASCII (crates/protocol/src/names.rs): a Cyrillic or CJK one
    // is nobody, and the session goes on.
    ivan.send("/msg иван привет");
    ivan.saw_out("! no-such-nick: иван is not connected");
    ivan.send("/msg 李雷 你好");
    ivan.saw_out("! no-such-nick: 李雷 is not connected");
    ivan.send("/ping токен-😀");
    ivan.saw_out("* pong токен-😀");

    // `/quit` with a non-ASCII reason: the others see it, the client exits 0.
    ivan.send("/quit до свидания 👋");
    rt.block_on(olga.expect("PART #lobby ivan quit: до свидания 👋"));
    assert_eq!(ivan.wait_exit(), 0, "{}", ivan.dump());
    ivan.saw_err("-- disconnected");
    rt.block_on(server.stop());
}

/// End of input after lines whose fifth byte falls inside a character, and
/// `/QUIT` (any case) with a Greek reason: every line is sent, exit 0.
#[test]
fn quit_variants_with_non_ascii_after_multibyte_lines() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let mut watcher = rt.block_on(server.login("watcher"));
    for (nick, lines, part) in [
        (
            "eleni",
            &["γειά σου", "/QUIT αντίο φίλε"][..],
            "quit: αντίο φίλε",
        ),
        ("dana", &["שלום", "/Quit להתראות"][..], "quit: להתראות"),
        // End of input: the client says `/quit` itself.
        ("mei", &["两个", "ab😀"][..], "quit"),
    ] {
        let (mut chat, _home) = start(&server, nick);
        rt.block_on(watcher.expect(&format!("JOIN #lobby {nick}")));
        for line in lines {
            chat.send(line);
            if !line.starts_with('/') {
                rt.block_on(watcher.expect(&format!("MSG #lobby {nick} {line}")));
            }
        }
        chat.close_stdin();
        rt.block_on(watcher.expect(&format!("PART #lobby {nick} {part}")));
        assert_eq!(chat.wait_exit(), 0, "{}", chat.dump());
    }
    rt.block_on(server.stop());
}
