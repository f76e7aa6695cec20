//! `openssl s_client` is a valid tlschat client (protocol.md: "Anything a
//! person can type into `openssl s_client -quiet -connect HOST:PORT` … is a
//! valid client"). These tests run the real `openssl` binary against the
//! real `tlschat-server` binary; without `openssl` on PATH they are
//! skipped with the reason printed, or fail where CI requires it (see the
//! harness' `outside_program`).

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// How long to wait for one line from s_client.
const STEP: Duration = Duration::from_secs(15);
const PASSWORD: &str = "openssl admin password";

/// Whether `openssl` runs; see [`outside_program`] for when its absence
/// skips a test and when it fails one.
fn have_openssl() -> bool {
    outside_program("openssl", &["version"])
}

/// `openssl s_client -quiet` with piped stdin, its output read by the
/// harness' [`Pipe`]s. Killed on drop.
struct SClient {
    child: Child,
    stdin: ChildStdin,
    out: Pipe,
    /// How far the test has read `out`.
    pos: usize,
    err: Pipe,
}

impl SClient {
    fn connect(addr: SocketAddr) -> SClient {
        SClient::spawn(addr, &[])
    }

    fn spawn(addr: SocketAddr, extra: &[&std::ffi::OsStr]) -> SClient {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", &addr.to_string()])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start openssl s_client");
        let stdin = child.stdin.take().expect("stdin");
        let out = Pipe::spawn(child.stdout.take().expect("stdout"));
        let err = Pipe::spawn(child.stderr.take().expect("stderr"));
        SClient {
            child,
            stdin,
            out,
            pos: 0,
            err,
        }
    }

    fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("write to s_client: {e}\n{}", self.diagnostics()));
    }

    /// The next line, or `None` once s_client's stdout closed.
    fn try_recv(&mut self) -> Option<String> {
        let line = self.out.next_matching(&mut self.pos, STEP, |_| true);
        if line.is_none() && !self.out.is_closed() {
            panic!(
                "no line from s_client within {STEP:?}\n{}",
                self.diagnostics()
            );
        }
        line
    }

    fn recv(&mut self) -> String {
        self.try_recv()
            .unwrap_or_else(|| panic!("s_client's output ended\n{}", self.diagnostics()))
    }

    fn expect(&mut self, line: &str) {
        let got = self.recv();
        assert_eq!(got, line, "{}", self.diagnostics());
    }

    /// Skips lines until one starts with `prefix`.
    fn wait_for(&mut self, prefix: &str) -> String {
        loop {
            let got = self.recv();
            if got.starts_with(prefix) {
                return got;
            }
        }
    }

    /// Logs in as `nick` and reads `WELCOME`, `JOIN`, `USERS`.
    fn login(&mut self, nick: &str) {
        self.expect("NICK");
        self.send(nick);
        self.expect(&format!("WELCOME {nick} #lobby"));
        self.expect(&format!("JOIN #lobby {nick}"));
        let users = self.recv();
        assert!(users.starts_with("USERS #lobby "), "{users}");
    }

    fn diagnostics(&self) -> String {
        format!("s_client stderr:\n{}", self.err.text())
    }
}

impl Drop for SClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s_client_chats_with_a_rust_client() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_password(&tmp.path().join("data"), PASSWORD);

    let mut alice = server.login("alice").await;
    let mut carol = SClient::connect(server.addr);
    carol.login("carol");
    alice.expect("JOIN #lobby carol").await;

    carol.send("hello from openssl");
    alice.expect("MSG #lobby carol hello from openssl").await;
    carol.expect("MSG #lobby carol hello from openssl");

    alice.send("hi carol, from rustls").await;
    carol.expect("MSG #lobby alice hi carol, from rustls");
    alice.expect("MSG #lobby alice hi carol, from rustls").await;

    // Commands and private messages, both ways.
    carol.send("/msg alice psst");
    alice.expect("PRIVMSG carol alice psst").await;
    carol.expect("PRIVMSG carol alice psst");
    alice.send("/me waves").await;
    carol.expect("ACTION #lobby alice waves");
    carol.send("/ping t1");
    carol.wait_for("PONG t1");

    // s_client going away is a departure like any other.
    carol.send("/quit bye");
    alice.wait_for("PART #lobby carol").await;
    drop(carol);
}

