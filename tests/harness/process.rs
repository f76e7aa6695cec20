//! Driving the real `tlschat-server` binary from integration tests.
//!
//! [`ServerProcess`] spawns `tlschat-server run --listen 127.0.0.1:0 …`
//! with piped stdout/stderr, waits (bounded) for the startup lines, parses
//! the actual address, data directory, certificate path and fingerprint, and
//! kills the child when dropped, so no test leaves a server behind. The
//! harness' [`Pipe`]s keep everything the process prints, so tests can wait
//! for a line (bounded) or inspect the whole output after it exited.
//!
//! [`run_once`] runs a short-lived subcommand (`gen-cert`, `fingerprint`,
//! `passwd`, a server expected to fail at startup) with a timeout.
//!
//! The async helpers log in over TLS with the harness' [`Client`].

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::client::{admin_attempt, connect_tls, login, login_admin, Client};
use super::pipe::Pipe;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tlschat-server");

/// Generous bound for a server to print its startup lines (it may generate
/// a certificate and hash a password first, on a busy 2-core machine).
pub const STARTUP: Duration = Duration::from_secs(30);
/// Bound for a short-lived command, or for a server to exit when told to.
pub const EXIT: Duration = Duration::from_secs(20);

/// The binary, with the environment variables it reads removed so that the
/// caller's environment cannot change what a test sees.
pub fn server_bin() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("TLSCHAT_ADMIN_PASSWORD")
        .env_remove("TLSCHAT_DATA_DIR")
        .env_remove("TLSCHAT_CONFIG")
        .env_remove("TLSCHAT_JOIN_PASSWORD")
        .env_remove("TLSCHAT_PRIVATE")
        .env_remove("TLSCHAT_PUBLIC_NAME")
        .env_remove("TLSCHAT_REGISTRATION")
        .env_remove("RUST_LOG");
    cmd
}

/// `tlschat-server run --listen 127.0.0.1:0 --data-dir DATA_DIR`, with the
/// per-address cap and the rate limits lifted the documented way (every
/// test client comes from 127.0.0.1, and some send fast).
pub fn run_command(data_dir: &Path) -> Command {
    let mut cmd = server_bin();
    cmd.args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("TLSCHAT_MAX_PER_ADDRESS", "0")
        .env("TLSCHAT_RATE_LIMIT", "0")
        .env("TLSCHAT_ADDRESS_RATE_LIMIT", "0");
    cmd
}

// ---------------------------------------------------------------------------
// A running server
// ---------------------------------------------------------------------------

/// Everything a server process printed.
#[derive(Default, Debug, Clone)]
pub struct Captured {
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

/// A child process whose output is captured; killed (and reaped) on drop.
struct Running {
    child: Child,
    stdout: Pipe,
    stderr: Pipe,
    exited: Option<ExitStatus>,
}

impl Running {
    fn spawn(mut cmd: Command) -> Running {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let stdout = Pipe::spawn(child.stdout.take().expect("stdout"));
        let stderr = Pipe::spawn(child.stderr.take().expect("stderr"));
        Running {
            child,
            stdout,
            stderr,
            exited: None,
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait");
        }
        self.exited
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.try_wait() {
            return status;
        }
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for the killed server");
        self.exited = Some(status);
        status
    }

    fn snapshot(&self) -> Captured {
        Captured {
            stdout: self.stdout.lines(),
            stderr: self.stderr.lines(),
        }
    }

