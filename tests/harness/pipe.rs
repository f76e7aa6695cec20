//! Lines a child process prints: a thread per pipe reads them as they
//! come and keeps them all, so that a test can wait (bounded) for one
//! line, read on from where it stopped, or look at everything afterwards.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How a pipe's bytes become lines.
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    /// Keep at most this many bytes of each line (a flood of long lines
    /// matters by its start only).
    pub keep: usize,
    /// Output that is not UTF-8 fails the test (at its next wait) instead
    /// of being shown with replacement characters.
    pub strict_utf8: bool,
}

impl Default for Reading {
    fn default() -> Reading {
        Reading {
            keep: usize::MAX,
            strict_utf8: false,
        }
    }
}

#[derive(Default)]
struct State {
    lines: Vec<String>,
    closed: bool,
    not_utf8: Option<String>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One pipe of a child (its stdout or stderr), read by its own thread
/// until EOF, i.e. until the child is gone.
pub struct Pipe {
    shared: Arc<Shared>,
}

impl Pipe {
    pub fn spawn(stream: impl Read + Send + 'static) -> Pipe {
        Pipe::spawn_with(stream, Reading::default())
    }

    pub fn spawn_with(stream: impl Read + Send + 'static, how: Reading) -> Pipe {
        let shared = Arc::new(Shared::default());
        let sink = shared.clone();
        // Not joined: the thread ends at EOF, and `closed` says when.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = match decode(&buf, how) {
                            Ok(line) => line,
                            Err(why) => {
                                sink.lock().not_utf8 = Some(why);
                                break;
                            }
                        };
                        sink.lock().lines.push(line);
                        sink.changed.notify_all();
                    }
                }
            }
            sink.lock().closed = true;
            sink.changed.notify_all();
        });
        Pipe { shared }
    }

    /// Waits until `check` (given every line so far and whether the pipe
    /// is closed) returns `Some`, or `limit` passes.
    pub fn wait_until<T>(
        &self,
        limit: Duration,
        mut check: impl FnMut(&[String], bool) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + limit;
        let mut state = self.shared.lock();
        loop {
            if let Some(why) = &state.not_utf8 {
                let why = why.clone();
                drop(state);
                panic!("the child printed invalid UTF-8: {why}");
            }
            if let Some(v) = check(&state.lines, state.closed) {
                return Some(v);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The first line at or after `*pos` that satisfies `pred`; `*pos`
    /// moves past it (a test reading on). `None` if the pipe closed or
    /// `limit` passed first.
    pub fn next_matching(
        &self,
        pos: &mut usize,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let found = self.wait_until(limit, |lines, closed| {
            match lines.iter().skip(*pos).position(|l| pred(l)) {
                Some(i) => Some(Some(*pos + i)),
                None if closed => Some(None),
                None => None,
            }
        });
        let at = found.flatten()?;
        *pos = at + 1;
        self.shared.lock().lines.get(at).cloned()
    }

    /// Whether any line so far, or arriving within `limit`, satisfies
    /// `pred`.
    pub fn any(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> bool {
        self.wait_until(limit, |lines, closed| {
            if lines.iter().any(|l| pred(l)) {
                Some(true)
            } else {
                closed.then_some(false)
            }
        })
        .unwrap_or(false)
    }

    /// Waits (bounded) for EOF; whether it came.
    pub fn wait_closed(&self, limit: Duration) -> bool {
        self.wait_until(limit, |_, closed| closed.then_some(()))
            .is_some()
    }

    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.shared.lock().lines.clone()
    }

    /// Every line so far, as one string.
    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    /// The last `n` lines, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// One line without its end, cut to `how.keep` bytes.
fn decode(buf: &[u8], how: Reading) -> Result<String, String> {
    let kept = buf.get(..how.keep).unwrap_or(buf);
    let text = if how.strict_utf8 {
        String::from_utf8(kept.to_vec()).map_err(|e| e.to_string())?
    } else {
        String::from_utf8_lossy(kept).into_owned()
    };
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}
