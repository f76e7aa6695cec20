//! The real `tlschat` client binary (plain mode) against a hostile server:
//! a small TLS server written here that says what a malicious or broken
//! server would say, to check that the client distrusts it.
//!
//! What flows: the test mints certificates with rcgen (a self-signed one, or
//! a CA and a leaf it signs), starts [`Hostile`] on an ephemeral
//! 127.0.0.1 port, and each accepted connection runs the test's script
//! against a [`Peer`] (TLS lines both ways). The client child gets the
//! trust flags (`--fingerprint`, `--ca`, or TOFU with a known_hosts file in
//! the test's temp dir) and the test asserts on its stdout, stderr, exit
//! code and, on Linux, its peak memory. Every wait is bounded; a client
//! still running at the end is killed.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::harness::{self, ClientProcess as Client, Reading, WAIT};
use tlschat_protocol::connection::Connection;
use tlschat_protocol::{Frame, MAX_SERVER_LINE};

/// Text in several scripts, so every path carries non-ASCII.
pub(crate) const WORLD: &str = "Привет Γειά مرحبا שלום 你好 👩🏽‍💻 👨‍👩‍👧 e\u{301}";

/// `text` as the client shows it (its sanitiser decides which characters
/// are replaced; the tests only require that it is applied).
fn shown(text: &str) -> String {
    tlschat_client_core::render::sanitize(text).into_owned()
}

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

/// A certificate and its key, as the hostile server presents them.
pub(crate) struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Identity {
    /// A self-signed certificate for `sans`, marked as a CA if `is_ca`.
    pub(crate) fn self_signed(sans: &[&str], is_ca: bool) -> Identity {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = params(sans);
        if is_ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        let cert = params.self_signed(&key).expect("self-signed certificate");
        Identity {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }

    /// `SHA256:<hex>` of the certificate shown first, for `--fingerprint`.
    pub(crate) fn fingerprint(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.chain[0]);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("SHA256:{hex}")
    }
}

/// Parameters for `sans`; names rcgen cannot parse as addresses become DNS
/// names as they are, control characters included (IA5 allows them).
fn params(sans: &[&str]) -> rcgen::CertificateParams {
    rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("certificate parameters")
}

/// A CA the user trusts with `--ca`.
struct Ca {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = params(&[]);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hostile test CA");
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A leaf for `sans`, signed by this CA.
    fn issue(&self, sans: &[&str]) -> Identity {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params(sans)
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Identity {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }

    fn write(&self, path: &Path) {
        std::fs::write(path, &self.pem).expect("write the CA file");
    }
}

// ---------------------------------------------------------------------------
// The hostile server
// ---------------------------------------------------------------------------

/// One accepted TLS connection, seen as lines.
pub(crate) struct Peer {
    conn: Connection<TlsStream<TcpStream>>,
}

impl Peer {
    pub(crate) async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes()).await;
    }

    /// Bytes as they are; a failed write (the client left) is ignored: the
    /// test looks at what the client did, not at this side.
    async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.conn.write_line(bytes).await;
    }

    /// The next line from the client; `None` once it closed or after `limit`.
    pub(crate) async fn recv_within(&mut self, limit: Duration) -> Option<String> {
        match tokio::time::timeout(limit, self.conn.read_frame()).await {
            Ok(Ok(Some(Frame::Line(l)))) => Some(l),
            Ok(Ok(Some(other))) => Some(format!("{other:?}")),
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => None,
        }
    }

    pub(crate) async fn recv(&mut self) -> Option<String> {
        self.recv_within(WAIT).await
    }

    /// `NICK`, the client's answer, `WELCOME`, `JOIN`, `USERS`: a normal
    /// login. Returns the nickname.
    pub(crate) async fn login(&mut self) -> String {
        self.send("NICK").await;
        let nick = self.recv().await.expect("a nickname from the client");
        self.send(&format!("WELCOME {nick} #lobby")).await;
        self.send(&format!("JOIN #lobby {nick}")).await;
        self.send(&format!("USERS #lobby {nick}")).await;
        nick
    }

    /// The ALPN protocol the handshake settled on, if any.
    pub(crate) fn alpn(&self) -> Option<Vec<u8>> {
        self.conn
            .get_ref()
            .get_ref()
            .1
            .alpn_protocol()
            .map(<[u8]>::to_vec)
    }

    /// Orderly close: TLS `close_notify`, then the TCP FIN.
    pub(crate) async fn close(&mut self) {
        let _ = tokio::time::timeout(WAIT, self.conn.shutdown()).await;
    }

    /// Serves a logged-in client until it sends `/quit` (or leaves), then
    /// closes the way the real server does.
    pub(crate) async fn until_quit(&mut self) {
        while let Some(l) = self.recv().await {
            if l.starts_with("/quit") {
                break;
            }
        }
        self.close().await;
    }

    /// Reads until the client closes (bounded); every line it sent.
    async fn rest(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(l) = self.recv().await {
            lines.push(l);
        }
        lines
    }
}

