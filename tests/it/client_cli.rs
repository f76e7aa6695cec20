//! The real `tlschat` client binary, in plain mode, against the real server
//! over TLS on 127.0.0.1 ephemeral ports: chatting, admin login, kick and
//! ban, every trust path (`--ca`, `--fingerprint`, TOFU with known_hosts),
//! usage and connection errors, reconnecting, and the documented exit codes
//! (0 normal, 1 error, 2 usage, 3 trust failure, 4 refused/banned/kicked).
//!
//! Every client gets `--known-hosts <tempdir>/…` and a HOME/XDG_CONFIG_HOME
//! inside the test's temp dir, so the real user config is never touched.
//! stdin is always a pipe (plain mode is automatic; `--plain` is tested
//! too). Every wait is bounded, and every child is killed when dropped.

use crate::harness;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{
    client_command, fingerprint_from_output, is_sha256_fingerprint, run_once, runtime, server_bin,
    sha256_fingerprint, ClientProcess as Chat, Finished, ServerProcess, CLIENT, WAIT,
};
const PASSWORD: &str = "client cli admin password";

// ---------------------------------------------------------------------------
// Scratch space and client commands
// ---------------------------------------------------------------------------

/// A test's temp dir: known_hosts, a fake HOME, data dirs, files.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The known_hosts file every client of this test uses by default.
    fn kh(&self) -> PathBuf {
        self.path("known_hosts")
    }

    /// `tlschat --known-hosts <kh> ARGS…` with the variables it reads
    /// removed and HOME/XDG_CONFIG_HOME pointing into the temp dir.
    fn client_with_kh(&self, kh: &Path, args: &[&str]) -> Command {
        client_command(&self.path("home"), kh, args)
    }

    fn client(&self, args: &[&str]) -> Command {
        self.client_with_kh(&self.kh(), args)
    }

    /// Runs a client to its end with `stdin` (then EOF), killed after [`WAIT`].
    fn run(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Finished {
        let mut cmd = self.client(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        finish(cmd, stdin)
    }

    /// Starts a client that keeps running (stdin stays open).
    fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Chat {
        let mut cmd = self.client(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Chat::spawn(cmd)
    }
}

/// Runs `cmd` with `stdin` then EOF, bounded by [`WAIT`].
fn finish(cmd: Command, stdin: &str) -> Finished {
    let out = assert_cmd::Command::from_std(cmd)
        .write_stdin(stdin.as_bytes().to_vec())
        .timeout(WAIT)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {CLIENT}: {e}"));
    let done = Finished {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        done.code().is_some(),
        "the client did not exit by itself within {WAIT:?} (killed): {done:#?}"
    );
    done
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// The non-comment lines of a known_hosts file.
fn kh_entries(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn read_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `SHA256:<hex>` of a DER certificate, computed here with aws-lc-rs.
fn fingerprint_of_der(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("SHA256:{hex}")
}

/// `tlschat-server gen-cert --out DIR`: a certificate unrelated to any
/// running server; returns (cert.pem, fingerprint).
fn other_cert(dir: &Path) -> (PathBuf, String) {
    let out = run_once(&["gen-cert", "--out", s(dir)], &[], "");
    out.assert_success();
    (dir.join("cert.pem"), fingerprint_from_output(&out.stdout))
}

/// A server on `127.0.0.1:0` whose certificate the test made with rcgen:
/// names `sans` only, a CA certificate if `is_ca`.
fn server_with_custom_cert(t: &Scratch, name: &str, sans: &[&str], is_ca: bool) -> ServerProcess {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    if is_ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    let cert = params.self_signed(&key).unwrap();
    let cert_path = t.path(&format!("{name}-cert.pem"));
    let key_path = t.path(&format!("{name}-key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let mut cmd = server_bin();
    cmd.args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(t.path(&format!("{name}-data")))
        .arg("--cert")
        .arg(&cert_path)
        .arg("--key")
        .arg(&key_path);
    ServerProcess::spawn(cmd)
}

/// `tlschat-server run --listen ADDR --data-dir DATA` (a restart on a
/// known port); `Err` if it cannot start, e.g. the port was taken.
fn server_on(addr: SocketAddr, data: &Path) -> Result<ServerProcess, String> {
    let mut cmd = server_bin();
    cmd.args(["run", "--listen", &addr.to_string(), "--data-dir"])
        .arg(data);
    ServerProcess::try_spawn(cmd)
}

#[track_caller]
fn assert_contains(haystack: &str, needle: &str, what: &str) {
    assert!(
        haystack.contains(needle),
        "{what}: expected to contain {needle:?}, got:\n{haystack}"
    );
}

// ---------------------------------------------------------------------------
// 1. Chatting
// ---------------------------------------------------------------------------

#[test]
fn two_clients_chat_in_plain_mode() {
    let t = Scratch::new();
    let server = ServerProcess::start(&t.path("data"));
    let host = server.addr.to_string();

    let mut alice = t.spawn(&["--nick", "alice", "--accept-new", &host], &[]);
    alice.expect_out("* alice joined #lobby");
    alice.expect_out("* in #lobby: alice");

    // Plain mode chosen by itself (stdin and stdout are pipes); EOF on stdin
    // makes bob send /quit, wait for the server to close, and exit 0.
    let bob = t.run(
        &["--nick", "bob", "--accept-new", &host],
        &[],
        "hi\n/msg alice psst\n/me waves\n",
    );
    bob.assert_success();
    let bob_out: Vec<&str> = bob.stdout.lines().collect();
    for line in [
        "* bob joined #lobby",
        "[#lobby] bob: hi",
        "[bob -> alice] psst",
        "[#lobby] * bob waves",
    ] {
        assert!(
            bob_out.contains(&line),
            "bob's stdout lacks {line:?}: {bob:#?}"
        );
    }
    // The client's own notices go to stderr, never to stdout.
    assert!(
        !bob_out.iter().any(|l| l.starts_with("-- ")),
        "status line on stdout: {bob:#?}"
    );
    assert_contains(
        &bob.stderr,
        &format!("-- connected to {host} as bob (certificate "),
        "bob's stderr",
    );
    // What TLS negotiated, post-quantum hybrid first.
    assert_contains(&bob.stderr, ", TLS 1.3, X25519MLKEM768)", "bob's stderr");
    assert_contains(&bob.stderr, "-- disconnected", "bob's stderr");

    alice.expect_out("* bob joined #lobby");
    alice.expect_out("[#lobby] bob: hi");
    alice.expect_out("[bob -> alice] psst");
    alice.expect_out("[#lobby] * bob waves");
    alice.expect_out("* bob left #lobby (quit)");

    alice.send("hello everyone");
    alice.expect_out("[#lobby] alice: hello everyone");
    alice.close_stdin();
    alice.assert_exit(0);
    let err = alice.stderr();
    assert_contains(&err, "-- disconnected", "alice's stderr");
    assert!(
        !alice.stdout().iter().any(|l| l.starts_with("-- ")),
        "status line on alice's stdout"
    );
}

/// The README's scripting example, literally through a shell pipe, with
/// an explicit `--plain` and with plain mode chosen automatically.
#[cfg(unix)]
#[test]
fn readme_example_echo_pipe_works() {
    let t = Scratch::new();
    let server = ServerProcess::start(&t.path("data"));
    let port = server.addr.port();
    let mut watcher = t.spawn(
        &[
            "--nick",
            "watcher",
            "--fingerprint",
            &server.fingerprint,
            &server.addr.to_string(),
        ],
        &[],
    );
    watcher.expect_out("* in #lobby: watcher");

    // `echo hi | tlschat --plain --nick bot --accept-new localhost:PORT`
    for (nick, plain) in [("bot", true), ("bot2", false)] {
        let script = format!(
            r#"echo hi | "$0" {} --nick {nick} --accept-new --known-hosts "$1" "localhost:$2""#,
            if plain { "--plain" } else { "" }
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg(CLIENT)
            .arg(t.kh())
            .arg(port.to_string())
            .env_remove("TLSCHAT_PASSWORD")
            .env_remove("TLSCHAT_NICK")
            .env_remove("TLSCHAT_KNOWN_HOSTS")
            .env("HOME", t.path("home"))
            .env("XDG_CONFIG_HOME", t.path("home/.config"));
        let done = finish(cmd, "");
        done.assert_success();
        assert!(
            done.stdout
                .lines()
                .any(|l| l == format!("[#lobby] {nick}: hi")),
            "{done:#?}"
        );
        watcher.expect_out(&format!("[#lobby] {nick}: hi"));
    }
    // The TOFU entry is keyed by the name as typed.
    assert_eq!(
        kh_entries(&t.kh()),
        [format!("localhost:{port} {}", server.fingerprint)]
    );
}

// ---------------------------------------------------------------------------
// 2. Passwords
// ---------------------------------------------------------------------------

#[test]
fn admin_password_from_env_or_file_wrong_or_missing() {
    let t = Scratch::new();
    let server = ServerProcess::start_with_password(&t.path("data"), PASSWORD);
    let host = server.addr.to_string();
    let admin_args = ["--nick", "admin", "--accept-new", host.as_str()];

    // A normal user may not list bans: the control for "logged in as admin".
    let carol = t.run(&["--nick", "carol", "--accept-new", &host], &[], "/bans\n");
    carol.assert_success();
    assert!(
        carol
            .stdout
            .lines()
            .any(|l| l.starts_with("! not-permitted: ")),
        "{carol:#?}"
    );

    // TLSCHAT_PASSWORD.
    let env = t.run(&admin_args, &[("TLSCHAT_PASSWORD", PASSWORD)], "/bans\n");
    env.assert_success();
    assert!(
        env.stdout.lines().any(|l| l == "* admin joined #lobby"),
        "{env:#?}"
    );
    assert!(env.stdout.lines().any(|l| l == "* no bans"), "{env:#?}");
    assert!(!env.stdout.contains("not-permitted"), "{env:#?}");
    assert!(
        !env.stdout.contains(PASSWORD) && !env.stderr.contains(PASSWORD),
        "the password was echoed: {env:#?}"
    );

    // --password-file (first line).
    let file = t.path("pw");
    std::fs::write(&file, format!("{PASSWORD}\nignored second line\n")).unwrap();
    let mut args = admin_args.to_vec();
    args.extend(["--password-file", s(&file)]);
    let from_file = t.run(&args, &[], "/bans\n");
    from_file.assert_success();
    assert!(
        from_file.stdout.lines().any(|l| l == "* no bans"),
        "{from_file:#?}"
    );

    // A wrong password: REFUSE → exit 4, with a message.
    let wrong = t.run(
        &admin_args,
        &[("TLSCHAT_PASSWORD", "not the password")],
        "/bans\n",
    );
    wrong.assert_code(4);
    assert_contains(&wrong.stderr, "refused", "wrong password stderr");
    assert!(!wrong.stdout.contains("joined"), "{wrong:#?}");

    // No password at all, no terminal to ask on: exit 1, naming the fix.
    for env in [&[][..], &[("TLSCHAT_PASSWORD", "")][..]] {
        let none = t.run(&admin_args, env, "/bans\n");
        none.assert_code(1);
        assert_contains(&none.stderr, "TLSCHAT_PASSWORD", "no password stderr");
        assert_contains(&none.stderr, "--password-file", "no password stderr");
    }
}

// ---------------------------------------------------------------------------
// 3. Kick and ban
// ---------------------------------------------------------------------------

#[test]
fn kicked_client_exits_4_and_may_come_back() {
    let t = Scratch::new();
    let server = ServerProcess::start_with_password(&t.path("data"), PASSWORD);
    let host = server.addr.to_string();

    let mut bob = t.spawn(&["--nick", "bob", "--accept-new", &host], &[]);
    bob.expect_out_prefix("* in #lobby:");
    let mut admin = t.spawn(
        &["--nick", "admin", &host],
        &[("TLSCHAT_PASSWORD", PASSWORD)],
    );
    admin.expect_out("* admin joined #lobby");
    admin.expect_out_prefix("* in #lobby:");

    admin.send("/kick bob flooding");
    admin.expect_out("* kicked bob");
    // bob's stdin is still open: the kick alone ends it, with exit 4, and
    // it does not reconnect.
    bob.expect_out("* bob was kicked by admin (flooding)");
    bob.assert_exit(4);
    let err = bob.stderr();
    assert_contains(&err, "-- kicked by admin: flooding", "bob's stderr");
    assert!(
        !err.contains("reconnecting"),
        "a kicked client reconnected:\n{err}"
    );

    // A kick is not a ban.
    let again = t.run(&["--nick", "bob", &host], &[], "back\n");
    again.assert_success();
    admin.expect_out("[#lobby] bob: back");

    admin.close_stdin();
    admin.assert_exit(0);
}

#[test]
fn banned_client_exits_4_and_is_refused_at_login() {
    let t = Scratch::new();
    let server = ServerProcess::start_with_password(&t.path("data"), PASSWORD);
    let host = server.addr.to_string();
    let rt = runtime();

    let mut bob = t.spawn(&["--nick", "bob", "--accept-new", &host], &[]);
    bob.expect_out_prefix("* in #lobby:");

    // The admin here is the Rust test client.
    let mut admin = rt.block_on(server.login_admin(PASSWORD));
    rt.block_on(async {
        admin.send("/ban bob spam").await;
        admin.wait_for("INFO banned bob").await;
    });

    bob.expect_out("* bob was kicked by admin (banned: spam)");
    bob.assert_exit(4);
    let err = bob.stderr();
    assert_contains(&err, "-- banned: ", "bob's stderr");
    assert!(
        !err.contains("reconnecting"),
        "a banned client reconnected:\n{err}"
    );

    // Coming back as bob: `BAN` at login → exit 4 with a message.
    let again = t.run(&["--nick", "bob", &host], &[], "hi\n");
    again.assert_code(4);
    assert_contains(&again.stderr, "banned", "rejected login stderr");
    assert!(!again.stdout.contains("joined"), "{again:#?}");
    // The address was banned too (bob was connected from 127.0.0.1).
    let carol = t.run(&["--nick", "carol", &host], &[], "hi\n");
    carol.assert_code(4);
    assert_contains(&carol.stderr, "banned", "address ban stderr");
}

// ---------------------------------------------------------------------------
// 4. --ca
// ---------------------------------------------------------------------------

#[test]
fn ca_with_the_servers_certificate_works_and_another_ca_fails() {
    let t = Scratch::new();
    let server = ServerProcess::start(&t.path("data"));
    let port = server.addr.port();
    let cert = server.data_dir.join("certs").join("cert.pem");
    assert_eq!(cert, server.cert_path);

    // The generated certificate names localhost and 127.0.0.1.
    for host in ["localhost", "127.0.0.1"] {
        let nick = format!("ca-{}", host.replace('.', "-"));
        let ok = t.run(
            &["--nick", &nick, "--ca", s(&cert), &format!("{host}:{port}")],
            &[],
            "hi\n",
        );
        ok.assert_success();
        assert!(
            ok.stdout
                .lines()
                .any(|l| l == format!("[#lobby] {nick}: hi")),
            "{ok:#?}"
        );
    }
    assert!(!t.kh().exists(), "--ca wrote known_hosts");

    // A certificate from another gen-cert (same subject name as the
    // server's, another key): exit 3, called a possible impostor, with no
    // advice to trust it another way.
    let (other, _) = other_cert(&t.path("other"));
    let bad = t.run(
        &[
            "--nick",
            "x",
            "--ca",
            s(&other),
            &format!("localhost:{port}"),
        ],
        &[],
        "hi\n",
    );
    bad.assert_code(3);
    assert_contains(&bad.stderr, &format!("localhost:{port}"), "wrong CA stderr");
    assert_contains(&bad.stderr, "not signed by the CA", "wrong CA stderr");
    assert_contains(&bad.stderr, "impostor", "wrong CA stderr");
    assert!(!bad.stderr.contains("--fingerprint"), "{bad:#?}");
    assert!(!bad.stdout.contains("joined"), "{bad:#?}");

    // A CA with an unrelated name: unknown issuer, said as such.
    let key = rcgen::KeyPair::generate().unwrap();
    let unrelated = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let unrelated_path = t.path("unrelated.pem");
    std::fs::write(&unrelated_path, unrelated.pem()).unwrap();
    let bad = t.run(
        &[
            "--nick",
            "x",
            "--ca",
            s(&unrelated_path),
            &format!("localhost:{port}"),
        ],
        &[],
        "hi\n",
    );
    bad.assert_code(3);
    assert_contains(
        &bad.stderr,
        &format!("localhost:{port}"),
        "unknown CA stderr",
    );
    assert_contains(&bad.stderr, "not signed by the CA", "unknown CA stderr");
    assert!(!bad.stdout.contains("joined"), "{bad:#?}");
    assert!(!t.kh().exists(), "--ca wrote known_hosts");

    // A CA file that does not exist, or holds no certificate: a clear
    // message naming the file, before any connection.
    let missing = t.path("nope.pem");
    let no_file = t.run(
        &[
            "--nick",
            "x",
            "--ca",
            s(&missing),
            &format!("localhost:{port}"),
        ],
        &[],
        "",
    );
    assert_ne!(no_file.code(), Some(0), "{no_file:#?}");
    assert_contains(&no_file.stderr, s(&missing), "missing CA file stderr");
    let key = server.data_dir.join("certs").join("key.pem");
    let no_cert = t.run(
        &["--nick", "x", "--ca", s(&key), &format!("localhost:{port}")],
        &[],
        "",
    );
    assert_ne!(no_cert.code(), Some(0), "{no_cert:#?}");
    assert_contains(&no_cert.stderr, "no certificate", "key as CA stderr");
}

#[test]
fn ca_name_mismatch_and_ca_marked_certificate_fail_with_3() {
    let t = Scratch::new();

    // A certificate for chat.example.org only, reached as localhost / 127.0.0.1.
    let named = server_with_custom_cert(&t, "named", &["chat.example.org"], false);
    let named_cert = t.path("named-cert.pem");
    for host in ["localhost", "127.0.0.1"] {
        let bad = t.run(
            &[
                "--nick",
                "x",
                "--ca",
                s(&named_cert),
                &format!("{host}:{}", named.addr.port()),
            ],
            &[],
            "hi\n",
        );
        bad.assert_code(3);
        assert_contains(
            &bad.stderr,
            "not valid for that name",
            "name mismatch stderr",
        );
    }
    // The pin still works for it (no name check).
    let pinned = t.run(
        &[
            "--nick",
            "x",
            "--fingerprint",
            &named.fingerprint,
            &named.addr.to_string(),
        ],
        &[],
        "hi\n",
    );
    pinned.assert_success();

    // A self-signed certificate marked CA:TRUE: webpki rejects it as an end
    // entity; the message says so and suggests --fingerprint, which works.
    let ca = server_with_custom_cert(&t, "ca", &["localhost", "127.0.0.1"], true);
    let ca_cert = t.path("ca-cert.pem");
    let bad = t.run(
        &[
            "--nick",
            "x",
            "--ca",
            s(&ca_cert),
            &format!("localhost:{}", ca.addr.port()),
        ],
        &[],
        "hi\n",
    );
    bad.assert_code(3);
    assert_contains(&bad.stderr, "--fingerprint", "CA:TRUE stderr");
    let pinned = t.run(
        &[
            "--nick",
            "x",
            "--fingerprint",
            &ca.fingerprint,
            &ca.addr.to_string(),
        ],
        &[],
        "hi\n",
    );
    pinned.assert_success();
    assert!(!t.kh().exists(), "known_hosts written without TOFU");
}

// ---------------------------------------------------------------------------
// 5. Trust on first use
// ---------------------------------------------------------------------------

#[test]
fn tofu_first_contact_then_silent_then_changed_certificate_refused() {
    let t = Scratch::new();
    let data = t.path("data");
    let mut server = ServerProcess::start(&data);
    let old_fp = server.fingerprint.clone();
    assert!(is_sha256_fingerprint(&old_fp), "{old_fp}");
    assert_eq!(old_fp, sha256_fingerprint(&server.cert_path));
    let addr = server.addr;
    let host = addr.to_string();
    let kh = t.kh();

    // First contact, --accept-new: the entry is written.
    let first = t.run(&["--nick", "a", "--accept-new", &host], &[], "hi\n");
    first.assert_success();
    assert_eq!(
        kh_entries(&kh),
        [format!("127.0.0.1:{} {old_fp}", addr.port())]
    );
    assert_contains(&first.stderr, &old_fp, "first contact stderr");

    // Second contact, no flag, no terminal: silent, works, file unchanged.
    let before = read_bytes(&kh);
    let second = t.run(&["--nick", "a", &host], &[], "hi\n");
    second.assert_success();
    assert!(
        second.stdout.lines().any(|l| l == "[#lobby] a: hi"),
        "{second:#?}"
    );
    assert!(!second.stderr.contains("added"), "{second:#?}");
    assert_eq!(
        read_bytes(&kh),
        before,
        "known_hosts changed on a known host"
    );

    // The operator regenerates the certificate and restarts on the same port.
    server.kill();
    drop(server);
    let regen = run_once(&["gen-cert", "--force", "--data-dir", s(&data)], &[], "");
    regen.assert_success();
    let new_fp = fingerprint_from_output(&regen.stdout);
    assert_ne!(new_fp, old_fp);
    let (server, host) = match server_on(addr, &data) {
        Ok(server) => (server, host),
        Err(e) => {
            // The port was taken meanwhile: key the old entry to a new port.
            eprintln!("could not restart on {addr} ({e}); using a new port");
            let server = ServerProcess::start(&data);
            let host = server.addr.to_string();
            std::fs::write(&kh, format!("{host} {old_fp}\n")).unwrap();
            (server, host)
        }
    };
    assert_eq!(server.fingerprint, new_fp);
    let before = read_bytes(&kh);

    // Refused, loudly, naming both fingerprints; also with --accept-new,
    // which never replaces an entry.
    for extra in [&[][..], &["--accept-new"][..]] {
        let mut args = vec!["--nick", "a"];
        args.extend_from_slice(extra);
        args.push(&host);
        let changed = t.run(&args, &[], "hi\n");
        changed.assert_code(3);
        assert_contains(&changed.stderr, &old_fp, "changed certificate stderr");
        assert_contains(&changed.stderr, &new_fp, "changed certificate stderr");
        assert_contains(&changed.stderr, "CHANGED", "changed certificate stderr");
        assert_contains(
            &changed.stderr,
            s(&kh),
            "changed certificate stderr (the fix)",
        );
        assert!(!changed.stdout.contains("joined"), "{changed:#?}");
        assert_eq!(read_bytes(&kh), before, "known_hosts changed: {extra:?}");
    }

    // Pinning the new certificate explicitly works and leaves the file alone.
    let pinned = t.run(
        &["--nick", "a", "--fingerprint", &new_fp, &host],
        &[],
        "hi\n",
    );
    pinned.assert_success();
    assert_eq!(read_bytes(&kh), before);

    // The documented fix: remove the line, connect again, accept.
    std::fs::write(&kh, "").unwrap();
    let fixed = t.run(&["--nick", "a", "--accept-new", &host], &[], "hi\n");
    fixed.assert_success();
    assert_eq!(kh_entries(&kh), [format!("{host} {new_fp}")]);
}

#[test]
fn tofu_unknown_host_without_terminal_fails_at_once() {
    let t = Scratch::new();
    let server = ServerProcess::start(&t.path("data"));
    let host = server.addr.to_string();
    let mut watcher = t.spawn(
        &[
            "--nick",
            "watcher",
            "--fingerprint",
            &server.fingerprint,
            &host,
        ],
        &[],
    );
    watcher.expect_out("* in #lobby: watcher");

    // A "yes" on piped stdin is never taken as an answer.
    let kh = t.path("sub/dir/known_hosts");
    let started = Instant::now();
    let cmd = t.client_with_kh(&kh, &["--nick", "ghost", &host]);
    let done = finish(cmd, "yes\nhi\n");
    done.assert_code(3);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_contains(&done.stderr, &server.fingerprint, "unknown host stderr");
    assert_contains(&done.stderr, "--accept-new", "unknown host stderr");
    assert_contains(&done.stderr, "--fingerprint", "unknown host stderr");
    assert!(!kh.exists(), "known_hosts was created");
    assert!(
        !t.path("sub").exists(),
        "known_hosts' directory was created"
    );
    assert!(done.stdout.is_empty(), "{done:#?}");

    // Nothing was sent: ghost never logged in (its JOIN would come first).
    watcher.send("/who");
    assert_eq!(watcher.next_out(), "* in #lobby: watcher");
}

/// A corrupt known_hosts is never overwritten or ignored: the client stops
/// before connecting, naming the file and the line.
#[test]
fn malformed_known_hosts_stops_with_the_line() {
    let t = Scratch::new();
    let server = ServerProcess::start(&t.path("data"));
    let text = "# comment\n127.0.0.1:1 SHA256:not-hex\n";
    std::fs::write(t.kh(), text).unwrap();
    let done = t.run(
        &["--nick", "a", "--accept-new", &server.addr.to_string()],
        &[],
        "hi\n",
    );
    done.assert_code(3);
    assert_contains(&done.stderr, s(&t.kh()), "malformed known_hosts stderr");
    assert_contains(&done.stderr, "line 2", "malformed known_hosts stderr");
    assert_eq!(std::fs::read_to_string(t.kh()).unwrap(), text);
}

/// `[::1]:PORT`: connects, keys known_hosts as `[::1]:PORT`, and the
/// generated certificate's `::1` name passes `--ca`.
#[test]
fn ipv6_bracket_form() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: ::1 is not available");
        return;
    }
    let t = Scratch::new();
    let mut cmd = server_bin();
    cmd.args(["run", "--listen", "[::1]:0", "--data-dir"])
        .arg(t.path("data"));
    let server = ServerProcess::spawn(cmd);
    let host = format!("[::1]:{}", server.addr.port());
    assert_eq!(server.addr.to_string(), host);

    let tofu = t.run(&["--nick", "six", "--accept-new", &host], &[], "hi\n");
    tofu.assert_success();
    assert!(
        tofu.stdout.lines().any(|l| l == "[#lobby] six: hi"),
        "{tofu:#?}"
    );
    assert_eq!(
        kh_entries(&t.kh()),
        [format!("{host} {}", server.fingerprint)]
    );

    let ca = t.run(
        &["--nick", "six", "--ca", s(&server.cert_path), &host],
        &[],
        "hi\n",
    );
    ca.assert_success();
}

// ---------------------------------------------------------------------------
// 6. --fingerprint
// ---------------------------------------------------------------------------

#[test]
fn fingerprint_right_wrong_and_malformed() {
    let t = Scratch::new();
    let server = ServerProcess::start(&t.path("data"));
    let host = server.addr.to_string();

    let right = t.run(
        &["--nick", "p", "--fingerprint", &server.fingerprint, &host],
        &[],
        "hi\n",
    );
    right.assert_success();
    assert!(
        right.stdout.lines().any(|l| l == "[#lobby] p: hi"),
        "{right:#?}"
    );
    assert!(!t.kh().exists(), "--fingerprint wrote known_hosts");

    let (_, other_fp) = other_cert(&t.path("other"));
    let wrong = t.run(
        &["--nick", "p", "--fingerprint", &other_fp, &host],
        &[],
        "hi\n",
    );
    wrong.assert_code(3);
    assert_contains(&wrong.stderr, &other_fp, "wrong pin stderr (expected)");
    assert_contains(&wrong.stderr, &server.fingerprint, "wrong pin stderr (got)");
    assert_contains(
        &wrong.stderr,
        "does not match --fingerprint",
        "wrong pin stderr",
    );
    assert!(!wrong.stdout.contains("joined"), "{wrong:#?}");
    assert!(!t.kh().exists(), "--fingerprint wrote known_hosts");

    let short = &server.fingerprint[..server.fingerprint.len() - 2];
    for bad in ["SHA256:zz", "nonsense", short] {
        let done = t.run(&["--nick", "p", "--fingerprint", bad, &host], &[], "hi\n");
        done.assert_code(2);
        assert_contains(&done.stderr, "--fingerprint", "malformed pin stderr");
    }

    // --ca and --fingerprint exclude each other.
    let both = t.run(
        &[
            "--nick",
            "p",
            "--fingerprint",
            &server.fingerprint,
            "--ca",
            s(&server.cert_path),
            &host,
        ],
        &[],
        "",
    );
    both.assert_code(2);
}

// ---------------------------------------------------------------------------
// 7. Usage
// ---------------------------------------------------------------------------

#[test]
fn usage_errors_help_and_version() {
    let t = Scratch::new();
    let cases: &[(&[&str], &str)] = &[
        (&["--nick", "a"], "HOST"),
        (&["--nick", "a", "example.org:0"], "bad port"),
        (&["--nick", "a", "example.org:x"], "bad port"),
        (&["--nick", "a", "[::1"], "]"),
        (&["--nick", "a b", "127.0.0.1:9"], "invalid nickname"),
        (&["--nick=-dash", "127.0.0.1:9"], "invalid nickname"),
        (&["127.0.0.1:9"], "--nick"),
        (&["--nick", "a", "--bogus", "127.0.0.1:9"], "--bogus"),
    ];
    for (args, needle) in cases {
        let done = t.run(args, &[], "");
        done.assert_code(2);
        assert_contains(&done.stderr, needle, &format!("{args:?}"));
        assert!(done.stdout.is_empty(), "{done:#?}");
    }

    // A password file that cannot be read: an I/O error, exit 1.
    let missing = t.path("no-such-password-file");
    let done = t.run(
        &[
            "--nick",
            "admin",
            "--password-file",
            s(&missing),
            "127.0.0.1:9",
        ],
        &[],
        "",
    );
    done.assert_code(1);
    let want = format!("cannot read the password file {}: ", s(&missing));
    assert_contains(&done.stderr, &want, "missing password file");

    // One that is not text is unreadable too: exit 1, not a usage error.
    let binary = t.path("binary-password-file");
    std::fs::write(&binary, b"\xff\xfe secret\n").unwrap();
    let args = [
        "--nick",
        "admin",
        "--password-file",
        s(&binary),
        "127.0.0.1:9",
    ];
    let done = t.run(&args, &[], "");
    done.assert_code(1);
    let want = format!("cannot read the password file {}: ", s(&binary));
    assert_contains(&done.stderr, &want, "password file not UTF-8");

    // An empty one is a usage error.
    let empty = t.path("empty-password-file");
    std::fs::write(&empty, b"\n").unwrap();
    let args = [
        "--nick",
        "admin",
        "--password-file",
        s(&empty),
        "127.0.0.1:9",
    ];
    let done = t.run(&args, &[], "");
    done.assert_code(2);
    let want = format!("the password file {} is empty", s(&empty));
    assert_contains(&done.stderr, &want, "empty password file");

    let help = t.run(&["--help"], &[], "");
    help.assert_success();
    for needle in [
        "Exit codes",
        "0  normal",
        "1  error",
        "2  usage",
        "3  trust failure",
        "4  refused",
        "Examples",
        "--plain",
        "--accept-new",
        "--fingerprint",
        "--ca",
        "--known-hosts",
        "--password-file",
        "TLSCHAT_PASSWORD",
        "--no-reconnect",
    ] {
        assert_contains(&help.stdout, needle, "--help");
    }

    let version = t.run(&["--version"], &[], "");
    version.assert_success();
    assert_eq!(
        version.stdout.trim_end(),
        harness::expected_version("tlschat")
    );
}

// ---------------------------------------------------------------------------
// 8. Connection errors
// ---------------------------------------------------------------------------

#[test]
fn nothing_listening_is_exit_1_naming_the_address() {
    let t = Scratch::new();
    // A port that was just free.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let host = format!("127.0.0.1:{port}");
    let done = t.run(&["--nick", "a", "--accept-new", &host], &[], "hi\n");
    done.assert_code(1);
    assert_contains(&done.stderr, &host, "connection refused stderr");
    assert_contains(&done.stderr, "cannot connect", "connection refused stderr");
    assert!(!t.kh().exists(), "known_hosts written without a server");
}

#[test]
fn plaintext_server_is_a_tls_failure_exit_1() {
    let t = Scratch::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts one connection: reads what the client sends, answers a line
    // in plaintext (as tlschat-server does to plain nc) and closes.
    let fake = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf);
        let _ = conn.write_all(b"ERROR tls-required this port speaks TLS\n");
        let _ = conn.shutdown(std::net::Shutdown::Write);
        // Let the client read the line before the socket goes away.
        let _ = conn.read(&mut buf);
    });
    let host = addr.to_string();
    let done = t.run(&["--nick", "a", "--accept-new", &host], &[], "hi\n");
    // Not about the certificate: an error (1), not a trust failure (3).
    done.assert_code(1);
    assert_contains(&done.stderr, &host, "plaintext server stderr");
    assert_contains(
        &done.stderr,
        "did not answer with TLS",
        "plaintext server stderr",
    );
    assert!(
        !t.kh().exists(),
        "known_hosts written for a plaintext server"
    );
    fake.join().unwrap();
}

// ---------------------------------------------------------------------------
// 9. Reconnecting
// ---------------------------------------------------------------------------

#[test]
fn reconnects_after_a_restart_and_rejoins_the_room() {
    let t = Scratch::new();
    let rt = runtime();
    let server = rt.block_on(harness::TestServer::start());
    let addr = server.addr;
    let host = addr.to_string();

    let mut alice = t.spawn(&["--nick", "alice", "--accept-new", &host], &[]);
    alice.expect_out("* in #lobby: alice");
    alice.send("/join #rust");
    alice.expect_out("* alice joined #rust");

    let stopped = Instant::now();
    let dir = rt.block_on(server.stop());
    let lost = alice.expect_err("-- connection lost");
    assert_contains(&lost, "reconnecting in", "the reconnect notice");

    // Same data dir (same certificate), same port.
    let server = rt.block_on(harness::TestServer::start_in(dir, |c| c.listen = addr));
    alice.expect_out("* alice joined #lobby");
    alice.expect_out("* alice joined #rust");
    assert!(
        stopped.elapsed() < Duration::from_secs(20),
        "reconnecting took {:?}",
        stopped.elapsed()
    );

    // Someone else's message to #rust reaches it.
    let mut bob = rt.block_on(server.login("bob"));
    rt.block_on(async {
        bob.send("/join #rust").await;
        bob.wait_for("USERS #rust").await;
        bob.send("hello rust").await;
    });
    alice.expect_out("[#rust] bob: hello rust");
    // The second `-- connected` notice (stderr is read apart from stdout).
    alice.expect_err(&format!("-- connected to {host} as alice"));

    alice.close_stdin();
    alice.assert_exit(0);
    drop(bob);
    rt.block_on(server.stop());
}

#[test]
fn no_reconnect_exits_1_when_the_server_goes_away() {
    let t = Scratch::new();
    let mut server = ServerProcess::start(&t.path("data"));
    let host = server.addr.to_string();
    let mut alice = t.spawn(
        &["--nick", "alice", "--accept-new", "--no-reconnect", &host],
        &[],
    );
    alice.expect_out("* in #lobby: alice");
    server.kill();
    alice.assert_exit(1);
    let err = alice.stderr();
    assert_contains(&err, "-- error: ", "alice's stderr");
    assert!(!err.contains("reconnecting"), "{err}");
}

/// A reconnect is verified like a first connection: the server came back
/// with another certificate, so the client stops with exit 3.
#[test]
fn reconnect_to_a_changed_certificate_exits_3() {
    let t = Scratch::new();
    let rt = runtime();
    let server = rt.block_on(harness::TestServer::start());
    let addr = server.addr;
    let old_fp = fingerprint_of_der(&server.cert);

    let mut alice = t.spawn(&["--nick", "alice", "--accept-new", &addr.to_string()], &[]);
    alice.expect_out("* in #lobby: alice");
    assert_eq!(kh_entries(&t.kh()), [format!("{addr} {old_fp}")]);
    let before = read_bytes(&t.kh());

    let dir = rt.block_on(server.stop());
    alice.expect_err("-- connection lost");
    // A new certificate is generated on the next start.
    std::fs::remove_dir_all(tlschat_server_core::config::certs_dir(dir.path())).unwrap();
    let server = rt.block_on(harness::TestServer::start_in(dir, |c| c.listen = addr));
    let new_fp = fingerprint_of_der(&server.cert);
    assert_ne!(new_fp, old_fp);

    alice.assert_exit(3);
    let err = alice.stderr();
    assert_contains(&err, &old_fp, "alice's stderr");
    assert_contains(&err, &new_fp, "alice's stderr");
    assert_eq!(read_bytes(&t.kh()), before, "known_hosts changed");
    rt.block_on(server.stop());
}
