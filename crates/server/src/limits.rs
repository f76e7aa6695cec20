//! Admission control and abuse limits: how many connections, from where,
//! how many still handshaking, how fast a client and its address may send,
//! how many password guesses an address gets, and how often a refusal from
//! one address is logged.
//!
//! Everything counted per address is counted per *address group*
//! ([`address_group`]): an IPv4 address, or an IPv6 prefix (a /64 by
//! default), since one IPv6 host usually holds a whole /64.
//!
//! The accept loop asks the [`Gate`] for an [`Admission`] per connection.
//! An admitted connection gets a [`Ticket`]: it counts the connection (in
//! total and per group), holds its place among the unfinished handshakes
//! until login ends, and shares its group's line budget. A refused one gets
//! a [`RefusalSlot`] (not counted as a client) while its one explanatory
//! line lingers, or is closed at once when too many refusals already
//! linger. Password checks reserve a guess first ([`Gate::reserve_guess`]),
//! so parallel logins cannot outrun the lockout. Peer tasks read the
//! current [`Limits`] from the gate, so a SIGHUP reload applies to
//! connections already open. [`TokenBucket`] is the rate limit, per client
//! and per group. History reads (replays, `/history`, `/search`) are paid
//! from a second budget of the group ([`Ticket::take_history_read`]), so
//! many connections from one address cannot make the server read its
//! history database for all of them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::config::Limits;

/// The longest lockout, however often an address guesses wrong.
const MAX_LOCKOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// Lockouts double at most this many times (then [`MAX_LOCKOUT`] caps them).
const MAX_DOUBLINGS: u32 = 16;
/// Addresses the lockout table remembers at most; past that the one that
/// would be forgotten soonest goes first.
const LOCKOUT_TABLE_CAP: usize = 16 * 1024;
/// Refusals lingering at once (each does a TLS handshake to deliver its
/// `ERROR server-full`); past that a refused connection is closed at once.
const MAX_LINGERING_REFUSALS: usize = 256;
/// The same, per address group: one address cannot use up the others'.
const LINGERING_REFUSALS_PER_GROUP: usize = 4;
/// One refusal warning per address group per this long.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(60);
/// Address groups whose warnings are tracked at once.
const WARN_TABLE_CAP: usize = 4096;
/// Line budgets of groups with no connection kept at once.
const RESTING_BUDGETS_CAP: usize = 4096;
/// History reads an address group may make at once, then one per
/// [`HISTORY_READ_EVERY`]. Deep enough for a few people behind one NAT
/// reconnecting together, each catching up in several rooms (a replay and
/// a `/history since` per room).
const HISTORY_READ_BURST: u32 = 60;
const HISTORY_READ_EVERY: Duration = Duration::from_secs(1);
/// What a `/search` costs in history reads (it reads the full-text index).
pub(crate) const SEARCH_READS: u32 = 4;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What every per-address count is keyed by: an IPv4 address as it is
/// (an IPv4-mapped IPv6 address as its IPv4 address), an IPv6 address cut
/// to its first `ipv6_prefix_len` bits (at most 128).
pub(crate) fn address_group(ip: IpAddr, ipv6_prefix_len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let len = u32::from(ipv6_prefix_len.min(128));
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
    }
}

/// Shared counters and the current limits.
pub(crate) struct Gate {
    limits: RwLock<Arc<Limits>>,
    groups: Mutex<Groups>,
    handshakes: Mutex<Handshakes>,
    next_seq: AtomicU64,
    refusals: Mutex<Lingering>,
    lockouts: Mutex<LockoutTable>,
    /// Refused connections, logged once a minute per address group.
    pub(crate) refusal_warnings: WarnLimiter,
    /// Logins from locked-out addresses, likewise.
    pub(crate) lockout_warnings: WarnLimiter,
}

/// Admitted connections, in total and per address group.
#[derive(Default)]
struct Groups {
    active: usize,
    by_group: HashMap<IpAddr, Group>,
    /// Budgets of groups whose last connection closed, kept until they
    /// would have refilled: otherwise closing every connection and coming
    /// back would buy a fresh burst each time.
    resting: RestingBudgets,
}

/// What all connections of one address group spend together: lines and
/// history reads.
struct Budgets {
    lines: Mutex<TokenBucket>,
    reads: Mutex<ReadBudget>,
}

impl Budgets {
    fn new(address_rate_limit: u32, now: Instant) -> Arc<Budgets> {
        Arc::new(Budgets {
            lines: Mutex::new(TokenBucket::new(address_burst(address_rate_limit), now)),
            reads: Mutex::new(ReadBudget::new(now)),
        })
    }
}

/// Budgets of groups with no connection left, each until it would be
/// full again, at most [`RESTING_BUDGETS_CAP`] (the oldest go first).
#[derive(Default)]
struct RestingBudgets {
    by_group: HashMap<IpAddr, (Instant, Arc<Budgets>)>,
    /// `(until, group)` in the order they were put to rest; an entry whose
    /// group was taken back or put to rest again later is skipped.
    order: VecDeque<(Instant, IpAddr)>,
}

impl RestingBudgets {
    fn put(&mut self, group: IpAddr, budget: Arc<Budgets>, until: Instant, now: Instant) {
        self.prune(now);
        while self.by_group.len() >= RESTING_BUDGETS_CAP {
            let Some((until, oldest)) = self.order.pop_front() else {
                break;
            };
            self.remove_if_current(oldest, until);
        }
        self.by_group.insert(group, (until, budget));
        self.order.push_back((until, group));
    }

    fn take(&mut self, group: IpAddr, now: Instant) -> Option<Arc<Budgets>> {
        self.prune(now);
        self.by_group.remove(&group).map(|(_, budget)| budget)
    }

    /// Forgets the budgets that are full again, and stale order entries
    /// past what the table can hold.
    fn prune(&mut self, now: Instant) {
        while let Some(&(until, group)) = self.order.front() {
            if until > now && self.order.len() <= 2 * RESTING_BUDGETS_CAP {
                break;
            }
            self.order.pop_front();
            self.remove_if_current(group, until);
        }
    }

    fn remove_if_current(&mut self, group: IpAddr, until: Instant) {
        if self.by_group.get(&group).is_some_and(|(u, _)| *u == until) {
            self.by_group.remove(&group);
        }
    }
}

struct Group {
    connections: usize,
    /// Lines and history reads of all the group's connections together.
    budget: Arc<Budgets>,
}

/// Why a connection may not come in; the text of its `ERROR server-full`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal(pub String);

