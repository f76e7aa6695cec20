//! Server processes (tlschat-server, ngircd, the baseline relay), each
//! started fresh per scenario, pinned to its own core, with the limits
//! lifted; and what `/proc` says about them (RSS, CPU time).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tlschat_server_core::certs::CertPaths;

use crate::client::{History, Target};

/// What every server start needs.
#[derive(Debug, Clone)]
pub struct Launch {
    pub tlschat_bin: PathBuf,
    pub ngircd_bin: Option<PathBuf>,
    /// This executable (for `baseline-server`).
    pub loadgen_bin: PathBuf,
    pub cert: CertPaths,
    /// Core to pin servers to (`taskset -c`), if any.
    pub core: Option<usize>,
    /// The baseline's per-client queue, in lines.
    pub baseline_queue: usize,
    /// Where server logs go (one file per start).
    pub log_dir: PathBuf,
}

/// A running server.
pub struct ServerProc {
    child: Child,
    kill_at_once: bool,
    pub pid: u32,
    pub addr: SocketAddr,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The environment every tlschat start gets: the documented way to lift
/// the hardening limits (`0` = off).
pub const TLSCHAT_ENV: [(&str, &str); 4] = [
    ("TLSCHAT_RATE_LIMIT", "0"),
    ("TLSCHAT_ADDRESS_RATE_LIMIT", "0"),
    ("TLSCHAT_MAX_PER_ADDRESS", "0"),
    ("TLSCHAT_MAX_CLIENTS", "0"),
];

impl Launch {
    fn command(&self, bin: &Path) -> Command {
        match self.core {
            Some(core) if which("taskset").is_some() => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(core.to_string()).arg(bin);
                c
            }
            Some(core) => {
                let mut c = Command::new(bin);
                pin_child(&mut c, core);
                c
            }
            None => Command::new(bin),
        }
    }

    /// Starts a fresh server of `target`; `scale` also lifts the limit on
    /// unfinished handshakes (tlschat).
    pub fn start(&self, target: Target, scale: bool, tag: &str) -> Result<ServerProc> {
        let dir = tempfile::Builder::new()
            .prefix("tlschat-bench-")
            .tempdir()
            .context("temp dir")?;
        let log = self.log_dir.join(format!("{tag}.log"));
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        match target {
            Target::Tlschat(history) => {
                let mut cmd = self.command(&self.tlschat_bin);
                cmd.arg("run")
                    .arg("--listen")
                    .arg("127.0.0.1:0")
                    .arg("--data-dir")
                    .arg(dir.path().join("data"))
                    .arg("--cert")
                    .arg(&self.cert.cert)
                    .arg("--key")
                    .arg(&self.cert.key)
                    .args(history_flags(history));
                clear_tlschat_env(&mut cmd);
                cmd.envs(TLSCHAT_ENV);
                if scale {
                    cmd.env("TLSCHAT_MAX_HANDSHAKES", "0");
                }
                spawn_announcing(cmd, target, dir, log, log_file)
            }
            Target::Baseline => {
                let mut cmd = self.command(&self.loadgen_bin);
                cmd.arg("baseline-server")
                    .arg("--listen")
                    .arg("127.0.0.1:0")
                    .arg("--cert")
                    .arg(&self.cert.cert)
                    .arg("--key")
                    .arg(&self.cert.key)
                    .arg("--queue-lines")
                    .arg(self.baseline_queue.to_string());
                spawn_announcing(cmd, target, dir, log, log_file)
            }
            Target::Ngircd => {
                let bin = self
                    .ngircd_bin
                    .as_ref()
                    .context("ngircd is not installed (apt-get install ngircd)")?;
                self.start_ngircd(bin, dir, log, log_file)
            }
        }
    }

    fn start_ngircd(
        &self,
        bin: &Path,
        dir: tempfile::TempDir,
        log: PathBuf,
        log_file: std::fs::File,
    ) -> Result<ServerProc> {
        // ngircd cannot listen on port 0 and tell us: pick free ports.
        let (tls_port, plain_port) = {
            let a = TcpListener::bind("127.0.0.1:0")?;
            let b = TcpListener::bind("127.0.0.1:0")?;
            (a.local_addr()?.port(), b.local_addr()?.port())
        };
        let include = dir.path().join("conf.d");
        std::fs::create_dir_all(&include)?;
        let conf = dir.path().join("ngircd.conf");
        std::fs::write(
            &conf,
            ngircd_config(tls_port, plain_port, &self.cert, &include),
        )?;
        let mut cmd = self.command(bin);
        cmd.arg("--nodaemon").arg("--config").arg(&conf);
        cmd.stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        let addr: SocketAddr = ([127, 0, 0, 1], tls_port).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("ngircd exited at startup ({status}); see {}", log.display());
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("ngircd did not listen within 20 s; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(ServerProc {
            child,
            kill_at_once: true,
            pid,
            addr,
            log,
            _dir: dir,
        })
    }
}