#[test]
fn two_s_clients_talk_to_each_other() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_password(&tmp.path().join("data"), PASSWORD);

    let mut dave = SClient::connect(server.addr);
    dave.login("dave");
    let mut erin = SClient::connect(server.addr);
    erin.login("erin");
    dave.expect("JOIN #lobby erin");

    erin.send("dave, can you hear me?");
    dave.expect("MSG #lobby erin dave, can you hear me?");
    erin.expect("MSG #lobby erin dave, can you hear me?");
    dave.send("loud and clear");
    erin.expect("MSG #lobby dave loud and clear");
    dave.expect("MSG #lobby dave loud and clear");

    erin.send("/join #side");
    dave.wait_for("PART #lobby erin");
    erin.wait_for("USERS #side");
    dave.send("/msg erin still there?");
    erin.expect("PRIVMSG dave erin still there?");
    dave.expect("PRIVMSG dave erin still there?");

    erin.send("/join #lobby");
    dave.expect("JOIN #lobby erin");

    // Killing one s_client (no /quit, no close_notify) is noticed.
    drop(erin);
    let part = dave.wait_for("PART #lobby erin");
    dave.send("/who");
    let users = dave.wait_for("USERS #lobby");
    assert_eq!(users, "USERS #lobby dave", "after {part}");
}

/// s_client verifying the generated certificate against itself (the way a
/// careful operator would) succeeds, and openssl computes the same SHA-256
/// fingerprint the server printed.
#[test]
fn s_client_verifies_the_generated_certificate_and_fingerprint() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_password(&tmp.path().join("data"), PASSWORD);

    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&server.cert_path)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl x509");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    // "SHA256 Fingerprint=AB:CD:…"
    let hex: String = text
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    assert_eq!(server.fingerprint, format!("SHA256:{hex}"), "{text}");

    let mut frank = SClient::spawn(
        server.addr,
        &[
            "-verify_return_error".as_ref(),
            "-verify_hostname".as_ref(),
            "localhost".as_ref(),
            "-CAfile".as_ref(),
            server.cert_path.as_os_str(),
        ],
    );
    frank.login("frank");
    let deadline = Instant::now() + STEP;
    while !frank.err.text().contains("verify return:1") {
        assert!(Instant::now() < deadline, "{}", frank.diagnostics());
        std::thread::sleep(Duration::from_millis(20));
    }
    let stderr = frank.diagnostics();
    assert!(!stderr.contains("verify error"), "{stderr}");
    frank.send("verified");
    frank.expect("MSG #lobby frank verified");
}

/// On a closed server a person at `openssl s_client` reads `PASS join`
/// after the nickname and types the join password; a wrong one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s_client_types_the_join_password_of_a_closed_server() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("join-password");
    std::fs::write(&file, "пароль-密码-🔑 and three more words\n").unwrap();
    let mut cmd = run_command(&tmp.path().join("data"));
    cmd.env("TLSCHAT_ADMIN_PASSWORD", PASSWORD)
        .arg("--join-password-file")
        .arg(&file);
    let server = ServerProcess::spawn(cmd);

    let mut wrong = SClient::connect(server.addr);
    wrong.expect("NICK");
    wrong.send("mallory");
    wrong.expect("PASS join");
    wrong.send("пароль");
    wrong.expect("REFUSE wrong password or invite code");

    let mut s = SClient::connect(server.addr);
    s.expect("NICK");
    s.send("dora");
    s.expect("PASS join");
    s.send("пароль-密码-🔑 and three more words");
    s.expect("WELCOME dora #lobby");
    s.expect("JOIN #lobby dora");
    s.expect("USERS #lobby dora");
    s.send("привет 👋");
    s.wait_for("MSG #lobby dora привет 👋");
}
