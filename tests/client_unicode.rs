//! The real `tlschat` binary in plain mode chats in every script: lines in
//! Cyrillic, Greek, Arabic, Hebrew, CJK, Thai, Devanagari, Persian (with
//! ZWNJ), combining marks and emoji (ZWJ sequences, skin tones, flags) go
//! from the client through the server to another connection and back, and
//! so do `/me`, `/msg` and `/quit` with non-ASCII arguments.
//!
//! The server is the in-process one of `tests/common` on a 127.0.0.1
//! ephemeral port; the other side of the chat is that harness' TLS client.
//! Every client gets its own known_hosts and HOME in a temp dir, pins the
//! server's fingerprint, and is killed if a bounded wait runs out.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::TestServer;

const CLIENT: &str = env!("CARGO_BIN_EXE_tlschat");
/// Bound for any one wait: a line, an exit.
const WAIT: Duration = Duration::from_secs(20);

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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Lines from one of the child's pipes, read by a thread.
struct Pipe {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
    closed: bool,
}

impl Pipe {
    fn spawn(stream: impl Read + Send + 'static) -> Pipe {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        // Not lossy: the client must print valid UTF-8.
                        let line = String::from_utf8(buf.clone())
                            .unwrap_or_else(|e| panic!("output is not UTF-8: {e}"));
                        let line = line.trim_end_matches(['\n', '\r']).to_owned();
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Pipe {
            rx,
            seen: Vec::new(),
            closed: false,
        }
    }

    fn poll(&mut self) {
        while let Ok(l) = self.rx.try_recv() {
            self.seen.push(l);
        }
    }

    /// Waits until a line matching `pred` has been printed (anywhere in the
    /// output so far); false at the deadline or when the pipe closed.
    fn wait_for(&mut self, pred: &dyn Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + WAIT;
        let mut checked = 0;
        loop {
            if self.seen[checked..].iter().any(|l| pred(l)) {
                return true;
            }
            checked = self.seen.len();
            if self.closed {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.rx.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => return false,
                Err(mpsc::RecvTimeoutError::Disconnected) => self.closed = true,
            }
        }
    }
}

/// A `tlschat --plain` child; killed and reaped on drop.
struct Chat {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Pipe,
    err: Pipe,
    _home: tempfile::TempDir,
}