/// The gate's answer to a new connection.
pub(crate) enum Admission {
    /// Counted; may log in.
    Admitted(Ticket),
    /// Not counted as a client; gets its refusal over TLS while it holds
    /// one of the few lingering-refusal places.
    Refused(RefusalSlot),
    /// Refused while too many refusals linger already: closed at once.
    Dropped { group: IpAddr, refusal: Refusal },
}

/// One admitted connection's place in the counts, released on drop.
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    group: IpAddr,
    seq: u64,
    evicted: CancellationToken,
    budget: Arc<Budgets>,
}

/// One refused connection's lingering place, released on drop.
pub(crate) struct RefusalSlot {
    gate: Arc<Gate>,
    group: IpAddr,
    pub(crate) refusal: Refusal,
}

impl Gate {
    pub(crate) fn new(limits: Limits) -> Arc<Gate> {
        Arc::new(Gate {
            limits: RwLock::new(Arc::new(limits)),
            groups: Mutex::new(Groups::default()),
            handshakes: Mutex::new(Handshakes::default()),
            next_seq: AtomicU64::new(0),
            refusals: Mutex::new(Lingering::default()),
            lockouts: Mutex::new(LockoutTable::default()),
            refusal_warnings: WarnLimiter::new(WARN_INTERVAL, WARN_TABLE_CAP),
            lockout_warnings: WarnLimiter::new(WARN_INTERVAL, WARN_TABLE_CAP),
        })
    }

    pub(crate) fn limits(&self) -> Arc<Limits> {
        self.limits
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_limits(&self, limits: Limits) {
        *self.limits.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(limits);
    }

    /// Decides on a new connection from `ip`. The caps are checked before
    /// anything is counted: a refused connection takes no client place and
    /// no handshake slot, so a flood from one address group is refused
    /// without pushing anyone else out.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Admission {
        let limits = self.limits();
        let group = address_group(ip, limits.ipv6_prefix_len);
        let budget = {
            let mut groups = lock(&self.groups);
            if limits.max_clients > 0 && groups.active >= limits.max_clients {
                drop(groups);
                return self.refuse(
                    group,
                    format!(
                        "the server has reached its limit of {} clients; try again later",
                        limits.max_clients
                    ),
                );
            }
            let from_group = groups.by_group.get(&group).map_or(0, |g| g.connections);
            if limits.max_per_address > 0 && from_group >= limits.max_per_address {
                drop(groups);
                return self.refuse(
                    group,
                    format!(
                        "too many connections from your address ({} at most); close some and try again",
                        limits.max_per_address
                    ),
                );
            }
            let groups = &mut *groups;
            groups.active += 1;
            let resting = &mut groups.resting;
            let entry = groups.by_group.entry(group).or_insert_with(|| {
                let now = Instant::now();
                Group {
                    connections: 0,
                    budget: resting
                        .take(group, now)
                        .unwrap_or_else(|| Budgets::new(limits.address_rate_limit, now)),
                }
            });
            entry.connections += 1;
            entry.budget.clone()
        };
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let evicted = CancellationToken::new();
        {
            let mut hs = lock(&self.handshakes);
            hs.insert(group, seq, evicted.clone());
            while limits.max_handshakes > 0 && hs.len > limits.max_handshakes {
                match hs.evict() {
                    Some(token) => token.cancel(),
                    None => break,
                }
            }
        }
        Admission::Admitted(Ticket {
            gate: self.clone(),
            group,
            seq,
            evicted,
            budget,
        })
    }

    fn refuse(self: &Arc<Self>, group: IpAddr, text: String) -> Admission {
        let refusal = Refusal(text);
        let mut lingering = lock(&self.refusals);
        let here = lingering.by_group.get(&group).copied().unwrap_or(0);
        if lingering.total >= MAX_LINGERING_REFUSALS || here >= LINGERING_REFUSALS_PER_GROUP {
            return Admission::Dropped { group, refusal };
        }
        lingering.total += 1;
        lingering.by_group.insert(group, here + 1);
        Admission::Refused(RefusalSlot {
            gate: self.clone(),
            group,
            refusal,
        })
    }

    /// Connections counted now (handshaking and logged in; not refusals).
    #[cfg(test)]
    pub(crate) fn active(&self) -> usize {
        lock(&self.groups).active
    }

    /// If `group` is locked out of password attempts: for how much longer.
    pub(crate) fn locked_out(&self, group: IpAddr) -> Option<Duration> {
        lock(&self.lockouts).locked_out(group, Instant::now())
    }

    /// Reserves one password guess for `group` before it is checked; the
    /// reservation counts against the lockout as if it were wrong until it
    /// is settled, so parallel logins cannot check more guesses than
    /// `lockout_after` between them.
    pub(crate) fn reserve_guess(self: &Arc<Self>, group: IpAddr) -> Result<Guess, NoGuess> {
        self.reserve_guess_at(group, Instant::now())
    }

    fn reserve_guess_at(self: &Arc<Self>, group: IpAddr, now: Instant) -> Result<Guess, NoGuess> {
        let limits = self.limits();
        let counted = lockouts_on(&limits);
        if counted {
            let retention = retention(&limits);
            let mut table = lock(&self.lockouts);
            table.expire(now, retention);
            if let Some(left) = table.locked_out(group, now) {
                return Err(NoGuess::LockedOut(left));
            }
            let entry = table.get_or_insert(group, now, retention);
            if entry.failures.saturating_add(entry.pending) >= limits.lockout_after {
                return Err(NoGuess::Busy(lockout_length(&limits, entry.lockouts)));
            }
            entry.pending += 1;
            table.touch(group, now, retention);
        }
        Ok(Guess {
            gate: self.clone(),
            group,
            counted,
            settled: false,
        })
    }