/// A TLS server on loopback (127.0.0.1 unless told) that runs `script` for every connection, on its
/// own runtime (the test thread stays free to drive the client child).
pub(crate) struct Hostile {
    addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
}

impl Hostile {
    pub(crate) fn start<F, Fut>(identity: &Identity, script: F) -> Hostile
    where
        F: Fn(Peer) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::start_gated(identity, None, "127.0.0.1:0", Vec::new(), script)
    }

    /// As [`Hostile::start`], selecting ALPN `alpn` when the client offers
    /// it (as a server in history mode does).
    pub(crate) fn start_alpn<F, Fut>(identity: &Identity, alpn: &[u8], script: F) -> Hostile
    where
        F: Fn(Peer) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::start_gated(identity, None, "127.0.0.1:0", vec![alpn.to_vec()], script)
    }

    /// As [`Hostile::start`], listening on `bind` (a loopback address with
    /// port 0).
    pub(crate) fn start_on<F, Fut>(identity: &Identity, bind: &str, script: F) -> Hostile
    where
        F: Fn(Peer) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::start_gated(identity, None, bind, Vec::new(), script)
    }

    /// As [`Hostile::start`]; with a `gate`, each TLS handshake waits until
    /// every server sharing the gate has accepted its TCP connection, so
    /// their clients reach the trust decision at the same moment.
    fn start_gated<F, Fut>(
        identity: &Identity,
        gate: Option<Arc<std::sync::Barrier>>,
        bind: &str,
        alpn: Vec<Vec<u8>>,
        script: F,
    ) -> Hostile
    where
        F: Fn(Peer) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let runtime = harness::runtime();
        let mut config =
            rustls::ServerConfig::builder_with_provider(tlschat_protocol::tls::provider())
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_no_client_auth()
                .with_single_cert(
                    identity.chain.clone(),
                    PrivateKeyDer::Pkcs8(identity.key.clone_key()),
                )
                .expect("server certificate");
        config.alpn_protocols = alpn;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = runtime
            .block_on(TcpListener::bind(bind))
            .unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        let addr = listener.local_addr().expect("local addr");
        let script = Arc::new(script);
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if let Some(gate) = &gate {
                    let gate = gate.clone();
                    let _ = tokio::task::spawn_blocking(move || gate.wait()).await;
                }
                let acceptor = acceptor.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) = tokio::time::timeout(WAIT, acceptor.accept(tcp)).await {
                        script(Peer {
                            conn: Connection::new(tls, MAX_SERVER_LINE),
                        })
                        .await;
                    }
                });
            }
        });
        Hostile { addr, runtime }
    }

    pub(crate) fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        // Scripts that wait forever (a server that stopped reading) end here.
        let rt = std::mem::replace(
            &mut self.runtime,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
        );
        rt.shutdown_timeout(Duration::from_secs(1));
    }
}

