//! Driving the real `tlschat` client binary: a command with the user's
//! settings kept out (no `TLSCHAT_*` from the environment, HOME and the
//! known_hosts file in the test's temp dir), and a running child whose
//! stdin the test writes and whose stdout and stderr it waits on, each
//! wait bounded, the child killed when dropped.

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::pipe::{Pipe, Reading};

/// The binary under test.
pub const CLIENT: &str = env!("CARGO_BIN_EXE_tlschat");
/// Bound for any one wait on the client: a line, an exit.
pub const WAIT: Duration = Duration::from_secs(20);

/// `tlschat --known-hosts KNOWN_HOSTS ARGS…` with the variables it reads
/// removed and HOME/XDG_CONFIG_HOME at `home` (created), so the real user
/// config is never touched.
pub fn client_command(home: &Path, known_hosts: &Path, args: &[&str]) -> Command {
    std::fs::create_dir_all(home).expect("create fake HOME");
    let mut cmd = Command::new(CLIENT);
    cmd.env_remove("TLSCHAT_PASSWORD")
        .env_remove("TLSCHAT_JOIN_PASSWORD")
        .env_remove("TLSCHAT_NICK")
        .env_remove("TLSCHAT_KNOWN_HOSTS")
        .env_remove("RUST_LOG")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .arg("--known-hosts")
        .arg(known_hosts)
        .args(args);
    cmd
}

/// A running `tlschat` child; killed and reaped on drop.
pub struct ClientProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Pipe,
    err: Pipe,
    /// How far the test has read stdout and stderr.
    out_pos: usize,
    err_pos: usize,
    status: Option<ExitStatus>,
}

impl ClientProcess {
    /// Starts `cmd` with stdin kept open for [`send`](Self::send).
    pub fn spawn(cmd: Command) -> ClientProcess {
        ClientProcess::spawn_with(cmd, Reading::default())
    }

    /// As [`spawn`](Self::spawn), reading its output `how`.
    pub fn spawn_with(mut cmd: Command, how: Reading) -> ClientProcess {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CLIENT}: {e}"));
        let stdin = child.stdin.take();
        let out = Pipe::spawn_with(child.stdout.take().expect("stdout"), how);
        let err = Pipe::spawn_with(child.stderr.take().expect("stderr"), how);
        ClientProcess {
            child,
            stdin,
            out,
            err,
            out_pos: 0,
            err_pos: 0,
            status: None,
        }
    }

    /// Starts `cmd` with `input` on stdin, then EOF; a thread writes it, so
    /// a client that stops reading (or exits early) cannot block the test.
    pub fn spawn_with_input(cmd: Command, how: Reading, input: &str) -> ClientProcess {
        let mut c = ClientProcess::spawn_with(cmd, how);
        if let Some(mut stdin) = c.stdin.take() {
            let input = input.to_owned();
            std::thread::spawn(move || {
                let _ = stdin.write_all(input.as_bytes());
            });
        }
        c
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdin, for a test that writes it from a thread of its
    /// own (closing it when that thread ends).
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    pub fn out(&self) -> &Pipe {
        &self.out
    }

    pub fn err(&self) -> &Pipe {
        &self.err
    }

    /// The exit status (once seen) and the last lines printed, for failure
    /// messages.
    pub fn dump(&mut self) -> String {
        let status = self.status.or_else(|| self.child.try_wait().ok().flatten());
        format!(
            "exit: {status:?}\nstdout (last lines):\n{}\nstderr (last lines):\n{}",
            self.out.tail(40),
            self.err.tail(40)
        )
    }

    /// Reads stdout on until a line equal to `line` (skipping others).
    #[track_caller]
    pub fn expect_out(&mut self, line: &str) {
        if self.next_out_matching(|l| l == line).is_none() {
            panic!("no stdout line {line:?} within {WAIT:?}\n{}", self.dump());
        }
    }

    /// Reads stdout on until a line starting with `prefix`; returns it.
    #[track_caller]
    pub fn expect_out_prefix(&mut self, prefix: &str) -> String {
        match self.next_out_matching(|l| l.starts_with(prefix)) {
            Some(l) => l,
            None => panic!(
                "no stdout line {prefix:?}… within {WAIT:?}\n{}",
                self.dump()
            ),
        }
    }

    /// The very next stdout line.
    #[track_caller]
    pub fn next_out(&mut self) -> String {
        match self.next_out_matching(|_| true) {
            Some(l) => l,
            None => panic!("no stdout line within {WAIT:?}\n{}", self.dump()),
        }
    }

    fn next_out_matching(&mut self, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.out.next_matching(&mut self.out_pos, WAIT, pred)
    }

    /// Reads stderr on until a line containing `needle`; returns it.
    #[track_caller]
    pub fn expect_err(&mut self, needle: &str) -> String {
        match self
            .err
            .next_matching(&mut self.err_pos, WAIT, |l| l.contains(needle))
        {
            Some(l) => l,
            None => panic!(
                "no stderr line with {needle:?} within {WAIT:?}\n{}",
                self.dump()
            ),
        }
    }

    /// Waits until stdout holds exactly `line`, anywhere in what was
    /// printed (order is not the point).
    #[track_caller]
    pub fn saw_out(&mut self, line: &str) {
        if !self.out.any(WAIT, |l| l == line) {
            panic!("no stdout line {line:?} within {WAIT:?}\n{}", self.dump());
        }
    }

    /// Waits until stderr holds a line containing `needle`, anywhere.
    #[track_caller]
    pub fn saw_err(&mut self, needle: &str) {
        if !self.err.any(WAIT, |l| l.contains(needle)) {
            panic!(
                "no stderr line with {needle:?} within {WAIT:?}\n{}",
                self.dump()
            );
        }
    }

    #[track_caller]
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        if let Err(e) = stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush())
        {
            panic!("cannot write to the client: {e}\n{}", self.dump());
        }
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits (bounded by [`WAIT`]) for the client to exit by itself; its
    /// exit code. Afterwards all its output has been read.
    #[track_caller]
    pub fn wait_exit(&mut self) -> i32 {
        self.wait_exit_within(WAIT)
    }

    /// As [`wait_exit`](Self::wait_exit), bounded by `limit`; a client
    /// still running then is killed and the test fails.
    #[track_caller]
    pub fn wait_exit_within(&mut self, limit: Duration) -> i32 {
        let status = match self.status {
            Some(status) => status,
            None => {
                let status = self.wait_status(limit);
                self.status = Some(status);
                self.out.wait_closed(WAIT);
                self.err.wait_closed(WAIT);
                status
            }
        };
        status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {status}\n{}", self.dump()))
    }

    #[track_caller]
    fn wait_status(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "the client did not exit within {limit:?} (killed)\n{}",
                    self.dump()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[track_caller]
    pub fn assert_exit(&mut self, expected: i32) {
        let code = self.wait_exit();
        assert_eq!(code, expected, "unexpected exit code\n{}", self.dump());
    }

    /// All stderr so far, one string.
    pub fn stderr(&self) -> String {
        self.err.text()
    }

    /// All stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.out.lines()
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