    fn settle(
        &self,
        group: IpAddr,
        counted: bool,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Duration> {
        let limits = self.limits();
        let retention = retention(&limits);
        let mut table = lock(&self.lockouts);
        table.expire(now, retention);
        // A counted guess gives its reservation back whatever came of it,
        // also when lockouts were switched off (reload) while it was being
        // checked: a kept reservation would hold the record forever.
        if counted {
            if let Some(entry) = table.entries.get_mut(&group) {
                entry.pending = entry.pending.saturating_sub(1);
            }
        }
        let started = match outcome {
            Outcome::Wrong if counted && lockouts_on(&limits) => {
                let entry = table.get_or_insert(group, now, retention);
                entry.failures += 1;
                (entry.failures >= limits.lockout_after).then(|| {
                    let length = lockout_length(&limits, entry.lockouts);
                    entry.failures = 0;
                    entry.lockouts = entry.lockouts.saturating_add(1);
                    entry.until = Some(now + length);
                    length
                })
            }
            // A right answer clears nothing: every kind of secret shares
            // this record, and a right one the guesser knows (its own
            // account's password) must not buy guesses at another (the
            // admin's). Failures and lockouts go by retention alone.
            Outcome::Right | Outcome::Wrong | Outcome::Unchecked => None,
        };
        if counted {
            table.forget_if_empty(group, now, retention);
        }
        started
    }
}

fn lockouts_on(limits: &Limits) -> bool {
    limits.lockout_after > 0 && !limits.lockout_time.is_zero()
}

/// The lockout that starts after `lockouts` earlier ones.
fn lockout_length(limits: &Limits, lockouts: u32) -> Duration {
    limits
        .lockout_time
        .saturating_mul(1u32 << lockouts.min(MAX_DOUBLINGS))
        .min(MAX_LOCKOUT)
}

/// How long a lockout record is kept after its last wrong guess or
/// lockout: as long as the longest lockout it can still lead to. Forgotten
/// sooner, an address that guesses just under the limit and then waits
/// would get more guesses than the doubling allows.
fn retention(limits: &Limits) -> Duration {
    lockout_length(limits, MAX_DOUBLINGS)
}

/// The group's burst: two seconds' worth, like the per-client default.
fn address_burst(rate: u32) -> u32 {
    rate.saturating_mul(2)
}

/// A reserved password guess; [`Guess::settle`] it with the result. Dropped
/// unsettled (the check never ran), it is given back uncounted.
pub(crate) struct Guess {
    gate: Arc<Gate>,
    group: IpAddr,
    /// Lockouts were on when it was reserved.
    counted: bool,
    settled: bool,
}

/// Why no guess may be checked now; the seconds go into the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoGuess {
    /// Locked out for this much longer.
    LockedOut(Duration),
    /// As many guesses as the lockout allows are being checked already; if
    /// they are all wrong, a lockout this long begins.
    Busy(Duration),
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Right,
    Wrong,
    Unchecked,
}

impl Guess {
    /// Records the checked guess: a right one gives back its reservation
    /// only; a wrong one counts and returns the lockout it started, if any.
    pub(crate) fn settle(mut self, right: bool) -> Option<Duration> {
        self.settled = true;
        let outcome = if right {
            Outcome::Right
        } else {
            Outcome::Wrong
        };
        self.gate
            .settle(self.group, self.counted, outcome, Instant::now())
    }

    #[cfg(test)]
    fn settle_at(mut self, right: bool, now: Instant) -> Option<Duration> {
        self.settled = true;
        let outcome = if right {
            Outcome::Right
        } else {
            Outcome::Wrong
        };
        self.gate.settle(self.group, self.counted, outcome, now)
    }
}

impl Drop for Guess {
    fn drop(&mut self) {
        if !self.settled {
            self.gate
                .settle(self.group, self.counted, Outcome::Unchecked, Instant::now());
        }
    }
}

/// One address group's password record.
#[derive(Debug, Clone, Copy)]
struct Lockout {
    /// Wrong passwords since the last lockout.
    failures: u32,
    /// Guesses reserved and not yet settled.
    pending: u32,
    /// Lockouts so far: each doubles the next.
    lockouts: u32,
    until: Option<Instant>,
    /// Its key in [`LockoutTable::expiry`].
    expires: (Instant, u64),
}

impl Default for Lockout {
    fn default() -> Lockout {
        let now = Instant::now();
        Lockout {
            failures: 0,
            pending: 0,
            lockouts: 0,
            until: None,
            expires: (now, 0),
        }
    }
}

/// The lockout records, each with the time it may be forgotten; the index
/// by that time makes expiry and the cap cost a lookup, not a scan.
#[derive(Default)]
struct LockoutTable {
    entries: HashMap<IpAddr, Lockout>,
    /// (forget at, tie-breaker) → group, soonest first.
    expiry: BTreeMap<(Instant, u64), IpAddr>,
    next: u64,
}

