//! The terminal UI in a real pseudo-terminal: tmux runs the real `tlschat`
//! binary, `send-keys` types, `capture-pane` reads the rendered screen.
//! Linux only; without tmux the tests are skipped with the reason printed,
//! or fail where CI requires it (see the harness' `outside_program`). The
//! UI code itself is portable and unit-tested on every OS.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{outside_program, Client, TestServer, STEP};

/// A tmux server of its own (`-L`), so the test never touches a user's tmux.
pub(crate) struct Tmux {
    socket: String,
}

impl Tmux {
    pub(crate) fn start(cmd: &str) -> Tmux {
        // One tmux server per test: tests run in parallel.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = format!("tlschat-test-{}-{n}", std::process::id());
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "30",
                cmd,
            ])
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux new-session");
        assert!(status.success());
        Tmux { socket }
    }

    pub(crate) fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "0"])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    pub(crate) fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "0"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen with its colours and attributes as escape sequences
    /// (`capture-pane -e`), one row a line.
    pub(crate) fn styled_screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-e", "-p", "-t", "0"])
            .output()
            .expect("tmux capture-pane -e");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text`; returns the screen.
    pub(crate) fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                start.elapsed() < STEP,
                "`{text}` did not appear on the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// The terminal UI as `dave`, pinned to `server`'s certificate, with its
/// known_hosts in `dir`; the shell prints its exit code after it.
fn dave_in_tmux(server: &TestServer, dir: &Path) -> Tmux {
    let fingerprint = tlschat_protocol::Fingerprint::of_der(&server.cert);
    let cmd = format!(
        "{} --nick dave --fingerprint {fingerprint} --known-hosts {} 127.0.0.1:{}; echo EXIT=$?; sleep 60",
        env!("CARGO_BIN_EXE_tlschat"),
        dir.join("known_hosts").display(),
        server.addr.port(),
    );
    Tmux::start(&cmd)
}

#[tokio::test(flavor = "multi_thread")]
async fn typing_a_message_renders_it_and_others_appear() {
    if !outside_program("tmux", &["-V"]) {
        return;
    }
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tmux = dave_in_tmux(&server, dir.path());
    let screen = tmux.wait_for("connected");
    assert!(screen.contains("dave in #lobby"), "status bar:\n{screen}");

    let mut erin = server.login("erin").await;
    tmux.wait_for("erin joined #lobby");
    erin.send("hello dave").await;
    let screen = tmux.wait_for("erin: hello dave");
    // The sidebar lists both users.
    assert!(screen.contains("2 users"), "sidebar:\n{screen}");

    tmux.keys(&["hi erin from the tui", "Enter"]);
    tmux.wait_for("dave: hi erin from the tui");
    erin.wait_for("MSG #lobby dave hi erin from the tui").await;

    // Actions are rendered as such.
    erin.send_raw(b"/me waves\n").await;
    tmux.wait_for("* erin waves");

    tmux.keys(&["/quit", "Enter"]);
    let screen = tmux.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "exit status:\n{screen}");
    erin.wait_for("PART #lobby dave quit").await;
    server.stop().await;
}

impl Tmux {
    /// Types `text` literally (`send-keys -l`): each character as a key.
    pub(crate) fn type_text(&self, text: &str) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "0", "-l", text])
            .status()
            .expect("tmux send-keys -l");
        assert!(status.success());
    }

    /// The terminal cursor's column, as tmux has it.
    fn cursor_x(&self) -> usize {
        let out = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "display",
                "-p",
                "-t",
                "0",
                "#{cursor_x}",
            ])
            .output()
            .expect("tmux display");
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("cursor_x: {text:?}"))
    }

    /// Waits until the terminal cursor is in column `x` (the UI places it
    /// just after drawing the text).
    fn wait_cursor_x(&self, x: usize) {
        let start = Instant::now();
        while self.cursor_x() != x {
            assert!(
                start.elapsed() < STEP,
                "the cursor stays in column {}, not {x}:\n{}",
                self.cursor_x(),
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `pred` holds for the screen's rows; returns them.
    fn wait_rows(&self, what: &str, pred: impl Fn(&[&str]) -> bool) -> Vec<String> {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            let rows: Vec<&str> = screen.lines().collect();
            if pred(&rows) {
                return rows.into_iter().map(str::to_owned).collect();
            }
            assert!(
                start.elapsed() < STEP,
                "{what}: not on the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// [`dave_in_tmux`] logged in, and `erin` (a raw client) joined beside.
async fn dave_with_erin(server: &TestServer, dir: &Path) -> (Tmux, Client) {
    let tmux = dave_in_tmux(server, dir);
    tmux.wait_for("connected");
    let erin = server.login("erin").await;
    tmux.wait_for("erin joined #lobby");
    (tmux, erin)
}

/// The input line (the last of the 30 rows), trimmed.
fn input_row(rows: &[&str]) -> Option<String> {
    rows.get(29).map(|r| r.trim_end().to_owned())
}

/// The display column where `needle` starts in `row`, if it is there.
fn column_of(row: &str, needle: &str) -> Option<usize> {
    row.split_once(needle)
        .map(|(before, _)| tlschat::tui::text::str_width(before))
}

/// Cyrillic, CJK (two columns each) and an emoji ZWJ sequence are typed,
/// edited with Backspace (which takes whole characters: the family emoji
/// goes at once), sent, and shown, with the input line, the status bar
/// and the sidebar border where they belong.
#[tokio::test(flavor = "multi_thread")]
async fn non_ascii_text_is_typed_edited_and_shown_in_place() {
    if !outside_program("tmux", &["-V"]) {
        return;
    }
    const FAMILY: &str = "👨\u{200D}👩\u{200D}👧";
    const WIDTH: usize = 120;
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (tmux, mut erin) = dave_with_erin(&server, dir.path()).await;

    tmux.type_text(&format!("Привет 你好 {FAMILY}x"));
    tmux.wait_rows("the typed line", |rows| {
        input_row(rows) == Some(format!("> Привет 你好 {FAMILY}x"))
    });
    // "> " + 6 + 1 + 4 + 1 + 2 + 1 columns.
    tmux.wait_cursor_x(17);
    // x, the whole family, the space, 好.
    tmux.keys(&["BSpace", "BSpace", "BSpace", "BSpace"]);
    tmux.wait_rows("the line after four Backspaces", |rows| {
        input_row(rows).as_deref() == Some("> Привет 你")
    });
    tmux.wait_cursor_x(11);

    tmux.type_text(&format!(" 世界 {FAMILY} ok"));
    tmux.keys(&["Enter"]);
    let sent = format!("Привет 你 世界 {FAMILY} ok");
    erin.wait_for(&format!("MSG #lobby dave {sent}")).await;
    tmux.wait_rows("the sent line", |rows| {
        rows.iter().any(|r| r.contains(&format!("dave: {sent}")))
    });
    erin.send(&format!("ответ 漢字 {FAMILY}")).await;
    let rows = tmux.wait_rows("erin's answer", |rows| {
        rows.iter()
            .any(|r| r.contains(&format!("erin: ответ 漢字 {FAMILY}")))
    });

    // The layout: every message row has the sidebar border in the same
    // column (wide characters took exactly the columns the UI counted),
    // the status bar and the input line are the last two rows.
    let border = WIDTH - usize::from(tlschat::tui::ui::SIDEBAR_WIDTH);
    for (y, row) in rows.iter().enumerate().take(28) {
        assert_eq!(
            column_of(row, "│"),
            Some(border),
            "row {y} {row:?}:\n{}",
            rows.join("\n")
        );
    }
    assert!(rows[28].contains("dave in #lobby"), "{}", rows.join("\n"));
    assert_eq!(rows[29].trim_end(), ">", "{}", rows.join("\n"));
    tmux.wait_cursor_x(2);

    tmux.keys(&["/quit", "Enter"]);
    let screen = tmux.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "exit status:\n{screen}");
    server.stop().await;
}

/// `/register` typed in the terminal UI shows only bullets for the
/// password, is sent as the command it is, and Up never brings it back.
#[tokio::test(flavor = "multi_thread")]
async fn a_password_is_masked_while_typed_and_kept_out_of_the_history() {
    if !outside_program("tmux", &["-V"]) {
        return;
    }
    const PASSWORD: &str = "пароль-密码-🔑";
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (tmux, mut erin) = dave_with_erin(&server, dir.path()).await;

    tmux.type_text("привет");
    tmux.keys(&["Enter"]);
    erin.wait_for("MSG #lobby dave привет").await;
    tmux.type_text(&format!("/register {PASSWORD}"));
    let bullets = "•".repeat(PASSWORD.chars().count());
    let rows = tmux.wait_rows("the masked line", |rows| {
        input_row(rows) == Some(format!("> /register {bullets}"))
    });
    assert!(
        rows.iter().all(|r| !r.contains("пароль")),
        "{}",
        rows.join("\n")
    );
    tmux.keys(&["Enter"]);
    tmux.wait_rows("the emptied input line", |rows| {
        input_row(rows).as_deref() == Some(">")
    });
    // Up recalls the message before it, and nothing older.
    tmux.keys(&["Up"]);
    tmux.wait_rows("the recalled line", |rows| {
        input_row(rows).as_deref() == Some("> привет")
    });
    tmux.keys(&["Up"]);
    tmux.keys(&["Up"]);
    std::thread::sleep(Duration::from_millis(300));
    let screen = tmux.screen();
    assert!(!screen.contains("пароль"), "{screen}");
    assert_eq!(
        input_row(&screen.lines().collect::<Vec<_>>()).as_deref(),
        Some("> привет"),
        "{screen}"
    );
    tmux.keys(&["C-u", "/quit", "Enter"]);
    let screen = tmux.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "exit status:\n{screen}");
    server.stop().await;
}
