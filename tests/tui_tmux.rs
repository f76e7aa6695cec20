//! The terminal UI in a real pseudo-terminal: tmux runs the real `tlschat`
//! binary, `send-keys` types, `capture-pane` reads the rendered screen.
//! Linux only (CI installs tmux there); the UI code itself is portable and
//! unit-tested on every OS.
#![cfg(target_os = "linux")]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestServer, STEP};

/// A tmux server of its own (`-L`), so the test never touches a user's tmux.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(cmd: &str) -> Tmux {
        let ok = Command::new("tmux")
            .arg("-V")
            .output()
            .map(|o| o.status.success());
        assert!(
            matches!(ok, Ok(true)),
            "this test needs tmux (apt-get install tmux); .ci/run installs it"
        );
        let socket = format!("tlschat-test-{}", std::process::id());
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

    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "0"])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "0"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text`; returns the screen.
    fn wait_for(&self, text: &str) -> String {
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

#[tokio::test(flavor = "multi_thread")]
async fn typing_a_message_renders_it_and_others_appear() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let fingerprint = tlschat::certs::Fingerprint::of_der(&server.cert);
    let cmd = format!(
        "{} --nick dave --fingerprint {fingerprint} --known-hosts {} 127.0.0.1:{}; echo EXIT=$?; sleep 60",
        env!("CARGO_BIN_EXE_tlschat"),
        dir.path().join("known_hosts").display(),
        server.addr.port(),
    );
    let tmux = Tmux::start(&cmd);
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