impl LockoutTable {
    fn locked_out(&self, group: IpAddr, now: Instant) -> Option<Duration> {
        self.entries
            .get(&group)
            .and_then(|l| l.until)
            .and_then(|until| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Forgets the records whose time has come; one with a guess still
    /// being checked is kept for another `retention`.
    fn expire(&mut self, now: Instant, retention: Duration) {
        while let Some((&key, &group)) = self.expiry.first_key_value() {
            if key.0 > now {
                break;
            }
            self.expiry.pop_first();
            match self.entries.get(&group) {
                Some(e) if e.pending > 0 => {
                    let key = self.key(now + retention);
                    self.expiry.insert(key, group);
                    if let Some(e) = self.entries.get_mut(&group) {
                        e.expires = key;
                    }
                }
                _ => {
                    self.entries.remove(&group);
                }
            }
        }
    }

    fn key(&mut self, at: Instant) -> (Instant, u64) {
        self.next += 1;
        (at, self.next)
    }

    fn get_or_insert(&mut self, group: IpAddr, now: Instant, retention: Duration) -> &mut Lockout {
        if !self.entries.contains_key(&group) {
            while self.entries.len() >= LOCKOUT_TABLE_CAP {
                match self.expiry.pop_first() {
                    Some((_, old)) => {
                        self.entries.remove(&old);
                    }
                    None => break,
                }
            }
            let key = self.key(now + retention);
            self.expiry.insert(key, group);
            self.entries.insert(
                group,
                Lockout {
                    expires: key,
                    ..Lockout::default()
                },
            );
        }
        self.entries.entry(group).or_default()
    }

    /// Restarts the record's time: `retention` after now or after its
    /// lockout ends, whichever is later.
    fn touch(&mut self, group: IpAddr, now: Instant, retention: Duration) {
        let Some(old) = self.entries.get(&group).map(|e| (e.expires, e.until)) else {
            return;
        };
        let (old_key, until) = old;
        self.expiry.remove(&old_key);
        let from = until.map_or(now, |u| u.max(now));
        let key = self.key(from + retention);
        self.expiry.insert(key, group);
        if let Some(e) = self.entries.get_mut(&group) {
            e.expires = key;
        }
    }

    /// Drops a record that holds nothing any more.
    fn forget_if_empty(&mut self, group: IpAddr, now: Instant, retention: Duration) {
        let Some(e) = self.entries.get(&group) else {
            return;
        };
        let empty = e.failures == 0 && e.pending == 0 && e.lockouts == 0 && e.until.is_none();
        if empty {
            self.expiry.remove(&e.expires);
            self.entries.remove(&group);
        } else {
            self.touch(group, now, retention);
        }
    }
}

/// Unfinished handshakes per address group, ranked so that the group
/// holding the most (the oldest such group on a tie) gives one back first.
#[derive(Default)]
struct Handshakes {
    /// Group → its unfinished handshakes: sequence number → eviction token.
    by_group: HashMap<IpAddr, BTreeMap<u64, CancellationToken>>,
    /// (handshakes, Reverse(oldest sequence number), group) of every group:
    /// the last element is the one to evict from.
    ranking: BTreeSet<(usize, Reverse<u64>, IpAddr)>,
    len: usize,
}

impl Handshakes {
    fn rank(
        group: IpAddr,
        pending: &BTreeMap<u64, CancellationToken>,
    ) -> Option<(usize, Reverse<u64>, IpAddr)> {
        let (&oldest, _) = pending.first_key_value()?;
        Some((pending.len(), Reverse(oldest), group))
    }

    /// Applies `change` to `group`'s handshakes, keeping the ranking and
    /// the total right.
    fn update<R>(
        &mut self,
        group: IpAddr,
        change: impl FnOnce(&mut BTreeMap<u64, CancellationToken>) -> R,
    ) -> R {
        let Handshakes {
            by_group,
            ranking,
            len,
        } = self;
        let pending = by_group.entry(group).or_default();
        if let Some(old) = Self::rank(group, pending) {
            ranking.remove(&old);
        }
        let before = pending.len();
        let result = change(pending);
        *len = *len - before + pending.len();
        match Self::rank(group, pending) {
            Some(new) => {
                ranking.insert(new);
            }
            None => {
                by_group.remove(&group);
            }
        }
        result
    }

    fn insert(&mut self, group: IpAddr, seq: u64, token: CancellationToken) {
        self.update(group, |p| {
            p.insert(seq, token);
        });
    }

    fn remove(&mut self, group: IpAddr, seq: u64) {
        if self
            .by_group
            .get(&group)
            .is_some_and(|p| p.contains_key(&seq))
        {
            self.update(group, |p| {
                p.remove(&seq);
            });
        }
    }

    /// Takes one handshake back: the oldest of the group holding the most.
    fn evict(&mut self) -> Option<CancellationToken> {
        let &(_, _, group) = self.ranking.last()?;
        self.update(group, |p| p.pop_first().map(|(_, token)| token))
    }
}

/// Refusals lingering now, in total and per group.
#[derive(Default)]
struct Lingering {
    total: usize,
    by_group: HashMap<IpAddr, usize>,
}

impl Drop for RefusalSlot {
    fn drop(&mut self) {
        let mut lingering = lock(&self.gate.refusals);
        lingering.total = lingering.total.saturating_sub(1);
        if let Some(n) = lingering.by_group.get_mut(&self.group) {
            *n -= 1;
            if *n == 0 {
                lingering.by_group.remove(&self.group);
            }
        }
    }
}

impl RefusalSlot {
    pub(crate) fn group(&self) -> IpAddr {
        self.group
    }
}

impl Ticket {
    /// Resolves if this handshake was dropped to make room for newer ones.
    pub(crate) fn evicted(&self) -> WaitForCancellationFutureOwned {
        self.evicted.clone().cancelled_owned()
    }

    /// Login finished: no longer an unfinished handshake.
    pub(crate) fn handshake_done(&self) {
        lock(&self.gate.handshakes).remove(self.group, self.seq);
    }

    pub(crate) fn group(&self) -> IpAddr {
        self.group
    }

    /// Takes one line from the address group's shared budget (`rate` lines
    /// per second, `2 × rate` deep; `0` is no budget). Over it the line is
    /// [`Rate::Limited`], never [`Rate::Flooding`]: a group's other
    /// connections are not disconnected for what one of them sends.
    pub(crate) fn take_group_line(&self, rate: u32, now: Instant) -> Rate {
        if rate == 0 {
            // Off: not even the shared lock, which every connection of the
            // group would otherwise contend for on each line.
            return Rate::Pass;
        }
        match lock(&self.budget.lines).take(rate, address_burst(rate), now) {
            Rate::Pass => Rate::Pass,
            Rate::Limited | Rate::Flooding => Rate::Limited,
        }
    }

    /// Takes `reads` history reads from the address group's shared budget
    /// ([`HISTORY_READ_BURST`] deep, one back per [`HISTORY_READ_EVERY`]);
    /// over it, how long until they would be there.
    pub(crate) fn take_history_read(&self, reads: u32, now: Instant) -> Result<(), Duration> {
        lock(&self.budget.reads).take(reads, now)
    }
}

/// A token bucket of history reads.
#[derive(Debug)]
struct ReadBudget {
    reads: f64,
    last: Instant,
}

impl ReadBudget {
    fn new(now: Instant) -> ReadBudget {
        ReadBudget {
            reads: f64::from(HISTORY_READ_BURST),
            last: now,
        }
    }

    /// From empty to full.
    fn refill_time() -> Duration {
        HISTORY_READ_EVERY * HISTORY_READ_BURST
    }

    fn take(&mut self, reads: u32, now: Instant) -> Result<(), Duration> {
        let every = HISTORY_READ_EVERY.as_secs_f64();
        let refill = now.saturating_duration_since(self.last).as_secs_f64() / every;
        self.last = now;
        self.reads = (self.reads + refill).min(f64::from(HISTORY_READ_BURST));
        let want = f64::from(reads);
        if self.reads >= want {
            self.reads -= want;
            return Ok(());
        }
        Err(Duration::from_secs_f64((want - self.reads) * every))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.handshake_done();
        let rate = self.gate.limits().address_rate_limit;
        let mut groups = lock(&self.gate.groups);
        let groups = &mut *groups;
        groups.active = groups.active.saturating_sub(1);
        if let Some(g) = groups.by_group.get_mut(&self.group) {
            g.connections -= 1;
            if g.connections == 0 {
                groups.by_group.remove(&self.group);
                // From empty to full takes burst ÷ rate for the lines.
                let now = Instant::now();
                let lines = match rate {
                    0 => Duration::ZERO,
                    rate => {
                        Duration::from_secs_f64(f64::from(address_burst(rate)) / f64::from(rate))
                    }
                };
                let refill = lines.max(ReadBudget::refill_time());
                groups
                    .resting
                    .put(self.group, self.budget.clone(), now + refill, now);
            }
        }
    }
}

/// What a rate-limited warning held back before the line that is logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Suppressed {
    /// From the same address group since its last logged line.
    pub(crate) here: u64,
    /// From groups that could not be tracked (the table was full) or whose
    /// count was forgotten to make room.
    pub(crate) elsewhere: u64,
}

impl fmt::Display for Suppressed {
    /// Empty when nothing was held back, so it can end any log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.here, self.elsewhere) {
            (0, 0) => Ok(()),
            (here, 0) => write!(f, " ({here} more from this address not logged)"),
            (0, other) => write!(f, " ({other} more from other addresses not logged)"),
            (here, other) => write!(
                f,
                " ({here} more from this address and {other} from other addresses not logged)"
            ),
        }
    }
}

