//! The real `tlschat-server` binary, driven as an operator would: startup
//! output, the data directory it creates, the subcommands (`gen-cert`,
//! `fingerprint`, `passwd`), certificates given on the command line, bans
//! across restarts and crashes, graceful shutdown, usage errors.
//!
//! Every server listens on `127.0.0.1:0` (or `[::1]:0`) and is killed when
//! its [`ServerProcess`] is dropped; every wait is bounded.

use crate::harness;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

use crate::harness::connect_tls;
use crate::harness::*;

const PASSWORD: &str = "hunter2 but longer";

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The generated admin password left in `<data-dir>/initial-admin-password`.
fn initial_password(data_dir: &Path) -> String {
    let text = String::from_utf8(read(&data_dir.join("initial-admin-password"))).unwrap();
    let pw = text.trim_end_matches(['\n', '\r']).to_owned();
    assert!(!pw.is_empty() && !pw.contains('\n'), "{text:?}");
    pw
}

/// `gen-cert --out DIR` plus `extra` arguments; returns the fingerprint it printed.
fn gen_cert(dir: &Path, extra: &[&str]) -> String {
    let mut args: Vec<&OsStr> = vec![os("gen-cert"), os("--out"), dir.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    let out = run_once(&args, &[], "");
    out.assert_success();
    fingerprint_from_output(&out.stdout)
}

fn fingerprint_cmd(args: &[&OsStr]) -> String {
    let out = run_once(args, &[], "");
    out.assert_success();
    fingerprint_from_output(&out.stdout)
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

// ---------------------------------------------------------------------------
// 2. Startup output and the data directory
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_prints_fingerprint_and_writes_private_files() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    let mut server = ServerProcess::start(&data);

    // The startup lines, in order.
    let stdout = server.stdout();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        stdout[0],
        format!("tlschat-server {version} listening on {}", server.addr),
        "{stdout:#?}"
    );
    assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(server.addr.port(), 0);
    assert_eq!(server.data_dir, data);
    let cert_path = data.join("certs").join("cert.pem");
    let key_path = data.join("certs").join("key.pem");
    let initial = data.join("initial-admin-password");
    assert_eq!(server.cert_path, cert_path);
    assert!(server.cert_generated, "{stdout:#?}");
    assert!(is_sha256_fingerprint(&server.fingerprint), "{stdout:#?}");
    let admin_line = server
        .wait_stdout("admin password written to ", STARTUP)
        .unwrap_or_else(|| panic!("no admin password line: {:#?}", server.stdout()));
    assert_eq!(
        admin_line,
        format!("admin password written to {}", initial.display())
    );

    // The fingerprint is SHA-256 of the certificate's DER, and the
    // `fingerprint` subcommand agrees, from the data dir and from the file.
    assert_eq!(server.fingerprint, sha256_fingerprint(&cert_path));
    let from_dir = fingerprint_cmd(&[os("fingerprint"), os("--data-dir"), data.as_os_str()]);
    assert_eq!(from_dir, server.fingerprint);
    let from_file = fingerprint_cmd(&[os("fingerprint"), os("--cert"), cert_path.as_os_str()]);
    assert_eq!(from_file, server.fingerprint);

    // The files, private ones owner-only.
    assert!(cert_path.is_file() && key_path.is_file() && initial.is_file());
    #[cfg(unix)]
    {
        assert_eq!(mode(&key_path), 0o600, "key.pem");
        assert_eq!(mode(&initial), 0o600, "initial-admin-password");
        assert_eq!(mode(&data.join("tlschat.db")), 0o600, "tlschat.db");
        assert!(
            !data.join("accounts.txt").exists(),
            "accounts live in tlschat.db, not in a text file"
        );
        assert_eq!(mode(&data), 0o700, "the data directory it created");
    }

    // A wrong password is refused; the generated one logs the admin in.
    let (answer, mut c) = server.admin_attempt("not the password").await;
    assert!(answer.starts_with("REFUSE "), "{answer}");
    assert!(c.expect_closed().await.is_empty());
    let password = initial_password(&data);
    let mut admin = server.login_admin(&password).await;
    admin.send("/bans").await;
    admin.expect("INFO no bans").await;

    // Stdout and stderr are pipes here: the password itself never appears,
    // only the path of the file holding it.
    let status = server.terminate();
    assert!(status.success() || cfg!(not(unix)), "{status}");
    drop(admin);
    let out = server.full_output();
    let all = format!("{}\n{}", out.stdout.join("\n"), out.stderr.join("\n"));
    assert!(
        !all.contains(&password),
        "the generated password leaked into the output:\n{all}"
    );
    assert!(all.contains(&initial.display().to_string()));

    // A second run: same certificate, no new password, the old one works.
    let cert_before = read(&cert_path);
    let key_before = read(&key_path);
    let initial_before = read(&initial);
    let mut again = ServerProcess::start(&data);
    assert_eq!(again.fingerprint, server.fingerprint);
    assert!(!again.cert_generated, "{:#?}", again.stdout());
    assert_eq!(read(&cert_path), cert_before);
    assert_eq!(read(&key_path), key_before);
    assert_eq!(read(&initial), initial_before);
    again.login_admin(&password).await;
    let status = again.terminate();
    assert!(status.success() || cfg!(not(unix)), "{status}");
    let out = again.full_output();
    assert!(
        !out.stdout.iter().any(|l| l.starts_with("admin password")),
        "{:#?}",
        out.stdout
    );
    assert_eq!(read(&initial), initial_before);
}