    /// Everything printed, once both pipes are closed (bounded).
    fn full_output(&self) -> Captured {
        assert!(
            self.stdout.wait_closed(EXIT) && self.stderr.wait_closed(EXIT),
            "the server's stdout and stderr close after it exits"
        );
        self.snapshot()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `tlschat-server` process that printed its startup lines.
pub struct ServerProcess {
    running: Running,
    /// The address it actually listens on (from the `listening on` line).
    pub addr: SocketAddr,
    /// `SHA256:<64 hex>` from the `fingerprint` line.
    pub fingerprint: String,
    /// From the `data dir` line.
    pub data_dir: PathBuf,
    /// From the `certificate` line.
    pub cert_path: PathBuf,
    /// The `certificate` line ended in `(generated now)`.
    pub cert_generated: bool,
}

impl ServerProcess {
    /// `run --listen 127.0.0.1:0 --data-dir DATA_DIR`, no admin password given.
    pub fn start(data_dir: &Path) -> ServerProcess {
        ServerProcess::spawn(run_command(data_dir))
    }

    /// As [`start`](Self::start), with `TLSCHAT_ADMIN_PASSWORD=password`.
    pub fn start_with_password(data_dir: &Path, password: &str) -> ServerProcess {
        let mut cmd = run_command(data_dir);
        cmd.env("TLSCHAT_ADMIN_PASSWORD", password);
        ServerProcess::spawn(cmd)
    }

    /// Spawns `cmd` (which must run a server) and waits for its startup
    /// lines; panics with its output if it exits or stays silent instead.
    pub fn spawn(cmd: Command) -> ServerProcess {
        ServerProcess::try_spawn(cmd).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_spawn(cmd: Command) -> Result<ServerProcess, String> {
        let mut running = Running::spawn(cmd);
        let startup = running.stdout.wait_until(STARTUP, |stdout, closed| {
            if stdout.iter().any(|l| l.starts_with("fingerprint ")) {
                Some(Ok(stdout.to_vec()))
            } else if closed {
                Some(Err(()))
            } else {
                None
            }
        });
        let lines = match startup {
            Some(Ok(lines)) => lines,
            other => {
                let why = if other.is_none() {
                    format!("printed no fingerprint line within {STARTUP:?}")
                } else {
                    "closed stdout before printing its fingerprint".to_owned()
                };
                let status = running.kill();
                let out = running.snapshot();
                return Err(format!(
                    "the server {why} (exit: {status})\nstdout:\n{}\nstderr:\n{}",
                    out.stdout.join("\n"),
                    out.stderr.join("\n")
                ));
            }
        };
        let field = |prefix: &str| -> String {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no `{prefix}…` line in startup output {lines:#?}"))
                .to_owned()
        };
        let listening = lines
            .iter()
            .find_map(|l| l.split_once(" listening on ").map(|(_, a)| a.to_owned()))
            .unwrap_or_else(|| panic!("no `listening on` line in {lines:#?}"));
        let addr = listening
            .parse()
            .unwrap_or_else(|e| panic!("bad address {listening:?} in the listening line: {e}"));
        let cert_line = field("certificate ");
        let (cert_path, cert_generated) = match cert_line.strip_suffix(" (generated now)") {
            Some(p) => (p.to_owned(), true),
            None => (cert_line, false),
        };
        Ok(ServerProcess {
            addr,
            fingerprint: field("fingerprint "),
            data_dir: PathBuf::from(field("data dir ")),
            cert_path: PathBuf::from(cert_path),
            cert_generated,
            running,
        })
    }

    pub fn pid(&self) -> u32 {
        self.running.child.id()
    }

    /// The certificate the server presents (from the file it named).
    pub fn cert(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(&self.cert_path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.cert_path.display()))
    }

    /// A TLS connection (no login yet) verifying the server's certificate.
    pub async fn connect(&self) -> Client {
        connect_tls(self.addr, &self.cert()).await
    }

    pub async fn login(&self, nick: &str) -> Client {
        login(self.addr, &self.cert(), nick).await
    }

    pub async fn login_admin(&self, password: &str) -> Client {
        login_admin(self.addr, &self.cert(), password).await
    }

    /// Logs in as admin with `password`; returns the line answering it
    /// (`WELCOME admin #lobby` or `REFUSE …`) and the connection.
    pub async fn admin_attempt(&self, password: &str) -> (String, Client) {
        admin_attempt(self.addr, &self.cert(), password).await
    }

    /// Stdout lines so far.
    pub fn stdout(&self) -> Vec<String> {
        self.running.stdout.lines()
    }

    /// Stderr so far.
    pub fn stderr(&self) -> String {
        self.running.stderr.text()
    }

    /// Waits (bounded) for a stdout line starting with `prefix`.
    pub fn wait_stdout(&self, prefix: &str, timeout: Duration) -> Option<String> {
        self.running.stdout.wait_until(timeout, |stdout, _| {
            stdout.iter().find(|l| l.starts_with(prefix)).cloned()
        })
    }

    /// Waits (bounded) for a stderr line containing `needle`.
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.running.stderr.wait_until(timeout, |stderr, _| {
            stderr.iter().find(|l| l.contains(needle)).cloned()
        })
    }

    /// Asks the server to stop gracefully: SIGTERM on Unix (via `kill`),
    /// a hard kill elsewhere. Does not wait.
    pub fn signal_terminate(&mut self) {
        #[cfg(unix)]
        self.signal("TERM");
        #[cfg(not(unix))]
        {
            self.running.kill();
        }
    }

    /// Graceful stop (see [`signal_terminate`](Self::signal_terminate));
    /// returns the exit status, panicking if it takes longer than [`EXIT`].
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal_terminate();
        self.wait_exit(EXIT).unwrap_or_else(|| {
            self.running.kill();
            panic!(
                "the server did not exit within {EXIT:?} of SIGTERM\nstderr:\n{}",
                self.stderr()
            )
        })
    }

    /// SIGKILL on Unix (`Child::kill`); waits for it.
    pub fn kill(&mut self) -> ExitStatus {
        self.running.kill()
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.running.wait_exit(timeout)
    }

    /// Everything the process printed; call after it exited.
    pub fn full_output(&self) -> Captured {
        self.running.full_output()
    }
}

// ---------------------------------------------------------------------------
// One-shot commands
// ---------------------------------------------------------------------------

/// What a finished command did.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics with the whole output unless the exit code is `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Finished {
        assert_eq!(self.code(), Some(code), "unexpected exit: {self:#?}");
        self
    }

    #[track_caller]
    pub fn assert_success(&self) -> &Finished {
        self.assert_code(0)
    }
}