impl Chat {
    fn start(server: &TestServer, nick: &str) -> Chat {
        let home = tempfile::tempdir().expect("temp dir");
        let fingerprint = tlschat_protocol::Fingerprint::of_der(&server.cert);
        let mut child = Command::new(CLIENT)
            .env_remove("TLSCHAT_PASSWORD")
            .env_remove("TLSCHAT_NICK")
            .env_remove("TLSCHAT_KNOWN_HOSTS")
            .env_remove("RUST_LOG")
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join(".config"))
            .arg("--plain")
            .args(["--nick", nick, "--fingerprint", &fingerprint.to_string()])
            .arg("--known-hosts")
            .arg(home.path().join("known_hosts"))
            .arg(server.addr.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CLIENT}: {e}"));
        let stdin = child.stdin.take();
        let out = Pipe::spawn(child.stdout.take().expect("stdout"));
        let err = Pipe::spawn(child.stderr.take().expect("stderr"));
        let mut chat = Chat {
            child,
            stdin,
            out,
            err,
            _home: home,
        };
        chat.expect_out(&format!("* {nick} joined #lobby"));
        chat
    }

    fn dump(&mut self) -> String {
        self.out.poll();
        self.err.poll();
        let status = self.child.try_wait().ok().flatten();
        format!(
            "exit: {status:?}\nstdout:\n{}\nstderr:\n{}",
            self.out.seen.join("\n"),
            self.err.seen.join("\n")
        )
    }

    #[track_caller]
    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        if let Err(e) = stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush())
        {
            panic!("cannot write to the client: {e}\n{}", self.dump());
        }
    }

    /// Waits for exactly this stdout line.
    #[track_caller]
    fn expect_out(&mut self, line: &str) {
        if !self.out.wait_for(&|l| l == line) {
            panic!("no stdout line {line:?} within {WAIT:?}\n{}", self.dump());
        }
    }

    /// Waits for a stderr line containing `needle`.
    #[track_caller]
    fn expect_err(&mut self, needle: &str) {
        if !self.err.wait_for(&|l| l.contains(needle)) {
            panic!(
                "no stderr line with {needle:?} within {WAIT:?}\n{}",
                self.dump()
            );
        }
    }

    /// Waits (bounded) for the child to exit by itself; its exit code.
    #[track_caller]
    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the client did not exit within {WAIT:?}\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        // Everything it printed has been read once both pipes are closed.
        self.out.wait_for(&|_| false);
        self.err.wait_for(&|_| false);
        status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {status}\n{}", self.dump()))
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn lines_in_every_script_go_both_ways() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let mut ivan = Chat::start(&server, "ivan");
    let mut olga = rt.block_on(server.login("olga"));
    ivan.expect_out("* olga joined #lobby");

    // The report this test comes from: an ASCII line, then Cyrillic.
    ivan.send("hello");
    for (script, text) in std::iter::once(&("ASCII", "hello")).chain(SAMPLES) {
        if *script != "ASCII" {
            ivan.send(text);
        }
        // Client → server → another connection, and the echo shown as sent.
        rt.block_on(olga.expect(&format!("MSG #lobby ivan {text}")));
        ivan.expect_out(&format!("[#lobby] ivan: {text}"));
        // Another connection → client output.
        rt.block_on(olga.send(text));
        rt.block_on(olga.expect(&format!("MSG #lobby olga {text}")));
        ivan.expect_out(&format!("[#lobby] olga: {text}"));
    }

    // `/me` and `/msg` with non-ASCII arguments, both ways.
    ivan.send("/me машет рукой 👋🏽");
    rt.block_on(olga.expect("ACTION #lobby ivan машет рукой 👋🏽"));
    ivan.expect_out("[#lobby] * ivan машет рукой 👋🏽");
    ivan.send("/msg olga 你好，世界 👨\u{200D}👩\u{200D}👧");
    rt.block_on(olga.expect("PRIVMSG ivan olga 你好，世界 👨\u{200D}👩\u{200D}👧"));
    ivan.expect_out("[ivan -> olga] 你好，世界 👨\u{200D}👩\u{200D}👧");
    rt.block_on(olga.send("/msg ivan שלום, מה שלומך?"));
    rt.block_on(olga.expect("PRIVMSG olga ivan שלום, מה שלומך?"));
    ivan.expect_out("[olga -> ivan] שלום, מה שלומך?");
    rt.block_on(olga.send("/me يلوّح"));
    rt.block_on(olga.expect("ACTION #lobby olga يلوّح"));
    ivan.expect_out("[#lobby] * olga يلوّح");
    // Nicknames are ASCII (src/protocol/names.rs): a Cyrillic or CJK one
    // is nobody, and the session goes on.
    ivan.send("/msg иван привет");
    ivan.expect_out("! no-such-nick: иван is not connected");
    ivan.send("/msg 李雷 你好");
    ivan.expect_out("! no-such-nick: 李雷 is not connected");
    ivan.send("/ping токен-😀");
    ivan.expect_out("* pong токен-😀");

    // `/quit` with a non-ASCII reason: the others see it, the client exits 0.
    ivan.send("/quit до свидания 👋");
    rt.block_on(olga.expect("PART #lobby ivan quit: до свидания 👋"));
    assert_eq!(ivan.wait_exit(), 0, "{}", ivan.dump());
    ivan.expect_err("-- disconnected");
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
        let mut chat = Chat::start(&server, nick);
        rt.block_on(watcher.expect(&format!("JOIN #lobby {nick}")));
        for line in lines {
            chat.send(line);
            if !line.starts_with('/') {
                rt.block_on(watcher.expect(&format!("MSG #lobby {nick} {line}")));
            }
        }
        chat.stdin = None;
        rt.block_on(watcher.expect(&format!("PART #lobby {nick} {part}")));
        assert_eq!(chat.wait_exit(), 0, "{}", chat.dump());
    }
    rt.block_on(server.stop());
}