// ---------------------------------------------------------------------------
// 3. Setting and changing the admin password
// ---------------------------------------------------------------------------

/// Runs a server once without a password (so `initial-admin-password`
/// exists) and returns that generated password.
async fn first_run(data: &Path) -> String {
    let mut server = ServerProcess::start(data);
    server
        .wait_stdout("admin password written to ", STARTUP)
        .expect("a generated admin password");
    let pw = initial_password(data);
    server.kill();
    pw
}

async fn assert_refused(server: &ServerProcess, password: &str) {
    let (answer, mut c) = server.admin_attempt(password).await;
    assert!(
        answer.starts_with("REFUSE "),
        "password {password:?} should be refused, got {answer}"
    );
    assert!(c.expect_closed().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_password_from_the_environment_replaces_the_generated_one() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    let generated = first_run(&data).await;

    let server = ServerProcess::start_with_password(&data, PASSWORD);
    server
        .wait_stdout("admin password set from the given password", STARTUP)
        .unwrap_or_else(|| panic!("{:#?}", server.stdout()));
    assert!(
        !data.join("initial-admin-password").exists(),
        "the stale initial-admin-password must be deleted"
    );
    // Refused first: a logged-in admin would make the nickname taken.
    assert_refused(&server, &generated).await;
    server.login_admin(PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_password_file_replaces_the_generated_one() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    let generated = first_run(&data).await;

    let pw_file = tmp.path().join("admin.pw");
    std::fs::write(&pw_file, format!("{PASSWORD}\nsecond line is ignored\n")).unwrap();
    let mut cmd = run_command(&data);
    cmd.arg("--admin-password-file").arg(&pw_file);
    let server = ServerProcess::spawn(cmd);
    server
        .wait_stdout("admin password set from the given password", STARTUP)
        .unwrap_or_else(|| panic!("{:#?}", server.stdout()));
    assert!(!data.join("initial-admin-password").exists());
    // Refused first: a logged-in admin would make the nickname taken.
    assert_refused(&server, &generated).await;
    server.login_admin(PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwd_reads_the_new_password_from_stdin() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    let generated = first_run(&data).await;
    assert!(data.join("initial-admin-password").exists());

    let out = run_once(
        &[os("passwd"), os("--data-dir"), data.as_os_str()],
        &[],
        &format!("{PASSWORD}\n"),
    );
    out.assert_success();
    assert!(
        out.stdout.contains("admin password changed"),
        "{:#?}",
        out.stdout
    );
    assert!(!out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD));
    assert!(
        !data.join("initial-admin-password").exists(),
        "passwd must delete the stale initial-admin-password"
    );

    let server = ServerProcess::start(&data);
    assert_refused(&server, &generated).await;
    server.login_admin(PASSWORD).await;

    // Nothing on stdin changes nothing.
    let out = run_once(&[os("passwd"), os("--data-dir"), data.as_os_str()], &[], "");
    assert_ne!(out.code(), Some(0), "{out:#?}");
}

// ---------------------------------------------------------------------------
// 4. gen-cert
// ---------------------------------------------------------------------------

fn parse_sans(cert_pem: &Path) -> (Vec<String>, Vec<Vec<u8>>, i64) {
    let der = CertificateDer::from_pem_file(cert_pem).unwrap();
    let (_, x509) = x509_parser::parse_x509_certificate(der.as_ref()).expect("x509 parses");
    let san = x509
        .subject_alternative_name()
        .expect("valid SAN extension")
        .expect("a SAN extension");
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(d) => dns.push(d.to_string()),
            GeneralName::IPAddress(ip) => ips.push(ip.to_vec()),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    (dns, ips, x509.validity().not_after.timestamp())
}

#[test]
fn gen_cert_writes_a_pair_with_ip_and_dns_sans_and_refuses_to_overwrite() {
    let tmp = tempdir();
    let dir = tmp.path().join("out");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let args = [
        "--san",
        "203.0.113.7",
        "--san",
        "chat.example.org",
        "--days",
        "30",
    ];

    let printed = gen_cert(&dir, &args);
    assert!(cert.is_file() && key.is_file());
    assert!(is_sha256_fingerprint(&printed), "{printed}");
    assert_eq!(printed, sha256_fingerprint(&cert));
    assert_eq!(
        fingerprint_cmd(&[os("fingerprint"), os("--cert"), cert.as_os_str()]),
        printed
    );
    #[cfg(unix)]
    assert_eq!(mode(&key), 0o600);

    let (dns, ips, not_after) = parse_sans(&cert);
    assert!(dns.contains(&"chat.example.org".to_owned()), "{dns:?}");
    assert!(dns.contains(&"localhost".to_owned()), "{dns:?}");
    assert!(ips.contains(&vec![203, 0, 113, 7]), "{ips:?}");
    assert!(ips.contains(&vec![127, 0, 0, 1]), "{ips:?}");
    let mut v6_loopback = vec![0u8; 16];
    v6_loopback[15] = 1;
    assert!(ips.contains(&v6_loopback), "{ips:?}");
    // IP addresses are never DNS names, names never IP addresses.
    for ip in ["203.0.113.7", "127.0.0.1", "::1"] {
        assert!(!dns.iter().any(|d| d == ip), "{ip} as a DNS SAN: {dns:?}");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let days = (not_after - now) as f64 / 86_400.0;
    assert!((29.0..=31.0).contains(&days), "valid for {days} days");

    // Again without --force: refused, nothing touched.
    let cert_before = read(&cert);
    let key_before = read(&key);
    let mut argv = vec!["gen-cert", "--out", dir.to_str().unwrap()];
    argv.extend(args);
    let out = run_once(&argv, &[], "");
    assert_ne!(out.code(), Some(0), "{out:#?}");
    assert!(out.stderr.contains("--force"), "{out:#?}");
    assert_eq!(read(&cert), cert_before);
    assert_eq!(read(&key), key_before);

    // With --force: replaced.
    argv.push("--force");
    let out = run_once(&argv, &[], "");
    out.assert_success();
    let replaced = fingerprint_from_output(&out.stdout);
    assert_ne!(replaced, printed);
    assert_eq!(replaced, sha256_fingerprint(&cert));
    assert_ne!(read(&key), key_before);
    #[cfg(unix)]
    assert_eq!(mode(&key), 0o600);
}

// ---------------------------------------------------------------------------
// 5. run --cert/--key
// ---------------------------------------------------------------------------

fn run_with_files(data: &Path, cert: &Path, key: &Path) -> std::process::Command {
    let mut cmd = run_command(data);
    cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    cmd
}

/// Runs a server expected to refuse to start; returns its stderr.
fn startup_failure(data: &Path, extra: &[&OsStr]) -> String {
    let mut args: Vec<&OsStr> = vec![
        os("run"),
        os("--listen"),
        os("127.0.0.1:0"),
        os("--data-dir"),
        data.as_os_str(),
    ];
    args.extend(extra);
    let out = run_once(&args, &[("TLSCHAT_ADMIN_PASSWORD", PASSWORD)], "");
    assert_eq!(
        out.code(),
        Some(1),
        "the server should refuse to start: {out:#?}"
    );
    assert!(!out.stdout.contains("listening on"), "{out:#?}");
    out.stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_a_generated_cert_and_key() {
    let tmp = tempdir();
    let pair = tmp.path().join("pair");
    let fp = gen_cert(&pair, &["--days", "30"]);
    let cert = pair.join("cert.pem");
    let key = pair.join("key.pem");

    let data = tmp.path().join("data");
    let mut cmd = run_with_files(&data, &cert, &key);
    cmd.env("TLSCHAT_ADMIN_PASSWORD", PASSWORD);
    let server = ServerProcess::spawn(cmd);
    assert_eq!(server.cert_path, cert);
    assert!(!server.cert_generated);
    assert_eq!(server.fingerprint, fp);
    assert!(
        !data.join("certs").exists(),
        "no certificate is generated when --cert is given"
    );

    // A client trusting exactly that certificate connects and chats.
    let der = CertificateDer::from_pem_file(&cert).unwrap();
    let mut alice = login(server.addr, &der, "alice").await;
    alice.send("hello").await;
    alice.expect("MSG #lobby alice hello").await;
}

#[test]
fn run_refuses_a_key_from_another_pair_naming_the_key() {
    let tmp = tempdir();
    gen_cert(&tmp.path().join("a"), &["--days", "30"]);
    gen_cert(&tmp.path().join("b"), &["--days", "30"]);
    let cert = tmp.path().join("a").join("cert.pem");
    let key = tmp.path().join("b").join("key.pem");
    let stderr = startup_failure(
        &tmp.path().join("data"),
        &[os("--cert"), cert.as_os_str(), os("--key"), key.as_os_str()],
    );
    assert!(stderr.contains(&key.display().to_string()), "{stderr}");
}

#[test]
fn run_refuses_an_expired_certificate_naming_it() {
    let tmp = tempdir();
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let expired = params.self_signed(&key_pair).unwrap();
    let cert = tmp.path().join("old-cert.pem");
    let key = tmp.path().join("old-key.pem");
    std::fs::write(&cert, expired.pem()).unwrap();
    std::fs::write(&key, key_pair.serialize_pem()).unwrap();

    let stderr = startup_failure(
        &tmp.path().join("data"),
        &[os("--cert"), cert.as_os_str(), os("--key"), key.as_os_str()],
    );
    assert!(stderr.contains(&cert.display().to_string()), "{stderr}");
    assert!(stderr.contains("expired"), "{stderr}");
}

#[test]
fn run_refuses_missing_cert_or_key_files_naming_them() {
    let tmp = tempdir();
    let pair = tmp.path().join("pair");
    gen_cert(&pair, &["--days", "30"]);
    let cert = pair.join("cert.pem");
    let key = pair.join("key.pem");
    let missing = tmp.path().join("no-such-file.pem");
    let data = tmp.path().join("data");

    let stderr = startup_failure(
        &data,
        &[
            os("--cert"),
            missing.as_os_str(),
            os("--key"),
            key.as_os_str(),
        ],
    );
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    let stderr = startup_failure(
        &data,
        &[
            os("--cert"),
            cert.as_os_str(),
            os("--key"),
            missing.as_os_str(),
        ],
    );
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
}

// ---------------------------------------------------------------------------
// 6. Bans persist
// ---------------------------------------------------------------------------

/// Admin bans bob through `server`; returns after the admin saw `INFO banned`.
async fn ban_bob(server: &ServerProcess) {
    let mut admin = server.login_admin(PASSWORD).await;
    let mut bob = server.login("bob").await;
    admin.wait_for("JOIN #lobby bob").await;
    admin.send("/ban bob flooding").await;
    let info = admin.wait_for("INFO banned").await;
    assert_eq!(info, "INFO banned bob (127.0.0.1)");
    bob.wait_for("KICK bob admin banned: flooding").await;
    bob.expect_closed().await;
}

async fn assert_bob_banned(data: &Path) {
    let bans = String::from_utf8(read(&data.join("bans.txt"))).unwrap();
    assert!(
        bans.lines()
            .any(|l| l.contains("bob") && l.contains("127.0.0.1")),
        "bans.txt is not human-readable as expected:\n{bans}"
    );

    let server = ServerProcess::start_with_password(data, PASSWORD);
    for nick in ["bob", "BOB", "carol"] {
        // bob by nickname (any case), carol by bob's address.
        let mut c = server.connect().await;
        c.expect("NICK").await;
        c.send(nick).await;
        let answer = c.recv().await;
        assert!(
            answer.starts_with("BAN "),
            "{nick} should be banned after a restart, got {answer}"
        );
        assert!(c.expect_closed().await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_survive_a_graceful_restart() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    let mut server = ServerProcess::start_with_password(&data, PASSWORD);
    ban_bob(&server).await;
    // SIGTERM on Unix (a clean exit); elsewhere a hard kill.
    let status = server.terminate();
    assert!(status.success() || cfg!(not(unix)), "{status}");
    assert_bob_banned(&data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_survive_sigkill_right_after_the_confirmation() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    let mut server = ServerProcess::start_with_password(&data, PASSWORD);
    let mut admin = server.login_admin(PASSWORD).await;
    let mut bob = server.login("bob").await;
    admin.wait_for("JOIN #lobby bob").await;
    admin.send("/ban bob flooding").await;
    admin.wait_for("INFO banned bob").await;
    server.kill();
    drop(bob.expect_closed().await);
    assert_bob_banned(&data).await;
}

#[test]
fn a_malformed_bans_file_stops_startup_naming_file_and_line() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let bans = data.join("bans.txt");
    std::fs::write(
        &bans,
        "mallory - 2026-01-01T00:00:00Z admin spam\nthis is not a ban line at all\n",
    )
    .unwrap();
    let stderr = startup_failure(&data, &[]);
    assert!(stderr.contains(&bans.display().to_string()), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
}

// ---------------------------------------------------------------------------
// 7. Graceful shutdown (SIGTERM: Unix only)
// ---------------------------------------------------------------------------

#[cfg(unix)]
mod graceful_shutdown {
    use std::time::{Duration, Instant};

    use super::*;
    use harness::Client;

    /// After SIGTERM: the client gets one `INFO` line, then EOF.
    async fn assert_info_then_eof(who: &str, c: &mut Client) {
        let rest = c.expect_closed().await;
        assert!(
            rest.len() == 1 && rest[0].starts_with("INFO "),
            "{who} should get exactly one INFO line then EOF, got {rest:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigterm_says_goodbye_to_clients_and_exits_zero() {
        let tmp = tempdir();
        let mut server = ServerProcess::start_with_password(&tmp.path().join("data"), PASSWORD);
        let mut alice = server.login("alice").await;
        let mut bob = server.login("bob").await;
        alice.wait_for("JOIN #lobby bob").await;
        alice.sync("a").await;
        bob.sync("b").await;

        let start = Instant::now();
        server.signal_terminate();
        assert_info_then_eof("alice", &mut alice).await;
        assert_info_then_eof("bob", &mut bob).await;
        let status = server
            .wait_exit(Duration::from_secs(5).saturating_sub(start.elapsed()))
            .unwrap_or_else(|| panic!("no exit within 5 s of SIGTERM\n{}", server.stderr()));
        assert!(status.success(), "{status}\n{}", server.stderr());
    }

    /// Floods `#lobby` from `sender` with long messages (8 at a time, then a
    /// `/ping` round trip so the sender's own echoes never pile up) until
    /// `count` were sent or `PART #lobby <watch>` shows the server dropped
    /// `watch`. Returns how many were sent and whether `watch` was dropped.
    async fn flood(sender: &mut Client, count: usize, watch: &str) -> (usize, bool) {
        let text = "x".repeat(3900);
        let part = format!("PART #lobby {watch} ");
        let mut sent = 0;
        while sent < count {
            for _ in 0..8.min(count - sent) {
                sender.send(&text).await;
                sent += 1;
            }
            let token = format!("f{sent}");
            sender.send(&format!("/ping {token}")).await;
            loop {
                let line = sender.recv().await;
                if line.starts_with(&part) {
                    return (sent, true);
                }
                if line == format!("PONG {token}") {
                    break;
                }
            }
        }
        (sent, false)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigterm_exits_promptly_despite_a_client_that_stopped_reading() {
        let tmp = tempdir();
        let mut server = ServerProcess::start_with_password(&tmp.path().join("data"), PASSWORD);
        let mut observer = server.login("observer").await;
        observer.send("/join #quiet").await;
        observer.wait_for("USERS #quiet").await;
        let mut sender = server.login("sender").await;

        // How much a client that stops reading absorbs (kernel buffers, then
        // the server's per-client queue) before the server drops it depends on
        // the machine: measure it with a first staller.
        let probe = server.login("probe").await;
        sender.wait_for("JOIN #lobby probe").await;
        let (capacity, dropped) = flood(&mut sender, 20_000, "probe").await;
        assert!(
            dropped,
            "a client that never reads must be dropped eventually"
        );
        drop(probe);

        // The real staller: fill its socket buffers and part of its queue, but
        // stay well below what gets it dropped.
        let staller = server.login("staller").await;
        sender.wait_for("JOIN #lobby staller").await;
        let target = capacity.saturating_sub(100).max(1);
        let (_, dropped) = flood(&mut sender, target, "staller").await;
        assert!(
            !dropped,
            "the staller was dropped after fewer lines than the probe ({target} < {capacity})"
        );
        sender.sync("before-term").await;
        observer.sync("before-term").await;

        let start = Instant::now();
        server.signal_terminate();
        assert_info_then_eof("sender", &mut sender).await;
        assert_info_then_eof("observer", &mut observer).await;
        let status = server
            .wait_exit(Duration::from_secs(5).saturating_sub(start.elapsed()))
            .unwrap_or_else(|| {
                panic!(
                    "no exit within 5 s of SIGTERM with a stalled client\n{}",
                    server.stderr()
                )
            });
        assert!(status.success(), "{status}\n{}", server.stderr());
        let backstop = server.stderr().contains("did not close in time");
        eprintln!(
            "stalled-client shutdown took {:?} (probe absorbed {capacity} lines; \
             server hit its shutdown backstop: {backstop})",
            start.elapsed()
        );
        drop(staller);
    }
}

// ---------------------------------------------------------------------------
// 8. Command line
// ---------------------------------------------------------------------------

#[test]
fn version_and_help() {
    let out = run_once(&["--version"], &[], "");
    out.assert_success();
    assert_eq!(out.stdout.trim(), expected_version("tlschat-server"));

    let out = run_once(&["--help"], &[], "");
    out.assert_success();
    assert!(out.stdout.contains("Examples"), "{}", out.stdout);
    for sub in ["run", "gen-cert", "fingerprint", "passwd"] {
        assert!(out.stdout.contains(sub), "{sub} missing from --help");
    }

    let out = run_once(&["run", "--help"], &[], "");
    out.assert_success();
    for flag in ["--listen", "--data-dir", "--cert", "--key", "--san"] {
        assert!(out.stdout.contains(flag), "{flag} missing from run --help");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_without_a_subcommand_run_the_server() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    let mut cmd = server_bin();
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data);
    let server = ServerProcess::spawn(cmd);
    assert_eq!(server.data_dir, data);
    let mut alice = server.login("alice").await;
    alice.sync("x").await;
}

#[test]
fn a_bad_listen_address_is_a_usage_error() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    for bad in ["nonsense", "127.0.0.1", "127.0.0.1:99999", "[::1]:"] {
        for run in [true, false] {
            let mut args: Vec<&OsStr> = Vec::new();
            if run {
                args.push(os("run"));
            }
            args.extend([os("--listen"), os(bad), os("--data-dir"), data.as_os_str()]);
            let out = run_once(&args, &[], "");
            assert_eq!(out.code(), Some(2), "--listen {bad}: {out:#?}");
            assert!(out.stderr.contains("--listen"), "{out:#?}");
        }
    }
    assert!(!data.exists(), "a usage error must not create the data dir");
}

// ---------------------------------------------------------------------------
// 9. IPv6, 10. plaintext
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listens_on_ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: IPv6 loopback is not available here");
        return;
    }
    let tmp = tempdir();
    let mut cmd = server_bin();
    cmd.args(["run", "--listen", "[::1]:0", "--data-dir"])
        .arg(tmp.path().join("data"));
    let server = ServerProcess::spawn(cmd);
    assert!(server.addr.is_ipv6(), "{}", server.addr);
    assert_eq!(server.addr.ip().to_string(), "::1");
    assert!(server.stdout()[0].ends_with(&format!("listening on [::1]:{}", server.addr.port())));
    let mut alice = connect_tls(server.addr, &server.cert()).await;
    alice.expect("NICK").await;
    alice.send("alice").await;
    alice.expect("WELCOME alice #lobby").await;
}

#[test]
fn a_plaintext_client_is_told_to_use_tls() {
    let tmp = tempdir();
    let server = ServerProcess::start(&tmp.path().join("data"));
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"hello\n").unwrap();
    let mut reader = BufReader::new(tcp);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .expect("one line before the close");
    assert_eq!(
        line,
        "ERROR tls-required this port speaks TLS: use tlschat, openssl s_client or ncat --ssl\n"
    );
    // Then the server closes (EOF, or a reset since "hello" was never read).
    let mut more = String::new();
    match reader.read_line(&mut more) {
        Ok(0) => {}
        Ok(_) => panic!("more after the tls-required line: {more:?}"),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the server did not close within 10 s"
        ),
    }
}