/// Runs the binary with `args` and `stdin` (closed after it is written),
/// killing it after [`EXIT`]; the environment variables it reads are
/// removed first, then `env` is applied.
pub fn run_once<A: AsRef<OsStr>>(args: &[A], env: &[(&str, &str)], stdin: &str) -> Finished {
    finish(server_bin(), args, env, stdin)
}

/// Runs `cmd ARGS` with `env` applied and `stdin` written then closed,
/// killed after [`EXIT`].
fn finish<A: AsRef<OsStr>>(
    cmd: Command,
    args: &[A],
    env: &[(&str, &str)],
    stdin: &str,
) -> Finished {
    let mut cmd = assert_cmd::Command::from_std(cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .args(args)
        .write_stdin(stdin.as_bytes().to_vec())
        .timeout(EXIT)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    Finished {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------------
// Certificates and files
// ---------------------------------------------------------------------------

/// `SHA256:<hex>` of the first certificate's DER in a PEM file, computed
/// here (not with the crate's own code).
pub fn sha256_fingerprint(cert_pem: &Path) -> String {
    let der = CertificateDer::from_pem_file(cert_pem)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", cert_pem.display()));
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("SHA256:{hex}")
}

/// `fingerprint SHA256:…` as printed by the binary: the value after the word.
pub fn fingerprint_from_output(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint "))
        .unwrap_or_else(|| panic!("no fingerprint line in {stdout:?}"))
        .to_owned()
}

/// True if `s` is `SHA256:` and 64 lower-case hex digits.
pub fn is_sha256_fingerprint(s: &str) -> bool {
    s.strip_prefix("SHA256:").is_some_and(|hex| {
        hex.len() == 64 && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
    })
}

/// Unix permission bits of `path`.
#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

// ---------------------------------------------------------------------------
// Settings from the environment, signals
// ---------------------------------------------------------------------------

/// Every environment variable the binary reads for a setting other than
/// the data directory, config file and admin password.
pub const SETTING_ENV: [&str; 13] = [
    "TLSCHAT_LISTEN",
    "TLSCHAT_MAX_CLIENTS",
    "TLSCHAT_MAX_PER_ADDRESS",
    "TLSCHAT_RATE_LIMIT",
    "TLSCHAT_RATE_BURST",
    "TLSCHAT_MAX_HANDSHAKES",
    "TLSCHAT_HANDSHAKE_TIMEOUT",
    "TLSCHAT_IDLE_TIMEOUT",
    "TLSCHAT_OUTBOUND_QUEUE",
    "TLSCHAT_LOCKOUT_AFTER",
    "TLSCHAT_LOCKOUT_TIME",
    "TLSCHAT_ADDRESS_RATE_LIMIT",
    "TLSCHAT_IPV6_PREFIX_LEN",
];

/// [`server_bin`] without any setting from the environment either (not
/// even the lifted limits of [`run_command`]): only what the test sets.
pub fn server_bin_clean() -> Command {
    let mut cmd = server_bin();
    for var in SETTING_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// [`run_once`], with every [`SETTING_ENV`] variable removed as well
/// before `env` is applied.
pub fn run_once_clean<A: AsRef<OsStr>>(args: &[A], env: &[(&str, &str)], stdin: &str) -> Finished {
    finish(server_bin_clean(), args, env, stdin)
}

impl ServerProcess {
    /// Sends SIGHUP (reload) via `kill -HUP`; does not wait for the reload.
    #[cfg(unix)]
    pub fn signal_hup(&self) {
        self.signal("HUP");
    }

    /// `kill -NAME PID`, which must succeed.
    #[cfg(unix)]
    fn signal(&self, name: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap_or_else(|e| panic!("run kill -{name}: {e}"));
        assert!(status.success(), "kill -{name} {pid} failed: {status}");
    }

    /// Waits (bounded) until at least `n` stderr lines contain `needle`.
    pub fn wait_stderr_count(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        self.running
            .stderr
            .wait_until(timeout, |stderr, _| {
                (stderr.iter().filter(|l| l.contains(needle)).count() >= n).then_some(())
            })
            .is_some()
    }

    /// Has the process exited (without waiting)?
    pub fn has_exited(&mut self) -> Option<ExitStatus> {
        self.running.try_wait()
    }
}

/// What `PROGRAM --version` prints: `PROGRAM 0.1.0 (rev 1a2b3c4d)` when
/// built from a git checkout (HEAD's commit, asked of git here, so a stale
/// value fails), `PROGRAM 0.1.0` from a source archive; a commit given in
/// `TLSCHAT_GIT_REV` at build time wins, as in build.rs.
pub fn expected_version(program: &str) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rev = match option_env!("TLSCHAT_GIT_REV").filter(|r| !r.is_empty()) {
        Some(given) => Some(
            given
                .chars()
                .take(8)
                .collect::<String>()
                .to_ascii_lowercase(),
        ),
        None if root.join(".git").exists() => {
            let out = Command::new("git")
                .arg("-C")
                .arg(root)
                .args(["rev-parse", "--short=8", "HEAD"])
                .output()
                .expect("run git rev-parse");
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        None => None,
    };
    match rev {
        Some(rev) => format!("{program} {version} (rev {rev})"),
        None => format!("{program} {version}"),
    }
}