/// What a script saw, for the test thread.
#[derive(Clone, Default)]
pub(crate) struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    pub(crate) fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }

    pub(crate) fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------
// The client child
// ---------------------------------------------------------------------------

/// Longest part of a stdout/stderr line the test keeps (the flood sends
/// 1 MiB lines; only their start matters).
const KEEP: Reading = Reading {
    keep: 512,
    strict_utf8: false,
};

/// `tlschat --plain --known-hosts <dir>/known_hosts ARGS…` with HOME
/// inside `dir`.
pub(crate) fn client_command(dir: &Path, args: &[&str]) -> Command {
    let mut all = vec!["--plain"];
    all.extend_from_slice(args);
    harness::client_command(&dir.join("home"), &dir.join("known_hosts"), &all)
}

/// [`client_command`] for `nick`, pinned to `id`'s certificate at `server`,
/// with `extra` flags before the host.
pub(crate) fn pinned_command(
    dir: &Path,
    nick: &str,
    id: &Identity,
    server: &Hostile,
    extra: &[&str],
) -> Command {
    let fingerprint = id.fingerprint();
    let host = server.host();
    let mut args = vec!["--nick", nick];
    args.extend_from_slice(extra);
    args.extend(["--fingerprint", fingerprint.as_str(), host.as_str()]);
    client_command(dir, &args)
}

/// A client child with stdin kept open.
pub(crate) fn spawn(cmd: Command) -> Client {
    Client::spawn_with(cmd, KEEP)
}

/// A client child with `input` on stdin (then EOF).
fn run(dir: &Path, args: &[&str], input: &str) -> Client {
    run_with(client_command(dir, args), input)
}

pub(crate) fn run_with(cmd: Command, input: &str) -> Client {
    Client::spawn_with_input(cmd, KEEP, input)
}

/// No raw escape, bell or other control character reached the terminal.
#[track_caller]
pub(crate) fn assert_no_control_characters(client: &mut Client) {
    for (name, text) in [
        ("stdout", client.out().text()),
        ("stderr", client.err().text()),
    ] {
        let bad: Vec<char> = text
            .chars()
            .filter(|&c| c != '\n' && (c.is_control()))
            .collect();
        assert!(
            bad.is_empty(),
            "{name} carries control characters {bad:?}\n{}",
            client.dump()
        );
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// Peak resident memory of a running process, from /proc/<pid>/status.
#[cfg(target_os = "linux")]
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

// ---------------------------------------------------------------------------
// What a certificate says
// ---------------------------------------------------------------------------

/// Names with escape sequences in a certificate signed by the user's CA:
/// the name-mismatch error shows them neutralised.
#[test]
fn certificate_names_never_reach_the_terminal_raw() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let ca_path = dir.path().join("ca.pem");
    ca.write(&ca_path);
    let leaf = ca.issue(&["evil\u{1b}]0;PWNED\u{7}.example", "\u{1b}[2J.example"]);
    let server = Hostile::start(&leaf, |mut peer| async move {
        peer.send("NICK").await;
        let _ = peer.rest().await;
    });
    let mut client = run(
        dir.path(),
        &["--nick", "alice", "--ca", s(&ca_path), &server.host()],
        "",
    );
    client.assert_exit(3);
    assert_no_control_characters(&mut client);
    let err = client.err().text();
    assert!(err.contains("not valid for that name"), "{}", client.dump());
    assert!(
        err.contains("evil\u{FFFD}]0;PWNED\u{FFFD}.example"),
        "the names are shown, neutralised\n{}",
        client.dump()
    );
}

/// A certificate not from the user's CA, under `--ca`, is called what it
/// may be: an impostor. The client never suggests trusting it another way.
#[test]
fn an_impostor_under_ca_is_not_met_with_advice_to_pin_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let ca_path = dir.path().join("ca.pem");
    ca.write(&ca_path);
    for (what, impostor) in [
        (
            "a self-signed CA certificate",
            Identity::self_signed(&["127.0.0.1", "localhost"], true),
        ),
        (
            "a self-signed certificate",
            Identity::self_signed(&["127.0.0.1", "localhost"], false),
        ),
        (
            "a certificate from another CA",
            Ca::new().issue(&["127.0.0.1", "localhost"]),
        ),
    ] {
        let seen = Seen::default();
        let log = seen.clone();
        let server = Hostile::start(&impostor, move |mut peer| {
            let log = log.clone();
            async move {
                peer.send("NICK").await;
                while let Some(l) = peer.recv().await {
                    log.push(l);
                }
            }
        });
        let mut client = run(
            dir.path(),
            &["--nick", "alice", "--ca", s(&ca_path), &server.host()],
            "hello\n",
        );
        client.assert_exit(3);
        let err = client.err().text();
        assert!(
            err.contains("not signed by the CA") && err.contains("impostor"),
            "{what}: \n{}",
            client.dump()
        );
        assert!(
            !err.contains("--fingerprint") && !err.contains("known_hosts"),
            "{what}: advice to switch trust mode\n{}",
            client.dump()
        );
        assert!(seen.all().is_empty(), "{what}: sent {:?}", seen.all());
    }
}

