//! systemd's readiness protocol (`Type=notify`) as the real
//! `tlschat-server` speaks it to a fake service manager: a Unix datagram
//! socket in a temp dir named by `NOTIFY_SOCKET`. READY=1 must mean the
//! port accepts connections (a connect made the moment it arrives
//! succeeds), a SIGHUP reload is framed by RELOADING=1 and READY=1 (also
//! when the new config is refused), and SIGTERM sends STOPPING=1.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use crate::harness::*;

/// The service manager's end: datagrams the server sends.
struct FakeSystemd {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
}

impl FakeSystemd {
    fn new() -> FakeSystemd {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = UnixDatagram::bind(dir.path().join("notify")).expect("bind the notify socket");
        FakeSystemd { socket, _dir: dir }
    }

    fn path(&self) -> std::path::PathBuf {
        self._dir.path().join("notify")
    }

    /// The next message as `KEY=value` pairs, or a panic naming `what`
    /// after `timeout`.
    fn next(&self, what: &str, timeout: Duration) -> BTreeMap<String, String> {
        self.socket
            .set_read_timeout(Some(timeout))
            .expect("set a read timeout");
        let mut buf = vec![0u8; 4096];
        let n = self
            .socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification ({what}) within {timeout:?}: {e}"));
        let text = String::from_utf8(buf.get(..n).expect("received length").to_vec())
            .expect("notifications are UTF-8");
        text.lines()
            .map(|l| {
                let (k, v) = l
                    .split_once('=')
                    .unwrap_or_else(|| panic!("not KEY=value: {l:?}"));
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    /// Nothing more arrives within `wait`.
    fn assert_quiet(&self, wait: Duration) {
        self.socket.set_nonblocking(false).expect("blocking");
        self.socket.set_read_timeout(Some(wait)).expect("timeout");
        let mut buf = [0u8; 4096];
        if let Ok(n) = self.socket.recv(&mut buf) {
            panic!(
                "unexpected notification {:?}",
                String::from_utf8_lossy(buf.get(..n).unwrap_or_default())
            );
        }
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe");
    probe.local_addr().expect("probe address").port()
}

#[test]
fn ready_after_the_port_accepts_reloading_around_sighup_stopping_on_sigterm() {
    let systemd = FakeSystemd::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    // A fresh data directory: the certificate and the admin password are
    // made before the listener is bound, so a READY sent too early would
    // find nothing listening. Its name is not ASCII, and it reaches the
    // status text below.
    let data = tmp.path().join("данные-数据-Ελλάδα-🧑🏽‍💻");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut cmd = server_bin_clean();
    cmd.args(["run", "--listen", &addr.to_string(), "--data-dir"])
        .arg(&data)
        .env("NOTIFY_SOCKET", systemd.path());
    let starting = std::thread::spawn(move || ServerProcess::spawn(cmd));

    let ready = systemd.next("READY at startup", STARTUP);
    // The moment READY arrives, before anything else: the port must accept.
    let connected = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
    assert!(
        connected.is_ok(),
        "READY=1 arrived but {addr} refused a connection: {connected:?}"
    );
    drop(connected);
    assert_eq!(
        ready.get("READY").map(String::as_str),
        Some("1"),
        "{ready:?}"
    );
    assert_eq!(
        ready.get("STATUS"),
        Some(&format!("listening on {addr}")),
        "{ready:?}"
    );
    let mut server = starting.join().expect("the server started");
    assert_eq!(server.addr, addr);

    // A reload: RELOADING=1 with the monotonic time, then READY=1.
    server.signal_hup();
    let reloading = systemd.next("RELOADING after SIGHUP", EXIT);
    assert_eq!(
        reloading.get("RELOADING").map(String::as_str),
        Some("1"),
        "{reloading:?}"
    );
    let usec = reloading
        .get("MONOTONIC_USEC")
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {reloading:?}"));
    assert!(
        usec.parse::<u64>().is_ok_and(|u| u > 0),
        "MONOTONIC_USEC={usec}"
    );
    let reloaded = systemd.next("READY after the reload", EXIT);
    assert_eq!(
        reloaded.get("READY").map(String::as_str),
        Some("1"),
        "{reloaded:?}"
    );
    assert_eq!(reloaded.get("STATUS").map(String::as_str), Some("reloaded"));

    // A config file that does not parse: refused, still serving, READY again
    // with the reason (naming the file, non-ASCII path and all) as status.
    let config = data.join("tlschat.toml");
    std::fs::write(&config, "max_clients = \"viele\"\n").expect("write a broken config");
    server.signal_hup();
    let reloading = systemd.next("RELOADING after the second SIGHUP", EXIT);
    assert_eq!(reloading.get("RELOADING").map(String::as_str), Some("1"));
    let refused = systemd.next("READY after a refused reload", EXIT);
    assert_eq!(
        refused.get("READY").map(String::as_str),
        Some("1"),
        "{refused:?}"
    );
    let status = refused.get("STATUS").cloned().unwrap_or_default();
    assert!(
        status.starts_with("config not reloaded") && status.contains(&*config.to_string_lossy()),
        "{status}"
    );
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok());

    server.signal_terminate();
    let stopping = systemd.next("STOPPING after SIGTERM", EXIT);
    assert_eq!(
        stopping.get("STOPPING").map(String::as_str),
        Some("1"),
        "{stopping:?}"
    );
    let status = server
        .wait_exit(EXIT)
        .expect("the server exits after SIGTERM");
    assert!(status.success(), "{status}");
    systemd.assert_quiet(Duration::from_millis(200));
}

/// Without NOTIFY_SOCKET (started by hand or by another service manager)
/// the server starts and stops as always.
#[test]
fn without_notify_socket_nothing_changes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cmd = run_command(Path::new(&tmp.path().join("data")));
    cmd.env_remove("NOTIFY_SOCKET");
    let mut server = ServerProcess::spawn(cmd);
    assert!(TcpStream::connect_timeout(&server.addr, Duration::from_secs(5)).is_ok());
    assert!(server.terminate().success());
    assert!(!server.stderr().contains("notify"), "{}", server.stderr());
}
