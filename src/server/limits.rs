//! Admission control and abuse limits: how many connections, from where,
//! how many still handshaking, how fast a client may send, and how many
//! password guesses an address gets.
//!
//! The accept loop asks the [`Gate`] for a [`Ticket`] per connection; the
//! ticket counts the connection (in total and per address) and holds its
//! place among the unfinished handshakes until it is dropped. Peer tasks
//! read the current [`Limits`] from the gate, so a SIGHUP reload applies to
//! connections already open. [`TokenBucket`] is the per-client rate limit.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::config::Limits;

/// The longest lockout, however often an address guesses wrong.
const MAX_LOCKOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// Past this many tracked addresses, forget the ones with nothing pending.
const LOCKOUT_TABLE_PRUNE: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Shared counters and the current limits.
pub struct Gate {
    limits: RwLock<Arc<Limits>>,
    active: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// Unfinished handshakes, oldest first, each with its eviction token.
    handshakes: Mutex<BTreeMap<u64, CancellationToken>>,
    next_seq: AtomicU64,
    lockouts: Mutex<HashMap<IpAddr, Lockout>>,
}

/// Why a connection may not come in; the text of its `ERROR server-full`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// One connection's place in the counts, released on drop.
pub struct Ticket {
    gate: Arc<Gate>,
    ip: IpAddr,
    seq: u64,
    evicted: CancellationToken,
}

impl Gate {
    pub fn new(limits: Limits) -> Arc<Gate> {
        Arc::new(Gate {
            limits: RwLock::new(Arc::new(limits)),
            active: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
            handshakes: Mutex::new(BTreeMap::new()),
            next_seq: AtomicU64::new(0),
            lockouts: Mutex::new(HashMap::new()),
        })
    }

    pub fn limits(&self) -> Arc<Limits> {
        self.limits
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_limits(&self, limits: Limits) {
        *self.limits.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(limits);
    }

    /// Counts a new connection from `ip` (canonical). The ticket is issued
    /// even when the connection is refused, so that the refusal itself is
    /// counted until it has been sent.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> (Ticket, Result<(), Refusal>) {
        let limits = self.limits();
        let total = self.active.fetch_add(1, Ordering::Relaxed) + 1;
        let from_ip = {
            let mut map = lock(&self.per_address);
            let n = map.entry(ip).or_insert(0);
            *n += 1;
            *n
        };
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let evicted = CancellationToken::new();
        {
            let mut hs = lock(&self.handshakes);
            hs.insert(seq, evicted.clone());
            if limits.max_handshakes > 0 {
                while hs.len() > limits.max_handshakes {
                    // The oldest unfinished handshake makes room.
                    if let Some((_, token)) = hs.pop_first() {
                        token.cancel();
                    }
                }
            }
        }
        let ticket = Ticket {
            gate: self.clone(),
            ip,
            seq,
            evicted,
        };
        let verdict = if limits.max_clients > 0 && total > limits.max_clients {
            Err(Refusal(format!(
                "the server has reached its limit of {} clients; try again later",
                limits.max_clients
            )))
        } else if limits.max_per_address > 0 && from_ip > limits.max_per_address {
            Err(Refusal(format!(
                "too many connections from your address ({} at most); close some and try again",
                limits.max_per_address
            )))
        } else {
            Ok(())
        };
        (ticket, verdict)
    }

    /// Connections counted now (handshaking and logged in).
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// If `ip` is locked out of password attempts: for how much longer.
    pub fn locked_out(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        lock(&self.lockouts)
            .get(&ip)
            .and_then(|l| l.until)
            .and_then(|until| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Records a wrong password from `ip`; returns the lockout it started,
    /// if this was the last allowed guess.
    pub fn password_failed(&self, ip: IpAddr) -> Option<Duration> {
        let limits = self.limits();
        if limits.lockout_after == 0 || limits.lockout_time.is_zero() {
            return None;
        }
        let now = Instant::now();
        let mut table = lock(&self.lockouts);
        if table.len() > LOCKOUT_TABLE_PRUNE {
            table.retain(|_, l| l.failures > 0 || l.until.is_some_and(|u| u > now));
        }
        let entry = table.entry(ip).or_default();
        entry.failures += 1;
        if entry.failures < limits.lockout_after {
            return None;
        }
        let length = limits
            .lockout_time
            .saturating_mul(1u32 << entry.lockouts.min(16))
            .min(MAX_LOCKOUT);
        entry.failures = 0;
        entry.lockouts += 1;
        entry.until = Some(now + length);
        Some(length)
    }

    /// A right password from `ip`: its record is cleared.
    pub fn password_ok(&self, ip: IpAddr) {
        lock(&self.lockouts).remove(&ip);
    }
}

#[derive(Debug, Default)]
struct Lockout {
    /// Wrong passwords since the last lockout.
    failures: u32,
    /// Lockouts so far: each doubles the next.
    lockouts: u32,
    until: Option<Instant>,
}

impl Ticket {
    /// Resolves if this handshake was dropped to make room for newer ones.
    pub fn evicted(&self) -> WaitForCancellationFutureOwned {
        self.evicted.clone().cancelled_owned()
    }

    /// Login finished: no longer an unfinished handshake.
    pub fn handshake_done(&self) {
        lock(&self.gate.handshakes).remove(&self.seq);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.handshake_done();
        self.gate.active.fetch_sub(1, Ordering::Relaxed);
        let mut map = lock(&self.gate.per_address);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// What the rate limit says about one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Pass,
    /// Over the rate: answer `ERROR rate-limited`, drop the line.
    Limited,
    /// Over the rate for long: disconnect.
    Flooding,
}

/// A token bucket (`rate` lines/s, `burst` deep) plus a penalty score that
/// grows with each refused line and drains at the same rate: a client that
/// keeps sending far over the limit is disconnected, one that bursts now
/// and then is only told to slow down.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    penalty: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(burst: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(burst.max(1)),
            penalty: 0.0,
            last: now,
        }
    }