/// Lets one warning per address group through per interval and counts the
/// rest, so that a flood cannot choose how much the server logs. The table
/// is bounded: when it is full, ended windows are forgotten (their counts
/// reported with the next line logged); if none has ended, the warning is
/// counted and not logged.
pub(crate) struct WarnLimiter {
    every: Duration,
    cap: usize,
    state: Mutex<WarnState>,
}

#[derive(Default)]
struct WarnState {
    windows: HashMap<IpAddr, Window>,
    elsewhere: u64,
    /// A full table is not scanned again before this.
    next_scan: Option<Instant>,
}

struct Window {
    since: Instant,
    suppressed: u64,
}

impl WarnLimiter {
    pub(crate) fn new(every: Duration, cap: usize) -> WarnLimiter {
        WarnLimiter {
            every,
            cap: cap.max(1),
            state: Mutex::new(WarnState::default()),
        }
    }

    /// Whether a warning about `group` may be logged now, and if so what
    /// was held back before it.
    pub(crate) fn allow(&self, group: IpAddr, now: Instant) -> Option<Suppressed> {
        let every = self.every;
        let ended = |w: &Window| now.saturating_duration_since(w.since) >= every;
        let mut st = lock(&self.state);
        let st = &mut *st;
        if let Some(w) = st.windows.get_mut(&group) {
            if !ended(w) {
                w.suppressed += 1;
                return None;
            }
            let here = std::mem::take(&mut w.suppressed);
            w.since = now;
            let elsewhere = std::mem::take(&mut st.elsewhere);
            return Some(Suppressed { here, elsewhere });
        }
        if st.windows.len() >= self.cap && st.next_scan.is_none_or(|t| now >= t) {
            let mut freed = 0;
            st.windows.retain(|_, w| {
                let keep = !ended(w);
                if !keep {
                    freed += w.suppressed;
                }
                keep
            });
            st.elsewhere += freed;
            st.next_scan = st.windows.values().map(|w| w.since + every).min();
        }
        if st.windows.len() >= self.cap {
            st.elsewhere += 1;
            return None;
        }
        st.windows.insert(
            group,
            Window {
                since: now,
                suppressed: 0,
            },
        );
        let elsewhere = std::mem::take(&mut st.elsewhere);
        Some(Suppressed { here: 0, elsewhere })
    }
}