// ---------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------

/// 1 MiB messages in bulk: the client shows them all and its memory stays
/// bounded (the scrollback is bounded in bytes, the event queue in lines).
#[cfg(target_os = "linux")]
#[test]
fn a_flood_of_one_mib_messages_keeps_memory_bounded() {
    const MESSAGES: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::self_signed(&["localhost"], false);
    let server = Hostile::start(&id, |mut peer| async move {
        peer.login().await;
        let prefix = format!("MSG #lobby flood {WORLD} ");
        let filler = MAX_SERVER_LINE - 1 - prefix.len() - 8;
        let body = "ж".repeat(filler / 2);
        for i in 0..MESSAGES {
            peer.send(&format!("{prefix}{i:06} {body}")).await;
        }
        peer.send(&format!("MSG #lobby flood done {WORLD}")).await;
        peer.until_quit().await;
    });
    let mut client = spawn(pinned_command(dir.path(), "alice", &id, &server, &[]));
    let done = format!("[#lobby] flood: done {}", shown(WORLD));
    assert!(
        client.out().any(Duration::from_secs(120), |l| l == done),
        "the flood did not get through\n{}",
        client.dump()
    );
    let peak_mib = peak_rss_kib(client.pid()) / 1024;
    eprintln!("peak memory of the client: {peak_mib} MiB");
    let shown = client
        .out()
        .lines()
        .iter()
        .filter(|l| l.starts_with("[#lobby] flood: "))
        .count();
    assert_eq!(shown, MESSAGES + 1, "every message is shown");
    client.close_stdin();
    client.assert_exit(0);
    assert!(
        peak_mib < 300,
        "peak memory {peak_mib} MiB for {MESSAGES} messages of 1 MiB"
    );
}

/// 200,000 JOINs (and a few repeats in another case) cost little: the
/// client keeps up and shows the line after them.
#[test]
fn two_hundred_thousand_joins_are_absorbed() {
    const JOINS: usize = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::self_signed(&["localhost"], false);
    let server = Hostile::start(&id, |mut peer| async move {
        peer.login().await;
        let mut batch = String::new();
        for i in 0..JOINS {
            batch.push_str(&format!("JOIN #lobby u{i}\nJOIN #lobby U{}\n", i / 2));
            if batch.len() > 60_000 {
                peer.send_raw(batch.as_bytes()).await;
                batch.clear();
            }
        }
        peer.send_raw(batch.as_bytes()).await;
        peer.send(&format!("MSG #lobby srv after the joins {WORLD}"))
            .await;
        peer.until_quit().await;
    });
    let mut client = spawn(pinned_command(dir.path(), "alice", &id, &server, &[]));
    let after = format!("[#lobby] srv: after the joins {}", shown(WORLD));
    assert!(
        client.out().any(Duration::from_secs(90), |l| l == after),
        "the client did not get through the JOINs\n{}",
        client.dump()
    );
    client.close_stdin();
    client.assert_exit(0);
}

