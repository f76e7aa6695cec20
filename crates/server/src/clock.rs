//! The server's idea of "now", for everything that expires: timed bans,
//! invites, the registration window.
//!
//! Every expiry check reads a [`Clock`] handed in by the caller instead of
//! `SystemTime::now()`, so tests can move time forward ([`ManualClock`])
//! and watch a ban or an invite run out without sleeping. Durations that
//! never leave the process (timeouts, rate limits) use tokio's monotonic
//! clock instead; this one is for times that are stored and shown.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time as the server sees it.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now(&self) -> SystemTime;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stands still until told to move, in whole seconds (what
/// the files and the database hold). For tests.
#[doc(hidden)]
#[derive(Debug)]
pub struct ManualClock {
    secs: AtomicU64,
}

impl ManualClock {
    /// Starts at `at`, cut to whole seconds (a time before 1970 is 1970).
    pub fn new(at: SystemTime) -> ManualClock {
        ManualClock {
            secs: AtomicU64::new(unix_secs(at)),
        }
    }

    /// Moves the clock forward by `by` (whole seconds; the fraction is dropped).
    pub fn advance(&self, by: Duration) {
        self.secs.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    /// Sets the clock to `at`, backwards too (a clock stepped back by NTP).
    pub fn set(&self, at: SystemTime) {
        self.secs.store(unix_secs(at), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.secs.load(Ordering::SeqCst))
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_in_whole_seconds() {
        let start = UNIX_EPOCH + Duration::from_millis(1_795_528_800_700);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_795_528_800));
        assert_eq!(clock.now(), clock.now());
        clock.advance(Duration::from_millis(31 * 60 * 1000 + 999));
        assert_eq!(
            clock.now(),
            UNIX_EPOCH + Duration::from_secs(1_795_528_800 + 31 * 60)
        );
        clock.set(UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!(clock.now(), UNIX_EPOCH);
    }

    #[test]
    fn system_clock_is_the_system_time() {
        let before = SystemTime::now();
        let now = SystemClock.now();
        assert!(now >= before && now <= SystemTime::now());
    }
}