/// What the rate limit says about one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rate {
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
pub(crate) struct TokenBucket {
    tokens: f64,
    penalty: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(burst: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(burst.max(1)),
            penalty: 0.0,
            last: now,
        }
    }

    /// Takes a token for one line. `rate == 0` switches the limit off.
    pub(crate) fn take(&mut self, rate: u32, burst: u32, now: Instant) -> Rate {
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn admitted(a: Admission) -> Ticket {
        match a {
            Admission::Admitted(t) => t,
            _ => panic!("refused"),
        }
    }

    fn refusal(a: &Admission) -> Option<&str> {
        match a {
            Admission::Admitted(_) => None,
            Admission::Refused(slot) => Some(&slot.refusal.0),
            Admission::Dropped { refusal, .. } => Some(&refusal.0),
        }
    }

    #[test]
    fn caps_total_and_per_address_and_releases_on_drop() {
        let gate = Gate::new(limits(|l| {
            l.max_clients = 3;
            l.max_per_address = 2;
        }));
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let t1 = admitted(gate.admit(a));
        let t2 = admitted(gate.admit(a));
        let r3 = gate.admit(a);
        assert!(refusal(&r3).unwrap().contains("2 at most"));
        assert_eq!(gate.active(), 2, "a refusal is not counted as a client");
        drop(r3);
        let t4 = admitted(gate.admit(b));
        let r5 = gate.admit(b);
        assert!(refusal(&r5).unwrap().contains("limit of 3"));
        drop((t1, t2, t4));
        assert_eq!(gate.active(), 0);
        assert!(lock(&gate.groups).by_group.is_empty());
        assert_eq!(lock(&gate.handshakes).len, 0);
    }

    /// However many connections one address opens past its cap, they take
    /// no client place and no handshake slot: nobody else's unfinished
    /// login is pushed out, and the lingering refusals stay few.
    #[test]
    fn connections_over_the_cap_take_no_handshake_slot_and_no_client_place() {
        let gate = Gate::new(limits(|l| {
            l.max_clients = 10;
            l.max_per_address = 2;
            l.max_handshakes = 4;
        }));
        let other = admitted(gate.admit(ip("10.0.0.2")));
        let flood: Vec<_> = (0..1100).map(|_| gate.admit(ip("10.0.0.3"))).collect();
        assert!(
            !other.evicted.is_cancelled(),
            "another address's login was evicted"
        );
        assert_eq!(gate.active(), 3);
        let lingering = flood
            .iter()
            .filter(|a| matches!(a, Admission::Refused(_)))
            .count();
        assert_eq!(lingering, LINGERING_REFUSALS_PER_GROUP);
        assert!(admitted(gate.admit(ip("10.0.0.4"))).group == ip("10.0.0.4"));
    }

    #[test]
    fn zero_switches_limits_off() {
        let gate = Gate::new(limits(|l| {
            l.max_clients = 0;
            l.max_per_address = 0;
        }));
        let tickets: Vec<_> = (0..100).map(|_| gate.admit(ip("127.0.0.1"))).collect();
        assert!(tickets.iter().all(|a| refusal(a).is_none()));
    }

    #[test]
    fn the_address_with_most_unfinished_handshakes_gives_back_its_oldest() {
        let gate = Gate::new(limits(|l| {
            l.max_handshakes = 4;
            l.max_per_address = 0;
        }));
        let (a, b) = (ip("127.0.0.2"), ip("127.0.0.3"));
        let a1 = admitted(gate.admit(a));
        let b1 = admitted(gate.admit(b));
        let b2 = admitted(gate.admit(b));
        let b3 = admitted(gate.admit(b));
        // Full. b holds the most: its oldest goes, not a's older one.
        let b4 = admitted(gate.admit(b));
        assert!(!a1.evicted.is_cancelled(), "a stranger's login was evicted");
        assert!(b1.evicted.is_cancelled());
        let b5 = admitted(gate.admit(b));
        assert!(b2.evicted.is_cancelled());
        assert!(!a1.evicted.is_cancelled());
        assert!(![&b3, &b4, &b5].iter().any(|t| t.evicted.is_cancelled()));
        // A finished login is never evicted; on a tie the group whose
        // oldest handshake is oldest gives one back.
        b3.handshake_done();
        b4.handshake_done();
        let c = admitted(gate.admit(ip("127.0.0.4")));
        let d = admitted(gate.admit(ip("127.0.0.5")));
        let e = admitted(gate.admit(ip("127.0.0.6")));
        assert!(a1.evicted.is_cancelled(), "all tied at one; a's is oldest");
        assert!(!b3.evicted.is_cancelled() && !b4.evicted.is_cancelled());
        assert!(![&b5, &c, &d, &e].iter().any(|t| t.evicted.is_cancelled()));
    }

    #[test]
    fn refusals_linger_a_few_per_address_and_a_bounded_number_in_all() {
        let gate = Gate::new(limits(|l| l.max_clients = 1));
        let _in = admitted(gate.admit(ip("10.0.0.1")));
        let same: Vec<_> = (0..10).map(|_| gate.admit(ip("10.0.0.2"))).collect();
        let slots = same
            .iter()
            .filter(|a| matches!(a, Admission::Refused(_)))
            .count();
        assert_eq!(slots, LINGERING_REFUSALS_PER_GROUP);
        assert!(same.iter().all(|a| refusal(a).is_some()));
        let many: Vec<_> = (0..1000u32)
            .map(|i| gate.admit(IpAddr::from((0x0a01_0000 + i).to_be_bytes())))
            .collect();
        let lingering = many
            .iter()
            .filter(|a| matches!(a, Admission::Refused(_)))
            .count();
        assert_eq!(lingering + slots, MAX_LINGERING_REFUSALS);
        drop(same);
        drop(many);
        assert_eq!(lock(&gate.refusals).total, 0);
        assert!(lock(&gate.refusals).by_group.is_empty());
    }

    #[test]
    fn address_groups_cut_ipv6_to_the_prefix_and_leave_ipv4_alone() {
        let v6 = ip("2001:db8:1234:5678:9abc:def0:1234:5678");
        assert_eq!(address_group(v6, 64), ip("2001:db8:1234:5678::"));
        assert_eq!(address_group(v6, 48), ip("2001:db8:1234::"));
        assert_eq!(address_group(v6, 128), v6);
        assert_eq!(address_group(v6, 1), ip("::"));
        assert_eq!(address_group(v6, 0), ip("::"), "no panic below the range");
        assert_eq!(address_group(v6, 200), v6, "no panic above the range");
        assert_eq!(
            address_group(ip("2001:db8::1"), 64),
            address_group(ip("2001:db8::ffff:1"), 64)
        );
        assert_ne!(
            address_group(ip("2001:db8:0:1::1"), 64),
            address_group(ip("2001:db8:0:2::1"), 64)
        );
        assert_eq!(
            address_group(ip("2001:db8:0:1::1"), 48),
            address_group(ip("2001:db8:0:2::1"), 48)
        );
        assert_eq!(address_group(ip("::ffff:192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(address_group(ip("::ffff:192.0.2.7"), 1), ip("192.0.2.7"));
        assert_eq!(address_group(ip("192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(address_group(ip("::1"), 64), ip("::"));
        assert_eq!(address_group(ip("::1"), 128), ip("::1"));
    }

    #[test]
    fn the_per_address_cap_counts_an_ipv6_64_as_one_address() {
        let gate = Gate::new(limits(|l| l.max_per_address = 2));
        let _a = admitted(gate.admit(ip("2001:db8:0:1::1")));
        let _b = admitted(gate.admit(ip("2001:db8:0:1::2")));
        assert!(refusal(&gate.admit(ip("2001:db8:0:1:ffff::3"))).is_some());
        assert!(refusal(&gate.admit(ip("2001:db8:0:2::1"))).is_none());
        gate.set_limits(limits(|l| {
            l.max_per_address = 2;
            l.ipv6_prefix_len = 128;
        }));
        assert!(refusal(&gate.admit(ip("2001:db8:0:1::3"))).is_none());
    }

    #[test]
    fn closing_every_connection_does_not_refill_the_address_budget() {
        let rate = 5;
        let gate = Gate::new(limits(|l| {
            l.max_per_address = 0;
            l.address_rate_limit = rate;
        }));
        let t0 = Instant::now();
        let first = admitted(gate.admit(ip("10.0.0.1")));
        let spent = (0..50)
            .filter(|_| first.take_group_line(rate, t0) == Rate::Pass)
            .count();
        assert_eq!(spent, 2 * rate as usize);
        drop(first);
        let again = admitted(gate.admit(ip("10.0.0.1")));
        assert_eq!(
            again.take_group_line(rate, t0),
            Rate::Limited,
            "reconnecting bought a fresh burst"
        );
        // Another address never shared it.
        let other = admitted(gate.admit(ip("10.0.0.2")));
        assert_eq!(other.take_group_line(rate, t0), Rate::Pass);
    }

    #[test]
    fn resting_budgets_are_forgotten_once_full_and_capped() {
        let mut resting = RestingBudgets::default();
        let t0 = Instant::now();
        let bucket = || Budgets::new(1, t0);
        resting.put(ip("10.0.0.1"), bucket(), t0 + Duration::from_secs(2), t0);
        assert!(resting.take(ip("10.0.0.1"), t0).is_some());
        resting.put(ip("10.0.0.1"), bucket(), t0 + Duration::from_secs(2), t0);
        assert!(
            resting
                .take(ip("10.0.0.1"), t0 + Duration::from_secs(3))
                .is_none(),
            "kept past its refill"
        );
        for i in 0..RESTING_BUDGETS_CAP + 10 {
            let group = IpAddr::from(Ipv6Addr::from(i as u128));
            resting.put(group, bucket(), t0 + Duration::from_secs(2), t0);
        }
        assert_eq!(resting.by_group.len(), RESTING_BUDGETS_CAP);
        assert!(resting.order.len() <= 2 * RESTING_BUDGETS_CAP);
        assert!(resting
            .take(IpAddr::from(Ipv6Addr::from(0u128)), t0)
            .is_none());
    }

    #[test]
    fn connections_of_one_address_share_its_line_budget() {
        let gate = Gate::new(limits(|l| l.max_per_address = 0));
        let rate = 5;
        let t0 = Instant::now();
        let a1 = admitted(gate.admit(ip("10.0.0.1")));
        let a2 = admitted(gate.admit(ip("10.0.0.1")));
        let b = admitted(gate.admit(ip("10.0.0.2")));
        let passed = (0..20)
            .filter(|i| {
                let t = if i % 2 == 0 { &a1 } else { &a2 };
                t.take_group_line(rate, t0) == Rate::Pass
            })
            .count();
        assert_eq!(
            passed,
            2 * rate as usize,
            "the burst is shared, not per connection"
        );
        assert_eq!(
            b.take_group_line(rate, t0),
            Rate::Pass,
            "other addresses are not affected"
        );
        assert_eq!(a2.take_group_line(0, t0), Rate::Pass, "0 is no budget");
        for _ in 0..100 {
            assert_ne!(a1.take_group_line(rate, t0), Rate::Flooding);
        }
        let later = t0 + Duration::from_secs(1);
        assert_eq!(a2.take_group_line(rate, later), Rate::Pass, "it refills");
    }

    /// History reads come from one budget per address, whatever the
    /// number of its connections, which reconnecting does not refill; a
    /// search costs several.
    #[test]
    fn connections_of_one_address_share_its_history_reads() {
        let gate = Gate::new(limits(|l| l.max_per_address = 0));
        let t0 = Instant::now();
        let conns: Vec<Ticket> = (0..8)
            .map(|_| admitted(gate.admit(ip("10.0.0.1"))))
            .collect();
        let served = (0..100)
            .filter(|i| conns[i % conns.len()].take_history_read(1, t0).is_ok())
            .count();
        assert_eq!(served, HISTORY_READ_BURST as usize);
        let wait = conns[0].take_history_read(SEARCH_READS, t0).unwrap_err();
        assert_eq!(wait, HISTORY_READ_EVERY * SEARCH_READS);
        let other = admitted(gate.admit(ip("10.0.0.2")));
        assert_eq!(other.take_history_read(SEARCH_READS, t0), Ok(()));
        drop(conns);
        let again = admitted(gate.admit(ip("10.0.0.1")));
        assert!(
            again.take_history_read(1, t0).is_err(),
            "reconnecting bought fresh reads"
        );
        let later = t0 + HISTORY_READ_EVERY;
        assert_eq!(again.take_history_read(1, later), Ok(()), "it refills");
    }

    /// Three people behind one address, each in four rooms, reconnecting
    /// twice at once: every replay and every catch-up is served.
    #[test]
    fn one_address_of_a_few_people_catches_up_in_every_room() {
        let gate = Gate::new(limits(|l| l.max_per_address = 0));
        let t0 = Instant::now();
        for _ in 0..2 {
            let people: Vec<Ticket> = (0..3)
                .map(|_| admitted(gate.admit(ip("10.0.0.1"))))
                .collect();
            for person in &people {
                for _room in 0..4 {
                    assert_eq!(person.take_history_read(1, t0), Ok(()), "replay");
                    assert_eq!(person.take_history_read(1, t0), Ok(()), "catch-up");
                }
            }
        }
    }

    fn lockout_gate(after: u32, secs: u64) -> Arc<Gate> {
        Gate::new(limits(|l| {
            l.lockout_after = after;
            l.lockout_time = Duration::from_secs(secs);
        }))
    }

    /// One wrong guess, reserved and settled at `now`.
    fn wrong(gate: &Arc<Gate>, group: IpAddr, now: Instant) -> Result<Option<Duration>, NoGuess> {
        Ok(gate.reserve_guess_at(group, now)?.settle_at(false, now))
    }

    #[test]
    fn lockout_after_n_failures_grows_and_is_per_address() {
        let gate = lockout_gate(3, 60);
        let (bad, good) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let now = Instant::now();
        assert_eq!(wrong(&gate, bad, now), Ok(None));
        assert_eq!(wrong(&gate, bad, now), Ok(None));
        assert_eq!(wrong(&gate, bad, now), Ok(Some(Duration::from_secs(60))));
        assert!(gate.locked_out(bad).is_some());
        assert!(gate.locked_out(good).is_none());
        assert!(matches!(
            gate.reserve_guess_at(bad, now),
            Err(NoGuess::LockedOut(_))
        ));
        // The next round locks out for twice as long.
        let after = now + Duration::from_secs(61);
        for _ in 0..2 {
            assert_eq!(wrong(&gate, bad, after), Ok(None));
        }
        assert_eq!(wrong(&gate, bad, after), Ok(Some(Duration::from_secs(120))));
        gate.reserve_guess_at(good, after)
            .unwrap()
            .settle_at(true, after);
        assert!(gate.locked_out(good).is_none());
    }

    /// A right answer clears neither failures nor the doubling history:
    /// an address that knows one secret (its own account's password)
    /// gets no more guesses at another. One wrong answer and then the
    /// right one still gets in.
    #[test]
    fn a_right_answer_clears_no_failures_and_no_lockout_history() {
        let gate = lockout_gate(3, 60);
        let group = ip("192.0.2.5");
        let now = Instant::now();
        assert_eq!(wrong(&gate, group, now), Ok(None));
        let right = gate.reserve_guess_at(group, now).unwrap();
        assert_eq!(
            right.settle_at(true, now),
            None,
            "the typo costs no lockout"
        );
        assert_eq!(wrong(&gate, group, now), Ok(None));
        gate.reserve_guess_at(group, now)
            .unwrap()
            .settle_at(true, now);
        assert_eq!(
            wrong(&gate, group, now),
            Ok(Some(Duration::from_secs(60))),
            "the third wrong answer locks out, right ones in between or not"
        );
        let after = now + Duration::from_secs(61);
        gate.reserve_guess_at(group, after)
            .unwrap()
            .settle_at(true, after);
        for _ in 0..2 {
            assert_eq!(wrong(&gate, group, after), Ok(None));
        }
        assert_eq!(
            wrong(&gate, group, after),
            Ok(Some(Duration::from_secs(120))),
            "the doubling survives a right answer"
        );
    }

    /// Guesses are reserved before they are checked: however many run at
    /// once, no more than `lockout_after` wrong ones are ever checked.
    #[test]
    fn parallel_guesses_cannot_outrun_the_lockout() {
        let gate = lockout_gate(5, 60);
        let group = ip("192.0.2.9");
        let now = Instant::now();
        let tries: Vec<_> = (0..16).map(|_| gate.reserve_guess_at(group, now)).collect();
        let (reserved, refused): (Vec<_>, Vec<_>) = tries.into_iter().partition(|t| t.is_ok());
        assert_eq!(reserved.len(), 5);
        assert!(refused
            .iter()
            .all(|r| matches!(r, Err(NoGuess::Busy(d)) if *d == Duration::from_secs(60))));
        let started: Vec<_> = reserved
            .into_iter()
            .map(|g| g.unwrap().settle_at(false, now))
            .collect();
        assert_eq!(
            started.iter().flatten().count(),
            1,
            "exactly one lockout: {started:?}"
        );
        assert!(matches!(
            gate.reserve_guess_at(group, now),
            Err(NoGuess::LockedOut(_))
        ));

        // Unchecked guesses (dropped before their check) are given back;
        // a right one releases its reservation.
        let other = ip("192.0.2.10");
        let held: Vec<_> = (0..5)
            .map(|_| gate.reserve_guess_at(other, now).unwrap())
            .collect();
        assert!(gate.reserve_guess_at(other, now).is_err());
        drop(held);
        let right = gate.reserve_guess_at(other, now).unwrap();
        let more: Vec<_> = (0..4)
            .map(|_| gate.reserve_guess_at(other, now).unwrap())
            .collect();
        assert!(gate.reserve_guess_at(other, now).is_err());
        assert_eq!(right.settle_at(true, now), None);
        assert!(
            gate.reserve_guess_at(other, now).is_ok(),
            "the right one freed its place"
        );
        drop(more);
    }

    #[test]
    fn a_reload_that_turns_lockouts_off_mid_check_gives_the_guesses_back() {
        let gate = lockout_gate(2, 60);
        let group = ip("192.0.2.77");
        let now = Instant::now();
        let first = gate.reserve_guess_at(group, now).unwrap();
        let second = gate.reserve_guess_at(group, now).unwrap();
        gate.set_limits(limits(|l| l.lockout_after = 0));
        first.settle_at(false, now);
        second.settle_at(false, now);
        gate.set_limits(limits(|l| {
            l.lockout_after = 2;
            l.lockout_time = Duration::from_secs(60);
        }));
        assert!(
            !lock(&gate.lockouts).entries.contains_key(&group),
            "the settled guesses left a record behind"
        );
        assert!(gate.reserve_guess_at(group, now).is_ok());
    }

    #[test]
    fn lockouts_off_count_nothing() {
        let gate = lockout_gate(0, 60);
        let now = Instant::now();
        for _ in 0..50 {
            assert_eq!(wrong(&gate, ip("192.0.2.1"), now), Ok(None));
        }
        assert!(lock(&gate.lockouts).entries.is_empty());
    }

    /// A record is kept as long as the longest lockout it can still lead
    /// to (the doubling history matters until then), then forgotten; the
    /// table never holds more than its cap.
    #[test]
    fn lockout_records_expire_and_the_table_is_bounded() {
        let gate = lockout_gate(2, 60);
        let group = ip("192.0.2.1");
        let t0 = Instant::now();
        let keep = retention(&gate.limits());
        assert_eq!(keep, MAX_LOCKOUT);
        assert_eq!(wrong(&gate, group, t0), Ok(None));
        assert_eq!(wrong(&gate, group, t0), Ok(Some(Duration::from_secs(60))));
        // Long after the lockout, but within the retention: the history
        // still doubles the next one.
        let t1 = t0 + keep - Duration::from_secs(1);
        assert_eq!(wrong(&gate, group, t1), Ok(None));
        assert_eq!(wrong(&gate, group, t1), Ok(Some(Duration::from_secs(120))));
        // A retention after that lockout ended, the record is gone: a
        // single wrong guess is a first one again.
        let t2 = t1 + Duration::from_secs(120) + keep + Duration::from_secs(1);
        assert_eq!(wrong(&gate, ip("192.0.2.200"), t2), Ok(None));
        assert!(!lock(&gate.lockouts).entries.contains_key(&group));
        assert_eq!(wrong(&gate, group, t2), Ok(None));
        assert_eq!(wrong(&gate, group, t2), Ok(Some(Duration::from_secs(60))));

        // Many addresses, one wrong guess each: bounded, oldest out first.
        let first = ip("10.255.255.255");
        assert_eq!(wrong(&gate, first, t2), Ok(None));
        for i in 0..(LOCKOUT_TABLE_CAP as u32 + 100) {
            let t = t2 + Duration::from_millis(u64::from(i) + 1);
            wrong(&gate, IpAddr::from((0x0a00_0000 + i).to_be_bytes()), t).unwrap();
        }
        let table = lock(&gate.lockouts);
        assert_eq!(table.entries.len(), LOCKOUT_TABLE_CAP);
        assert_eq!(table.expiry.len(), LOCKOUT_TABLE_CAP);
        assert!(!table.entries.contains_key(&first), "the oldest went first");
    }

    #[test]
    fn warnings_pass_once_a_minute_per_address_with_the_count_held_back() {
        let limiter = WarnLimiter::new(WARN_INTERVAL, 3);
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let t0 = Instant::now();
        assert_eq!(limiter.allow(a, t0), Some(Suppressed::default()));
        for i in 0..99 {
            assert_eq!(limiter.allow(a, t0 + Duration::from_millis(i)), None);
        }
        let half = t0 + WARN_INTERVAL / 2;
        assert!(
            limiter.allow(b, half).is_some(),
            "another address has its own minute"
        );
        let t1 = t0 + WARN_INTERVAL;
        assert_eq!(
            limiter.allow(a, t1),
            Some(Suppressed {
                here: 99,
                elsewhere: 0
            })
        );
        assert_eq!(limiter.allow(a, t1), None);
        assert_eq!(
            Suppressed {
                here: 99,
                elsewhere: 0
            }
            .to_string(),
            " (99 more from this address not logged)"
        );
        assert_eq!(Suppressed::default().to_string(), "");

        // Full (3 tracked): a new address is counted, not logged, until a
        // window ends; its count comes with the next line logged.
        let c = ip("10.0.0.3");
        assert!(limiter.allow(c, t1).is_some());
        assert_eq!(limiter.allow(ip("10.0.0.4"), t1), None);
        assert_eq!(limiter.allow(ip("10.0.0.5"), t1), None);
        let t2 = t1 + WARN_INTERVAL;
        // Every window ended: they make room, and what they held back (a's
        // one, the two untracked) comes with the next line.
        assert_eq!(
            limiter.allow(ip("10.0.0.6"), t2),
            Some(Suppressed {
                here: 0,
                elsewhere: 3
            })
        );
        assert!(lock(&limiter.state).windows.len() <= 3);
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