/// The server flags of a history setting.
fn history_flags(history: History) -> &'static [&'static str] {
    match history {
        History::On | History::V1 => &[],
        History::Off => &["--no-history"],
        History::Stalled => &["--history-stall"],
    }
}

/// ngircd with TLS on, every connection limit and the flood penalties off,
/// no DNS/ident/PAM look-ups (each would fork or wait per connection), and
/// no system-wide config snippets.
pub fn ngircd_config(tls_port: u16, plain_port: u16, cert: &CertPaths, include: &Path) -> String {
    format!(
        "# generated by tlschat-loadgen
[Global]
Name = bench.tlschat.test
Info = tlschat benchmark
AdminInfo1 = bench
AdminInfo2 = bench
AdminEMail = bench@localhost
Listen = 127.0.0.1
Ports = {plain_port}
MotdPhrase = tlschat benchmark
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 30
MaxPenaltyTime = 0
MaxListSize = 100
PingTimeout = 600
PongTimeout = 600
[Options]
DNS = no
Ident = no
PAM = no
IncludeDir = {include}
[SSL]
CertFile = {cert}
KeyFile = {key}
Ports = {tls_port}
",
        include = include.display(),
        cert = cert.cert.display(),
        key = cert.key.display(),
    )
}

/// Starts a server that prints `... listening on ADDR` on stdout.
fn spawn_announcing(
    mut cmd: Command,
    target: Target,
    dir: tempfile::TempDir,
    log: PathBuf,
    log_file: std::fs::File,
) -> Result<ServerProc> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file.try_clone()?);
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let pid = child.id();
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut log_file = log_file;
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(log_file, "{line}");
            if let Some((_, a)) = line.split_once(" listening on ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(a.trim().to_owned());
                }
            }
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(a) => a
            .parse::<SocketAddr>()
            .with_context(|| format!("bad address {a}"))?,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} printed no `listening on` line; see {}",
                target.name(),
                log.display()
            );
        }
    };
    Ok(ServerProc {
        child,
        kill_at_once: false,
        pid,
        addr,
        log,
        _dir: dir,
    })
}

fn clear_tlschat_env(cmd: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("TLSCHAT_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG");
}

impl ServerProc {
    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Ends the server: SIGTERM and up to 3 s to exit (so that a wrapper
    /// such as valgrind can write its report), then SIGKILL. ngircd gets
    /// SIGKILL at once: it takes seconds to leave its loop on SIGTERM, and
    /// shutdown is not measured.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if self.alive() && !self.kill_at_once {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(3);
            while self.alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if self.alive() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

/// utime + stime (+ those of reaped children) of a process, in seconds.
pub fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .context("bad /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14-17 of proc(5); `rest` starts at field 3.
    let ticks: u64 = f
        .get(11..15)
        .context("short /proc stat")?
        .iter()
        .map(|v| v.parse::<u64>().unwrap_or(0))
        .sum();
    Ok(ticks as f64 / clock_ticks())
}

/// This process's own CPU time, in seconds.
pub fn self_cpu_secs() -> f64 {
    cpu_secs(std::process::id()).unwrap_or(0.0)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// The socket inode of the server's end of the connection from `client`
/// to `server` (from /proc/net/tcp).
pub fn server_socket_inode(server: SocketAddr, client: SocketAddr) -> Option<u64> {
    fn hex(a: SocketAddr) -> Option<String> {
        match a {
            SocketAddr::V4(v4) => Some(format!(
                "{:08X}:{:04X}",
                u32::from_le_bytes(v4.ip().octets()),
                v4.port()
            )),
            SocketAddr::V6(_) => None,
        }
    }
    let (local, remote) = (hex(server)?, hex(client)?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 9 && f[1] == local && f[2] == remote)
            .then(|| f[9].parse().ok())
            .flatten()
    })
}

/// The descriptor under which process `pid` holds socket `inode`.
pub fn fd_of_socket(pid: u32, inode: u64) -> Option<u32> {
    let want = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .find(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == want.as_str()))
        .and_then(|e| e.file_name().to_str()?.parse().ok())
}

/// Does process `pid` still hold socket `inode` as descriptor `fd`? A
/// server that drops a client which is not reading closes this socket
/// (the client never sees the FIN: unsent data is queued before it).
pub fn holds_socket(pid: u32, fd: u32, inode: u64) -> bool {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .is_ok_and(|l| l.as_os_str() == format!("socket:[{inode}]").as_str())
}

/// The load averages (1, 5, 15 min).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Pins the calling process (and so its future children) to one core.
pub fn pin_self(core: usize) -> Result<()> {
    set_affinity(core).with_context(|| format!("cannot pin the load generator to core {core}"))
}

fn set_affinity(core: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn pin_child(cmd: &mut Command, core: usize) {
    use std::os::unix::process::CommandExt;
    // SAFETY: sched_setaffinity is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || set_affinity(core));
    }
}

/// Raises RLIMIT_NOFILE as far as allowed (children inherit it): the hard
/// limit to 65536 if we may, the soft limit to the hard one.
pub fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        let want = r.rlim_max.max(65536);
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: want,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return want;
        }
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        r.rlim_cur
    }
}