// ---------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------

/// Runs the client as `nick` with `TLSCHAT_PASSWORD` set against a server
/// that asks for the nickname, then sends `prompt` up to `times` times and
/// records each answer. Returns the client (exited) and the answers.
fn login_prompted(nick: &str, prompt: &'static str, times: usize) -> (Client, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::self_signed(&["localhost"], false);
    let seen = Seen::default();
    let log = seen.clone();
    let server = Hostile::start(&id, move |mut peer| {
        let log = log.clone();
        async move {
            peer.send("NICK").await;
            let _nick = peer.recv().await;
            for _ in 0..times {
                peer.send(prompt).await;
                match peer.recv_within(Duration::from_secs(2)).await {
                    Some(l) => log.push(l),
                    None => break,
                }
            }
        }
    });
    let mut cmd = pinned_command(dir.path(), nick, &id, &server, &["--no-reconnect"]);
    cmd.env("TLSCHAT_PASSWORD", password());
    let mut client = run_with(cmd, "");
    client.assert_exit(1);
    (client, seen.all())
}

fn password() -> String {
    format!("secret {WORLD}")
}

/// A server that asks `PASS` again gets the password once; the client
/// closes with a clear message.
#[test]
fn the_password_is_sent_at_most_once() {
    let (mut client, seen) = login_prompted("admin", "PASS", 5);
    assert_eq!(seen, vec![password()], "{}", client.dump());
    let err = client.err().text();
    assert!(
        err.contains("PASS") && err.contains("again"),
        "{}",
        client.dump()
    );
    assert!(!err.contains(&password()), "{}", client.dump());
}

/// `PASS join` asks for a server's join password or an invite code: the
/// account password the client holds is not sent to it, and without a
/// join secret the client stops with a clear message.
#[test]
fn the_account_password_is_not_sent_to_pass_join() {
    let (mut client, seen) = login_prompted("alice", "PASS join", 1);
    assert!(seen.is_empty(), "{}", client.dump());
    let err = client.err().text();
    assert!(
        err.contains("join password or an invite code"),
        "{}",
        client.dump()
    );
}

/// A second `WELCOME` mid-session is a protocol error: the client does not
/// take the new nickname, closes and does not come back.
#[test]
fn a_second_welcome_is_a_protocol_error() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::self_signed(&["localhost"], false);
    let seen = Seen::default();
    let log = seen.clone();
    let server = Hostile::start(&id, move |mut peer| {
        let log = log.clone();
        async move {
            log.push("connection");
            let nick = peer.login().await;
            peer.send(&format!("MSG #lobby {nick} before {WORLD}"))
                .await;
            peer.send("WELCOME mallory #lobby").await;
            peer.send("MSG #lobby mallory after").await;
            for l in peer.rest().await {
                log.push(l);
            }
        }
    });
    let mut client = spawn(pinned_command(dir.path(), "alice", &id, &server, &[]));
    client.assert_exit(1);
    let err = client.err().text();
    assert!(
        err.contains("WELCOME") && err.contains("protocol"),
        "{}",
        client.dump()
    );
    let out = client.out().text();
    assert!(
        out.contains(&format!("alice: before {}", shown(WORLD))),
        "{}",
        client.dump()
    );
    assert!(
        !out.contains("after"),
        "a line after the bad WELCOME was shown\n{}",
        client.dump()
    );
    assert_eq!(seen.all(), vec!["connection"], "{}", client.dump());
}