    /// Takes a token for one line. `rate == 0` switches the limit off.
    pub fn take(&mut self, rate: u32, burst: u32, now: Instant) -> Rate {
        if rate == 0 {
            return Rate::Pass;
        }
        let burst = f64::from(burst.max(1));
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * f64::from(rate);
        self.last = now;
        self.tokens = (self.tokens + refill).min(burst);
        self.penalty = (self.penalty - refill).max(0.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Rate::Pass;
        }
        self.penalty += 1.0;
        if self.penalty > 2.0 * burst {
            Rate::Flooding
        } else {
            Rate::Limited
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(f: impl FnOnce(&mut Limits)) -> Limits {
        let mut l = Limits::default();
        f(&mut l);
        l
    }

    #[test]
    fn caps_total_and_per_address_and_releases_on_drop() {
        let gate = Gate::new(limits(|l| {
            l.max_clients = 3;
            l.max_per_address = 2;
        }));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let (t1, r1) = gate.admit(a);
        let (t2, r2) = gate.admit(a);
        let (t3, r3) = gate.admit(a);
        assert!(r1.is_ok() && r2.is_ok());
        assert!(r3.unwrap_err().0.contains("2 at most"));
        drop(t3);
        let (t4, r4) = gate.admit(b);
        assert!(r4.is_ok());
        let (_t5, r5) = gate.admit(b);
        assert!(r5.unwrap_err().0.contains("limit of 3"));
        drop((t1, t2, t4));
        assert_eq!(gate.active(), 1);
        assert!(lock(&gate.per_address).get(&a).is_none());
    }

    #[test]
    fn zero_switches_limits_off() {
        let gate = Gate::new(limits(|l| {
            l.max_clients = 0;
            l.max_per_address = 0;
        }));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let tickets: Vec<_> = (0..100).map(|_| gate.admit(ip)).collect();
        assert!(tickets.iter().all(|(_, r)| r.is_ok()));
    }

    #[test]
    fn the_oldest_unfinished_handshake_is_evicted() {
        let gate = Gate::new(limits(|l| l.max_handshakes = 2));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (t1, _) = gate.admit(ip);
        let (t2, _) = gate.admit(ip);
        t2.handshake_done();
        let (t3, _) = gate.admit(ip);
        assert!(!t1.evicted.is_cancelled());
        let (_t4, _) = gate.admit(ip);
        assert!(t1.evicted.is_cancelled(), "the oldest goes");
        assert!(
            !t2.evicted.is_cancelled(),
            "a finished login is never evicted"
        );
        assert!(!t3.evicted.is_cancelled());
    }

    #[test]
    fn lockout_after_n_failures_grows_and_is_per_address() {
        let gate = Gate::new(limits(|l| {
            l.lockout_after = 3;
            l.lockout_time = Duration::from_secs(60);
        }));
        let bad: IpAddr = "192.0.2.1".parse().unwrap();
        let good: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(gate.password_failed(bad), None);
        assert_eq!(gate.password_failed(bad), None);
        assert_eq!(gate.password_failed(bad), Some(Duration::from_secs(60)));
        assert!(gate.locked_out(bad).is_some());
        assert!(gate.locked_out(good).is_none());
        // The next round locks out for twice as long.
        for _ in 0..2 {
            assert_eq!(gate.password_failed(bad), None);
        }
        assert_eq!(gate.password_failed(bad), Some(Duration::from_secs(120)));
        gate.password_ok(bad);
        assert!(gate.locked_out(bad).is_none());
    }

    #[test]
    fn token_bucket_allows_the_burst_then_the_rate_then_disconnects_floods() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(5, t0);
        for _ in 0..5 {
            assert_eq!(b.take(10, 5, t0), Rate::Pass);
        }
        assert_eq!(b.take(10, 5, t0), Rate::Limited);
        // 100 ms at 10/s: one more token.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(b.take(10, 5, t1), Rate::Pass);
        assert_eq!(b.take(10, 5, t1), Rate::Limited);
        let mut verdicts = Vec::new();
        for _ in 0..20 {
            verdicts.push(b.take(10, 5, t1));
        }
        assert_eq!(verdicts.last(), Some(&Rate::Flooding));
        // A zero rate is no limit.
        assert_eq!(b.take(0, 5, t1), Rate::Pass);
    }

    #[test]
    fn occasional_bursts_never_flood() {
        let mut now = Instant::now();
        let mut b = TokenBucket::new(20, now);
        for _ in 0..50 {
            for _ in 0..25 {
                assert_ne!(b.take(10, 20, now), Rate::Flooding);
            }
            now += Duration::from_secs(3);
        }
    }
}