/// A `WELCOME` naming another room (with control bytes, or a plain one) is
/// refused: nothing is echoed back, nothing raw reaches the terminal.
#[test]
fn a_welcome_naming_another_room_is_refused() {
    for room in ["#evil\u{1b}]0;PWNED\u{7}", "#elsewhere"] {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::self_signed(&["localhost"], false);
        let seen = Seen::default();
        let log = seen.clone();
        let server = Hostile::start(&id, move |mut peer| {
            let log = log.clone();
            async move {
                peer.send("NICK").await;
                let nick = peer.recv().await.unwrap_or_default();
                peer.send(&format!("WELCOME {nick} {room}")).await;
                peer.send(&format!("JOIN {room} {nick}")).await;
                for l in peer.rest().await {
                    log.push(l);
                }
            }
        });
        let mut client = run_with(
            pinned_command(dir.path(), "alice", &id, &server, &["--no-reconnect"]),
            "hello\n",
        );
        client.assert_exit(1);
        assert_no_control_characters(&mut client);
        assert!(
            client.err().text().contains("WELCOME"),
            "{room:?}\n{}",
            client.dump()
        );
        assert!(
            seen.all().is_empty(),
            "{room:?}: the client sent {:?}",
            seen.all()
        );
    }
}

/// `--accept-new` says it stored the host, also when the login then fails.
#[test]
fn accept_new_says_it_stored_the_host_when_the_login_fails() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::self_signed(&["localhost"], false);
    let server = Hostile::start(&id, |mut peer| async move {
        peer.send("NICK").await;
        let _ = peer.recv().await;
        peer.send(&format!("REFUSE go away {WORLD}")).await;
        peer.close().await;
    });
    let mut client = run(
        dir.path(),
        &["--nick", "alice", "--accept-new", &server.host()],
        "",
    );
    client.assert_exit(4);
    let kh = std::fs::read_to_string(dir.path().join("known_hosts")).expect("known_hosts written");
    assert!(kh.contains(&id.fingerprint().to_lowercase()[7..]), "{kh}");
    let err = client.err().text();
    assert!(
        err.contains(&format!("added {}", server.host())),
        "{}",
        client.dump()
    );
    assert!(
        err.contains(&format!("go away {}", shown(WORLD))),
        "{}",
        client.dump()
    );
}

// ---------------------------------------------------------------------------
// The session
// ---------------------------------------------------------------------------

/// A server that stops reading cannot hang the client: a write that does
/// not finish is under the session's deadline.
#[test]
fn a_server_that_stops_reading_cannot_hang_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::self_signed(&["localhost"], false);
    let server = Hostile::start(&id, |mut peer| async move {
        peer.login().await;
        peer.send(&format!("INFO not reading from now on {WORLD}"))
            .await;
        // Holds the connection open and never reads again.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(peer);
    });
    let mut client = spawn(pinned_command(
        dir.path(),
        "alice",
        &id,
        &server,
        &["--no-reconnect"],
    ));
    // Far more than the socket buffers hold; the writer thread blocks until
    // the client exits (then its writes fail).
    if let Some(mut stdin) = client.take_stdin() {
        std::thread::spawn(move || {
            let line = format!("{} {WORLD}\n", "x".repeat(900));
            for _ in 0..20_000 {
                if stdin.write_all(line.as_bytes()).is_err() {
                    return;
                }
            }
        });
    }
    let code = client.wait_exit_within(Duration::from_secs(90));
    assert_eq!(code, 1, "{}", client.dump());
    assert!(
        client.out().text().contains("not reading from now on"),
        "{}",
        client.dump()
    );
    assert!(
        client.err().text().contains("not reading"),
        "{}",
        client.dump()
    );
}

/// A line cut off by the close is not shown as a message.
#[test]
fn a_line_cut_off_by_a_close_is_not_shown() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::self_signed(&["localhost"], false);
    let server = Hostile::start(&id, |mut peer| async move {
        peer.login().await;
        peer.send(&format!("MSG #lobby srv whole {WORLD}")).await;
        peer.send_raw(format!("MSG #lobby srv cut {WORLD}").as_bytes())
            .await;
        peer.close().await;
    });
    // stdin stays open: a `/quit` racing the close would end the session
    // as a quit, before the cut-off line is noticed.
    let mut client = spawn(pinned_command(
        dir.path(),
        "alice",
        &id,
        &server,
        &["--no-reconnect"],
    ));
    let code = client.wait_exit_within(WAIT);
    let out = client.out().text();
    assert!(
        out.contains(&format!("srv: whole {}", shown(WORLD))),
        "{}",
        client.dump()
    );
    assert!(
        !out.contains("cut"),
        "a partial line was shown\n{}",
        client.dump()
    );
    assert!(
        client.err().text().contains("middle of a line"),
        "{}",
        client.dump()
    );
    assert_eq!(code, 1, "{}", client.dump());
}

/// A ban kick says `banned` once, with the reason.
#[test]
fn a_ban_kick_shows_the_reason_once() {
    for (reason, expect) in [
        (
            format!("banned: spam {WORLD}"),
            format!("-- banned: spam {}", shown(WORLD)),
        ),
        ("banned".to_owned(), "-- banned".to_owned()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::self_signed(&["localhost"], false);
        let kick = reason.clone();
        let server = Hostile::start(&id, move |mut peer| {
            let kick = kick.clone();
            async move {
                let nick = peer.login().await;
                peer.send(&format!("KICK {nick} admin {kick}")).await;
                peer.close().await;
            }
        });
        let mut client = run_with(pinned_command(dir.path(), "alice", &id, &server, &[]), "");
        client.assert_exit(4);
        let err = client.err().lines();
        assert!(
            err.contains(&expect),
            "expected the line {expect:?}\n{}",
            client.dump()
        );
        assert!(
            !client.err().text().contains("banned: banned"),
            "{}",
            client.dump()
        );
        assert!(
            client
                .out()
                .text()
                .contains(&format!("* alice was kicked by admin ({})", shown(&reason))),
            "{}",
            client.dump()
        );
    }
}

// ---------------------------------------------------------------------------
// known_hosts under concurrency
// ---------------------------------------------------------------------------

/// Eight clients with `--accept-new` to eight servers, one known_hosts
/// file, trust decided at the same moment: eight entries afterwards.
#[test]
fn parallel_accept_new_keeps_every_host() {
    const N: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(std::sync::Barrier::new(N));
    let servers: Vec<(Identity, Hostile)> = (0..N)
        .map(|_| {
            let id = Identity::self_signed(&["localhost"], false);
            let server = Hostile::start_gated(
                &id,
                Some(gate.clone()),
                "127.0.0.1:0",
                Vec::new(),
                |mut peer| async move {
                    peer.login().await;
                    peer.until_quit().await;
                },
            );
            (id, server)
        })
        .collect();
    let mut clients: Vec<Client> = servers
        .iter()
        .enumerate()
        .map(|(i, (_, server))| {
            run(
                dir.path(),
                &[
                    "--nick",
                    &format!("n{i}"),
                    "--accept-new",
                    "--no-reconnect",
                    &server.host(),
                ],
                "",
            )
        })
        .collect();
    for c in &mut clients {
        c.assert_exit(0);
        assert!(c.err().text().contains("added"), "{}", c.dump());
    }
    let kh = std::fs::read_to_string(dir.path().join("known_hosts")).expect("known_hosts");
    let entries: Vec<&str> = kh
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(entries.len(), N, "known_hosts:\n{kh}");
    for (id, server) in &servers {
        let hex = id.fingerprint().to_lowercase();
        assert!(
            entries
                .iter()
                .any(|e| e.starts_with(&server.host()) && e.to_lowercase().ends_with(&hex[7..])),
            "no entry for {}:\n{kh}",
            server.host()
        );
    }
    let names: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tlschat-tmp"))
        })
        .collect();
    assert!(names.is_empty(), "temporary files left: {names:?}");
}
