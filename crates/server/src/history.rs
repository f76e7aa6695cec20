//! Room history: the lines of each room kept for replays, `/history` and
//! `/search`, written off the broadcast path.
//!
//! ```text
//! hub ─offer(Row)─▶ pending (bounded; full: dropped and counted)
//!                     │ writer thread `tlschat-history`: up to BATCH_ROWS at a time
//!                     ▼
//!                   in_flight ─[HistoryGate]─▶ HistoryStore::append (one transaction:
//!                     │                         insert + keep the newest N per room)
//!                     ▼ cleared once committed
//! peer ─recent/since─▶ Semaphore(2) ─▶ snapshot pending + in_flight
//!                                   ─▶ blocking pool: HistoryStore query
//!                                   ─▶ merge by stamp, cut to n lines and max_bytes
//! peer ─search─▶ Semaphore(1) ─▶ blocking pool: HistoryStore::search (committed rows)
//! ```
//!
//! [`History::offer`] takes one small mutex and never waits for the disk:
//! when the queue is full (a stalled or slow disk), the row is dropped and
//! counted; chat is never delayed by history. The writer (awake at least
//! that often, also while stalled) or, with the writer dead, the next read
//! logs the count at most every [`DROP_WARN_EVERY`]: never `offer`, which
//! the hub calls under its lock. The writer starts a commit at most once per
//! [`MIN_COMMIT_GAP`] (at once when a full batch waits), so a line is on
//! disk within that window plus one commit of being offered. Rows leave
//! `in_flight` only after their commit, and a read (once it has its turn)
//! looks at the queue before the database, so a read returns
//! every row offered before it started (a row may be seen twice, in the
//! queue and on disk: the merge keeps one per stamp, stamps being unique
//! per room).
//!
//! Retention runs in the writer: the line count in every batch's
//! transaction for the rooms it touched, and for every room at start and
//! when a reload lowers it; the age limit at start, when a reload changes
//! it and every [`RETENTION_EVERY`], against the injected [`Clock`]; the
//! cap on lines kept in all rooms ([`HistorySettings::max_lines`]) after
//! any of these, once the count the writer follows passes it (the oldest
//! lines of all rooms go first). A database error never stops the
//! writer: the batch is counted as lost, logged, and the next one is
//! tried.
//!
//! Reads block (SQLite), so they run on the blocking pool, never under the
//! hub's lock: page reads (replays, `/history`) at most
//! [`CONCURRENT_READS`] at a time server-wide, searches (each may run up to
//! the time limit) at most [`CONCURRENT_SEARCHES`] in places of their own,
//! so searches cannot keep replays and catch-ups waiting.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, UNIX_EPOCH};

use thiserror::Error;
use tracing::{debug, error, warn};

use crate::clock::Clock;
use crate::store::StoreError;

/// Rows the queue holds before it drops.
pub(crate) const QUEUE_ROWS: usize = 8192;
/// Bytes of text (room, nickname, line) the queue holds before it drops.
pub(crate) const QUEUE_BYTES: usize = 4 << 20;
/// Lines kept in all rooms together at most ([`HistorySettings::max_lines`]).
pub(crate) const MAX_LINES: u64 = 1_000_000;
/// Rows deleted by the global cap in one transaction at most.
const CAP_CHUNK: u64 = 5000;
/// Rows written in one transaction at most.
const BATCH_ROWS: usize = 1000;
/// A commit starts at least this long after the previous one started,
/// gathering the rows offered meanwhile into the next batch, unless a
/// full batch is waiting.
pub(crate) const MIN_COMMIT_GAP: Duration = Duration::from_millis(20);
/// How often age retention runs (besides at start and on a change).
const RETENTION_EVERY: Duration = Duration::from_secs(10 * 60);
/// How long a shutdown keeps writing what is queued before it gives up.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// At most one warning about dropped rows (or failed batches) this often.
const DROP_WARN_EVERY: Duration = Duration::from_secs(10);
/// Page reads (`recent`, `since`) running at once, server-wide.
const CONCURRENT_READS: usize = 2;
/// Searches running at once, server-wide, besides the page reads.
const CONCURRENT_SEARCHES: usize = 1;
/// How long a read or search waits for its turn before it is answered
/// [`HistoryError::Busy`].
const READ_WAIT: Duration = Duration::from_secs(1);
/// A prefix search word needs this many letters or digits before its `*`.
pub(crate) const MIN_PREFIX_CHARS: usize = 3;
// The refusal's text says the number.
const _: () = assert!(MIN_PREFIX_CHARS == 3);

/// One kept room line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Row {
    /// The room's case-folded key, as the hub's room map has it.
    pub(crate) room_key: Arc<str>,
    /// The room's name as spelt when the line was sent.
    pub(crate) room: Arc<str>,
    /// The line's stamp, unix milliseconds, unique in its room.
    pub(crate) at: u64,
    pub(crate) nick: Box<str>,
    /// A `/me` line.
    pub(crate) action: bool,
    pub(crate) text: Box<str>,
}

impl Row {
    /// The length of its `HISTORY <room> <at> [*]<nick> <text>\n` line,
    /// what the byte bound of an answer counts.
    pub(crate) fn history_line_len(&self) -> usize {
        const WORD_AND_SPACES: usize = "HISTORY ".len() + 3 + 1;
        WORD_AND_SPACES
            + self.room.len()
            + decimal_digits(self.at)
            + usize::from(self.action)
            + self.nick.len()
            + self.text.len()
    }

    /// The length of its `FOUND` line (`FOUND` is two bytes shorter than
    /// `HISTORY`, the rest is the same).
    pub(crate) fn found_line_len(&self) -> usize {
        self.history_line_len() - ("HISTORY".len() - "FOUND".len())
    }

    /// What the row weighs in the queue's byte bound.
    fn queued_bytes(&self) -> usize {
        self.room.len() + self.nick.len() + self.text.len()
    }
}

fn decimal_digits(mut n: u64) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

/// An answer to [`History::recent`] or [`History::since`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Page {
    /// Oldest first.
    pub(crate) rows: Vec<Row>,
    /// Kept rows in the asked range left out (older than `rows`), by the
    /// line count or the byte bound.
    pub(crate) left: u32,
}

/// The answer to [`History::search`]: hits newest first, and whether there
/// were more than asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Hits {
    pub(crate) rows: Vec<Row>,
    pub(crate) more: bool,
}

/// Why a history read gave no answer.
#[derive(Debug, Error)]
pub(crate) enum HistoryError {
    /// The search words cannot be searched for (a `bad-argument`).
    #[error("{0}")]
    Words(&'static str),
    /// Other reads held every place for [`READ_WAIT`]: answered like a
    /// read over its budget (a replay: `HISTORYEND <room> 0 0`).
    #[error("the history is busy; try again in a moment")]
    Busy,
    /// The query ran past its time limit and was stopped.
    #[error("the history query took longer than {} ms and was stopped", .0.as_millis())]
    TooSlow(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How much history is kept and how much may wait for the disk.
#[derive(Clone)]
pub(crate) struct HistorySettings {
    /// Lines kept per room (at least one).
    pub(crate) lines_per_room: u32,
    /// Lines older than this are deleted; [`Duration::ZERO`] (what
    /// `history_days = 0` gives) means no age limit, only the line count.
    pub(crate) max_age: Duration,
    /// Lines kept in all rooms together ([`MAX_LINES`]): the count per
    /// room does not bound the file when one client makes many rooms;
    /// beyond it the oldest lines go, whatever their room.
    pub(crate) max_lines: u64,
    /// The queue's bound in rows ([`QUEUE_ROWS`]).
    pub(crate) queue_rows: usize,
    /// The queue's bound in bytes of text ([`QUEUE_BYTES`]).
    pub(crate) queue_bytes: usize,
    /// Where the writer waits before each commit (tests, benchmarks).
    pub(crate) gate: Option<Arc<HistoryGate>>,
}

impl HistorySettings {
    /// The given retention with the default queue bounds and no gate.
    pub(crate) fn new(lines_per_room: u32, max_age: Duration) -> HistorySettings {
        HistorySettings {
            lines_per_room,
            max_age,
            max_lines: MAX_LINES,
            queue_rows: QUEUE_ROWS,
            queue_bytes: QUEUE_BYTES,
            gate: None,
        }
    }
}

impl fmt::Debug for HistorySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistorySettings")
            .field("lines_per_room", &self.lines_per_room)
            .field("max_age", &self.max_age)
            .field("max_lines", &self.max_lines)
            .field("queue_rows", &self.queue_rows)
            .field("queue_bytes", &self.queue_bytes)
            .field("gate", &self.gate.is_some())
            .finish()
    }
}

/// A door the history writer waits at before each commit: closed, it
/// behaves like a stalled disk (the queue fills, rows are dropped). A
/// test and benchmark hook; a server runs with none.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct HistoryGate {
    closed: Mutex<bool>,
    changed: Condvar,
}

impl HistoryGate {
    /// A gate that starts open.
    pub fn new() -> HistoryGate {
        HistoryGate::default()
    }

    pub fn open(&self) {
        *self.closed.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.changed.notify_all();
    }

    pub fn close(&self) {
        *self.closed.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }

    /// Waits until the gate is open (true) or `give_up` says to stop
    /// waiting (false); `give_up` is asked every few milliseconds.
    fn pass(&self, give_up: impl Fn() -> bool) -> bool {
        let mut closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
        while *closed {
            if give_up() {
                return false;
            }
            closed = self
                .changed
                .wait_timeout(closed, Duration::from_millis(20))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// Which kept lines of a room a read asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Range {
    /// Older than the stamp (all with `None`).
    Before(Option<u64>),
    /// Newer than the stamp.
    After(u64),
}

impl Range {
    pub(crate) fn contains(self, at: u64) -> bool {
        match self {
            Range::Before(None) => true,
            Range::Before(Some(before)) => at < before,
            Range::After(after) => at > after,
        }
    }
}

/// What a backend found for a [`Range`]: its newest rows, newest first,
/// at most the limit asked; how many it holds in the range in all; and
/// how many of those are stamped at or after the `queued_from` it was
/// given (rows the caller also holds queued: a room's rows reach the
/// database in the order they were stamped, so the ones stamped from the
/// oldest queued row on are all in the queue).
#[derive(Debug, Default)]
pub(crate) struct Slice {
    pub(crate) rows: Vec<Row>,
    pub(crate) total: u64,
    pub(crate) queued_present: u64,
}

/// One search word: quoted text, perhaps a prefix. Built only by
/// [`SearchWord::parse`], so no backend sees raw search syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SearchWord {
    pub(crate) text: String,
    pub(crate) prefix: bool,
}

impl SearchWord {
    /// The words of one search, each checked by [`SearchWord::parse`]; at
    /// least one.
    pub(crate) fn parse_all(words: &[&str]) -> Result<Vec<SearchWord>, HistoryError> {
        let words = words
            .iter()
            .map(|w| SearchWord::parse(w))
            .collect::<Result<Vec<SearchWord>, HistoryError>>()?;
        if words.is_empty() {
            return Err(HistoryError::Words("nothing to search for"));
        }
        Ok(words)
    }

    /// A trailing `*` makes a prefix of the word's last token (its last
    /// run of letters and digits, what the index splits text into), which
    /// needs at least [`MIN_PREFIX_CHARS`] characters: `a.b*` would ask
    /// for every word starting with `b`. Every other character is
    /// searched as text.
    pub(crate) fn parse(word: &str) -> Result<SearchWord, HistoryError> {
        let (text, prefix) = match word.strip_suffix('*') {
            Some(text) => (text, true),
            None => (word, false),
        };
        let last_token = text
            .chars()
            .rev()
            .skip_while(|c| !c.is_alphanumeric())
            .take_while(|c| c.is_alphanumeric())
            .count();
        if prefix && last_token < MIN_PREFIX_CHARS {
            return Err(HistoryError::Words(
                "a search word ending in * needs at least 3 letters or digits before it",
            ));
        }
        if text.is_empty() {
            return Err(HistoryError::Words("an empty search word"));
        }
        Ok(SearchWord {
            text: text.to_owned(),
            prefix,
        })
    }
}

/// Where history is kept. Writes come from the writer thread alone;
/// reads from the blocking pool, at most [`CONCURRENT_READS`] plus
/// [`CONCURRENT_SEARCHES`] at once.
/// Every method blocks.
pub(crate) trait HistoryStore: Send + Sync + 'static {
    /// The largest stamp kept (0 when empty).
    fn high_water(&self) -> Result<u64, StoreError>;
    /// The number of rows kept, in all rooms.
    fn count(&self) -> Result<u64, StoreError>;
    /// Inserts the rows (a stamp already kept in its room is skipped) and
    /// keeps the newest `lines_per_room` of each room touched, in one
    /// transaction; returns the change in the number of rows kept.
    fn append(&self, rows: &[Arc<Row>], lines_per_room: u32) -> Result<i64, StoreError>;
    /// Deletes the `n` oldest rows of all rooms (by stamp), in one
    /// transaction; returns how many went.
    fn trim_oldest(&self, n: u64) -> Result<u64, StoreError>;
    /// Deletes the rows stamped before `oldest_ms` and, given a count, all
    /// but the newest `lines_per_room` of every room (a full pass, so only
    /// at start and after a change); returns how many went.
    fn retain(&self, oldest_ms: u64, lines_per_room: Option<u32>) -> Result<u64, StoreError>;
    /// Called by the writer once it has written its last batch: leaves
    /// the file complete on its own (no log beside it to copy).
    fn finish(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// The newest `limit` rows of the room in `range`, with counts (see
    /// [`Slice`]); `queued_from` is the oldest stamp (in `range`) the
    /// caller holds queued.
    fn slice(
        &self,
        room_key: &str,
        range: Range,
        limit: usize,
        queued_from: Option<u64>,
    ) -> Result<Slice, HistoryError>;
    /// The newest `limit` rows of the room holding every word (whole words,
    /// case and diacritics ignored), newest first.
    fn search(
        &self,
        room_key: &str,
        words: &[SearchWord],
        limit: usize,
    ) -> Result<Vec<Row>, HistoryError>;
}

/// History in memory, for tests: the same answers as SQLite, with a
/// simpler idea of a word (split at whitespace, case folded, diacritics
/// kept).
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct MemHistory {
    rows: Mutex<BTreeMap<(Arc<str>, u64), Row>>,
}

#[cfg(test)]
impl MemHistory {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<(Arc<str>, u64), Row>> {
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
fn keep_newest(rows: &mut BTreeMap<(Arc<str>, u64), Row>, room_key: &Arc<str>, keep: u32) -> u64 {
    let stamps: Vec<u64> = rows
        .range((room_key.clone(), 0)..=(room_key.clone(), u64::MAX))
        .map(|((_, at), _)| *at)
        .collect();
    let excess = stamps.len().saturating_sub(keep.max(1) as usize);
    for at in &stamps[..excess] {
        rows.remove(&(room_key.clone(), *at));
    }
    excess as u64
}

#[cfg(test)]
impl HistoryStore for MemHistory {
    fn high_water(&self) -> Result<u64, StoreError> {
        Ok(self.lock().values().map(|r| r.at).max().unwrap_or(0))
    }

    fn count(&self) -> Result<u64, StoreError> {
        Ok(self.lock().len() as u64)
    }

    fn append(&self, rows: &[Arc<Row>], lines_per_room: u32) -> Result<i64, StoreError> {
        let mut kept = self.lock();
        let before = kept.len() as i64;
        for row in rows {
            kept.entry((row.room_key.clone(), row.at))
                .or_insert_with(|| Row::clone(row));
        }
        let mut touched: Vec<&Arc<str>> = rows.iter().map(|r| &r.room_key).collect();
        touched.sort();
        touched.dedup();
        for room_key in touched {
            keep_newest(&mut kept, room_key, lines_per_room);
        }
        Ok(kept.len() as i64 - before)
    }

    fn trim_oldest(&self, n: u64) -> Result<u64, StoreError> {
        let mut kept = self.lock();
        let mut oldest: Vec<(u64, Arc<str>)> =
            kept.keys().map(|(room, at)| (*at, room.clone())).collect();
        oldest.sort_unstable();
        let mut deleted = 0;
        for (at, room) in oldest
            .into_iter()
            .take(usize::try_from(n).unwrap_or(usize::MAX))
        {
            kept.remove(&(room, at));
            deleted += 1;
        }
        Ok(deleted)
    }

    fn retain(&self, oldest_ms: u64, lines_per_room: Option<u32>) -> Result<u64, StoreError> {
        let mut kept = self.lock();
        let before = kept.len();
        kept.retain(|_, row| row.at >= oldest_ms);
        let mut deleted = (before - kept.len()) as u64;
        if let Some(lines) = lines_per_room {
            let mut rooms: Vec<Arc<str>> = kept.keys().map(|(k, _)| k.clone()).collect();
            rooms.dedup();
            for room_key in &rooms {
                deleted += keep_newest(&mut kept, room_key, lines);
            }
        }
        Ok(deleted)
    }

    fn slice(
        &self,
        room_key: &str,
        range: Range,
        limit: usize,
        queued_from: Option<u64>,
    ) -> Result<Slice, HistoryError> {
        let kept = self.lock();
        let in_range: Vec<&Row> = kept
            .values()
            .filter(|r| &*r.room_key == room_key && range.contains(r.at))
            .collect();
        Ok(Slice {
            rows: in_range
                .iter()
                .rev()
                .take(limit)
                .map(|r| (*r).clone())
                .collect(),
            total: in_range.len() as u64,
            queued_present: queued_from.map_or(0, |from| {
                in_range.iter().filter(|r| r.at >= from).count() as u64
            }),
        })
    }

    fn search(
        &self,
        room_key: &str,
        words: &[SearchWord],
        limit: usize,
    ) -> Result<Vec<Row>, HistoryError> {
        let matches = |row: &Row| {
            let text = row.text.to_lowercase();
            words.iter().all(|w| {
                let word = w.text.to_lowercase();
                text.split_whitespace().any(|t| {
                    if w.prefix {
                        t.starts_with(&word)
                    } else {
                        t == word
                    }
                })
            })
        };
        Ok(self
            .lock()
            .values()
            .rev()
            .filter(|r| &*r.room_key == room_key && matches(r))
            .take(limit)
            .cloned()
            .collect())
    }
}

/// The queue between the hub and the writer.
#[derive(Default)]
struct Queue {
    /// Shared with the readers' snapshots, which copy pointers only.
    pending: VecDeque<Arc<Row>>,
    pending_bytes: usize,
    /// The batch being committed; readers see it until the commit is done.
    in_flight: Arc<[Arc<Row>]>,
    /// Set by a shutdown: write what is queued until this instant, then stop.
    stop_by: Option<Instant>,
}

/// Retention limits, changed on reload.
#[derive(Clone, Copy, Debug)]
struct Retention {
    lines_per_room: u32,
    max_age: Duration,
}

/// A warning logged at most once per [`DROP_WARN_EVERY`].
struct RareWarning {
    start: Instant,
    /// Milliseconds after `start` of the last warning, plus one (0: none).
    last: AtomicU64,
}

impl RareWarning {
    fn new() -> RareWarning {
        RareWarning {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Whether to warn now (and take the turn).
    fn due(&self) -> bool {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        let last = self.last.load(Ordering::Relaxed);
        let every = DROP_WARN_EVERY.as_millis() as u64;
        (last == 0 || now.saturating_sub(last) >= every)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer: rows after an empty queue, a shutdown, a change of
    /// retention.
    wake: Condvar,
    store: Arc<dyn HistoryStore>,
    clock: Arc<dyn Clock>,
    retention: Mutex<Retention>,
    /// A pass over every room by age is due (at start, a changed age).
    age_pass_asked: AtomicBool,
    /// A pass over every room by line count is due (at start, a lowered
    /// count).
    count_pass_asked: AtomicBool,
    queue_rows: usize,
    queue_bytes: usize,
    gate: Option<Arc<HistoryGate>>,
    max_lines: u64,
    /// Rows offered but never kept: dropped at a full queue, or lost with
    /// a failed batch or at shutdown.
    dropped: AtomicU64,
    drop_warning: RareWarning,
    /// The `dropped` count the last warning gave.
    dropped_reported: AtomicU64,
    /// Warnings about dropped rows logged (tests look).
    drop_warnings: AtomicU64,
    failure_warning: RareWarning,
    reads: Arc<tokio::sync::Semaphore>,
    searches: Arc<tokio::sync::Semaphore>,
    /// The writer thread died (a panic): nothing more is queued.
    writer_dead: AtomicBool,
}

/// Lives on the writer thread's stack: if the thread unwinds, the history
/// stops taking rows (they would only fill the queue) and says why once.
struct WriterAlive<'a>(&'a Shared);

impl Drop for WriterAlive<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let shared = self.0;
        shared.writer_dead.store(true, Ordering::SeqCst);
        let mut queue = shared.lock_queue();
        let lost = queue.pending.len() + queue.in_flight.len();
        queue.pending.clear();
        queue.pending_bytes = 0;
        queue.in_flight = Arc::new([]);
        drop(queue);
        let total = shared.dropped.fetch_add(lost as u64, Ordering::Relaxed) + lost as u64;
        error!(
            dropped_total = total,
            "the history writer failed; no more lines are kept until the server restarts \
             (history reads still work)"
        );
    }
}

/// The history of every room: cheap to clone, shared by the hub (which
/// offers lines) and the peers (which read). Dropping the last clone
/// without [`History::shutdown`] lets the writer finish in the background.
#[derive(Clone)]
pub(crate) struct History {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    high_water: u64,
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("History")
            .field("high_water", &self.inner.high_water)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.ask_stop();
    }
}

impl History {
    /// Opens (creating it if needed, setting a damaged one aside)
    /// `<data_dir>/history.db` and starts the writer. Blocks: call it at
    /// startup, not on a runtime worker. An error (never advice to restore
    /// a backup, which does not hold history) means history cannot be used
    /// this run: the server logs it and runs without.
    pub(crate) fn open(
        data_dir: &Path,
        settings: HistorySettings,
        clock: Arc<dyn Clock>,
    ) -> Result<History, StoreError> {
        let store = crate::history_sqlite::SqliteHistory::open(data_dir, clock.as_ref())?;
        History::start(Arc::new(store), settings, clock)
    }

    /// History kept in memory ([`MemHistory`]), for tests.
    #[cfg(test)]
    pub(crate) fn in_memory(settings: HistorySettings, clock: Arc<dyn Clock>) -> History {
        History::start(Arc::new(MemHistory::default()), settings, clock)
            .unwrap_or_else(|e| unreachable!("memory history cannot fail to open: {e}"))
    }

    fn start(
        store: Arc<dyn HistoryStore>,
        settings: HistorySettings,
        clock: Arc<dyn Clock>,
    ) -> Result<History, StoreError> {
        let high_water = store.high_water()?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            store,
            clock,
            retention: Mutex::new(Retention {
                lines_per_room: settings.lines_per_room.max(1),
                max_age: settings.max_age,
            }),
            age_pass_asked: AtomicBool::new(true),
            count_pass_asked: AtomicBool::new(true),
            queue_rows: settings.queue_rows,
            queue_bytes: settings.queue_bytes,
            gate: settings.gate,
            max_lines: settings.max_lines,
            dropped: AtomicU64::new(0),
            drop_warning: RareWarning::new(),
            dropped_reported: AtomicU64::new(0),
            drop_warnings: AtomicU64::new(0),
            failure_warning: RareWarning::new(),
            reads: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_READS)),
            searches: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_SEARCHES)),
            writer_dead: AtomicBool::new(false),
        });
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("tlschat-history".to_owned())
                .spawn(move || shared.run_writer())
                .map_err(|e| StoreError::Task(format!("cannot start the history writer: {e}")))?
        };
        Ok(History {
            inner: Arc::new(Inner {
                shared,
                writer: Mutex::new(Some(writer)),
                high_water,
            }),
        })
    }

    /// The largest stamp kept when the history was opened (0: none).
    pub(crate) fn high_water(&self) -> u64 {
        self.inner.high_water
    }

    /// Queues a room line for the writer. Never waits for the disk and
    /// never logs: when the queue is full (or shut down), the row is
    /// dropped and counted.
    pub(crate) fn offer(&self, row: Row) {
        let shared = &self.inner.shared;
        let bytes = row.queued_bytes();
        let mut queue = shared.lock_queue();
        let full = queue.pending.len() >= shared.queue_rows
            || queue.pending_bytes + bytes > shared.queue_bytes;
        let dead = shared.writer_dead.load(Ordering::Relaxed);
        if full || dead || queue.stop_by.is_some() {
            drop(queue);
            // Counted only: the hub calls this under its lock, where a log
            // line (a write that may block) must not be. The writer, or
            // with none the next read, logs the count.
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let was_empty = queue.pending.is_empty();
        queue.pending.push_back(Arc::new(row));
        queue.pending_bytes += bytes;
        drop(queue);
        if was_empty {
            shared.wake.notify_one();
        }
    }

    /// The newest `n` kept lines of the room (older than `before`, if
    /// given) whose `HISTORY` lines fit in `max_bytes` together (the
    /// newest always goes).
    pub(crate) async fn recent(
        &self,
        room_key: &str,
        before: Option<u64>,
        n: u32,
        max_bytes: usize,
    ) -> Result<Page, HistoryError> {
        self.page(room_key, Range::Before(before), n, max_bytes)
            .await
    }

    /// The kept lines of the room newer than `after`: the newest `n` of
    /// them that fit in `max_bytes`, the rest counted in `left`.
    pub(crate) async fn since(
        &self,
        room_key: &str,
        after: u64,
        n: u32,
        max_bytes: usize,
    ) -> Result<Page, HistoryError> {
        self.page(room_key, Range::After(after), n, max_bytes).await
    }

    /// The newest `n` kept lines of the room holding every word, newest
    /// first, as many as fit in `max_bytes` of `FOUND` lines (`more` when
    /// some were left out). Lines still queued (not yet committed) are not
    /// searched.
    pub(crate) async fn search(
        &self,
        room_key: &str,
        words: Vec<SearchWord>,
        n: u32,
        max_bytes: usize,
    ) -> Result<Hits, HistoryError> {
        let n = n as usize;
        let room_key = room_key.to_owned();
        self.inner.shared.warn_dropped(false);
        let permit = place(&self.inner.shared.searches).await?;
        let mut rows = self
            .blocking(permit, move |store| store.search(&room_key, &words, n + 1))
            .await?;
        let mut more = rows.len() > n;
        rows.truncate(n);
        let fit = fitting(rows.iter(), Row::found_line_len, max_bytes);
        more |= fit < rows.len();
        rows.truncate(fit);
        Ok(Hits { rows, more })
    }

    /// Rows offered but not kept since the start. Logs nothing (callable
    /// under a lock).
    pub(crate) fn dropped(&self) -> u64 {
        self.inner.shared.dropped.load(Ordering::Relaxed)
    }

    /// New limits (a reload). A lowered line count or a changed age
    /// applies to what is kept at once; unchanged limits (every reload)
    /// cost nothing.
    pub(crate) fn set_retention(&self, lines_per_room: u32, max_age: Duration) {
        let shared = &self.inner.shared;
        let new = Retention {
            lines_per_room: lines_per_room.max(1),
            max_age,
        };
        let old = std::mem::replace(
            &mut *shared
                .retention
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            new,
        );
        let count_pass = new.lines_per_room < old.lines_per_room;
        let age_pass = new.max_age != old.max_age;
        if !(count_pass || age_pass) {
            return;
        }
        if count_pass {
            shared.count_pass_asked.store(true, Ordering::SeqCst);
        }
        if age_pass {
            shared.age_pass_asked.store(true, Ordering::SeqCst);
        }
        let _queue = shared.lock_queue();
        shared.wake.notify_one();
    }

    /// Writes what is queued (for at most [`DRAIN_LIMIT`]), stops the
    /// writer and waits for it. Rows offered afterwards are dropped.
    pub(crate) async fn shutdown(&self) {
        self.inner.shared.ask_stop();
        let writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(writer) = writer else {
            return;
        };
        // Polled, not joined on the blocking pool: a writer stuck in the
        // disk must not hold up the runtime's own shutdown.
        let give_up = Instant::now() + DRAIN_LIMIT + Duration::from_secs(1);
        while !writer.is_finished() {
            if Instant::now() >= give_up {
                error!("the history writer did not stop; lines still queued are lost");
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if writer.join().is_err() {
            error!("the history writer panicked; lines still queued are lost");
        }
    }

    async fn page(
        &self,
        room_key: &str,
        range: Range,
        n: u32,
        max_bytes: usize,
    ) -> Result<Page, HistoryError> {
        let limit = n as usize;
        // A dead writer logs nothing more; readers say what it dropped.
        self.inner.shared.warn_dropped(false);
        let permit = place(&self.inner.shared.reads).await?;
        // The queue after the permit (a read waiting for one holds no
        // copy) and before the database: a row committed after this look
        // is in the database by the time the query below reads it.
        let queued = self.inner.shared.queued(room_key, range, limit);
        let key = room_key.to_owned();
        let from = queued.oldest;
        let slice = self
            .blocking(permit, move |store| store.slice(&key, range, limit, from))
            .await?;
        Ok(merge(slice, queued, limit, max_bytes))
    }

    /// Runs `f` on the blocking pool. The permit goes with it, so a caller
    /// that stops waiting does not free a place while its query still runs.
    async fn blocking<T: Send + 'static>(
        &self,
        permit: tokio::sync::OwnedSemaphorePermit,
        f: impl FnOnce(&dyn HistoryStore) -> Result<T, HistoryError> + Send + 'static,
    ) -> Result<T, HistoryError> {
        let shared = self.inner.shared.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(shared.store.as_ref())
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Task(e.to_string()).into()))
    }
}

/// A place among `places` (the page reads' or the searches'), waited for
/// at most [`READ_WAIT`].
async fn place(
    places: &Arc<tokio::sync::Semaphore>,
) -> Result<tokio::sync::OwnedSemaphorePermit, HistoryError> {
    let permit = tokio::time::timeout(READ_WAIT, places.clone().acquire_owned())
        .await
        .map_err(|_| HistoryError::Busy)?
        .map_err(|e| StoreError::Task(e.to_string()))?;
    Ok(permit)
}

/// A read's look at the queue: the newest rows of a room in a range.
#[derive(Debug, Default)]
struct Queued {
    /// At most the read's limit, newest first.
    newest: Vec<Arc<Row>>,
    /// All the queued rows of the room in the range.
    count: u64,
    /// The oldest stamp among them.
    oldest: Option<u64>,
}

/// The newest `limit` of the database's rows and the queued ones (one per
/// stamp), cut to `max_bytes` of `HISTORY` lines, oldest first.
fn merge(slice: Slice, queued: Queued, limit: usize, max_bytes: usize) -> Page {
    let total = slice.total + queued.count - slice.queued_present.min(queued.count);
    let mut by_stamp: BTreeMap<u64, Row> = slice.rows.into_iter().map(|r| (r.at, r)).collect();
    for row in queued.newest {
        by_stamp
            .entry(row.at)
            .or_insert_with(|| Arc::unwrap_or_clone(row));
    }
    let mut rows: Vec<Row> = by_stamp.into_values().rev().take(limit).collect();
    rows.truncate(fitting(rows.iter(), Row::history_line_len, max_bytes));
    rows.reverse();
    let left = total.saturating_sub(rows.len() as u64);
    Page {
        rows,
        left: u32::try_from(left).unwrap_or(u32::MAX),
    }
}

/// How many of the rows, from the first, fit in `max_bytes` of lines of
/// `line_len`; always the first, so that paging back (`/history before`)
/// moves on even past a line longer than the bound.
fn fitting<'a>(
    rows: impl Iterator<Item = &'a Row>,
    line_len: impl Fn(&Row) -> usize,
    max_bytes: usize,
) -> usize {
    let mut bytes = 0;
    rows.enumerate()
        .take_while(|(i, row)| {
            bytes += line_len(row);
            *i == 0 || bytes <= max_bytes
        })
        .count()
}

/// Puts the calling thread (the writer) at the lowest CPU priority there
/// is: the hub must never wait for history, so on a saturated machine the
/// writer runs on the CPU left over and, when none is, the bounded queue
/// drops lines (counted) instead of the writer taking CPU from chat. The
/// reads are not affected (they run on the blocking pool). The writer
/// holds the queue's lock only to move pointers; should it lose the CPU
/// right then, the hub's `offer` waits until the writer runs again (a
/// rare priority inversion, short once the hub's threads wait). Failing
/// to lower it is no reason not to keep history.
fn lower_own_priority() {
    if !idle_priority() {
        debug!(
            "the history writer keeps its CPU priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// `SCHED_IDLE` for the calling thread; false when refused.
#[cfg(all(unix, target_os = "linux"))]
fn idle_priority() -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a plain system call; pid 0 is the calling thread, and
    // `param` outlives it.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 }
}

/// Background priority for the calling thread; false when refused.
#[cfg(all(unix, target_os = "macos"))]
fn idle_priority() -> bool {
    // SAFETY: a plain system call on the calling thread (who 0).
    unsafe { libc::setpriority(libc::PRIO_DARWIN_THREAD, 0, libc::PRIO_DARWIN_BG) == 0 }
}

/// The lowest priority for the calling thread; false when refused.
#[cfg(windows)]
fn idle_priority() -> bool {
    use windows_sys::Win32::System::Threading::{
        GetCurrentThread, SetThreadPriority, THREAD_PRIORITY_LOWEST,
    };
    // SAFETY: a plain system call on the calling thread's pseudo handle.
    unsafe { SetThreadPriority(GetCurrentThread(), THREAD_PRIORITY_LOWEST) != 0 }
}

/// Elsewhere a thread has no priority of its own to lower without
/// privileges (a nice value is the process's).
#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
fn idle_priority() -> bool {
    true
}

/// What the writer does next.
enum Job {
    /// Nothing yet (a wait ended: time to log what was dropped).
    Idle,
    Write(Arc<[Arc<Row>]>),
    /// Age retention; with `every_room`, the line count too.
    Retain {
        every_room: bool,
    },
    Stop,
}

impl Shared {
    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ask_stop(&self) {
        let mut queue = self.lock_queue();
        if queue.stop_by.is_none() {
            queue.stop_by = Some(Instant::now() + DRAIN_LIMIT);
        }
        drop(queue);
        self.wake.notify_all();
    }

    /// The newest `limit` queued and in-flight rows of the room in
    /// `range` (pointers, so the hub's [`History::offer`] waits for a scan
    /// of the queue at most), with their count.
    fn queued(&self, room_key: &str, range: Range, limit: usize) -> Queued {
        let queue = self.lock_queue();
        let mut queued = Queued::default();
        // Newest first: the queue holds each room's rows in stamp order.
        let matching = queue
            .pending
            .iter()
            .rev()
            .chain(queue.in_flight.iter().rev())
            .filter(|r| &*r.room_key == room_key && range.contains(r.at));
        for row in matching {
            if queued.newest.len() < limit {
                queued.newest.push(row.clone());
            }
            queued.count += 1;
            queued.oldest = Some(row.at);
        }
        queued
    }

    /// Logs the rows dropped since the last warning, if any, at most once
    /// per [`DROP_WARN_EVERY`] unless `now`. Called by the writer (also
    /// while it waits at a closed gate or for rows) and by reads, never by
    /// [`History::offer`], and never under the queue's lock.
    fn warn_dropped(&self, now: bool) {
        let total = self.dropped.load(Ordering::Relaxed);
        let reported = self.dropped_reported.load(Ordering::Relaxed);
        if total == reported || !(now || self.drop_warning.due()) {
            return;
        }
        self.dropped_reported.fetch_max(total, Ordering::Relaxed);
        self.drop_warnings.fetch_add(1, Ordering::Relaxed);
        warn!(
            dropped = total.saturating_sub(reported),
            dropped_total = total,
            "history lines not kept: the disk is slow or stalled, the history writer failed, \
             or the server is stopping"
        );
    }

    fn dropped_unreported(&self) -> bool {
        self.dropped.load(Ordering::Relaxed) != self.dropped_reported.load(Ordering::Relaxed)
    }

    fn retention(&self) -> Retention {
        *self
            .retention
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn run_writer(&self) {
        let _alive = WriterAlive(self);
        lower_own_priority();
        // Kept rows, counted once and then followed through every change,
        // so the global cap costs nothing until it is reached.
        let mut kept = self.store.count().unwrap_or_else(|e| {
            error!("history rows not counted (the cap on kept lines waits): {e}");
            0
        });
        // At start, both passes are asked for.
        let mut next_retention = Instant::now() + RETENTION_EVERY;
        let mut paced_until = Instant::now();
        loop {
            self.warn_dropped(false);
            match self.next_job(next_retention, paced_until) {
                Job::Idle => {}
                Job::Retain { every_room } => {
                    kept = kept.saturating_sub(self.apply_retention(every_room));
                    kept = self.apply_cap(kept);
                    next_retention = Instant::now() + RETENTION_EVERY;
                }
                Job::Write(batch) => {
                    let passed = self.gate.as_ref().is_none_or(|gate| {
                        gate.pass(|| {
                            self.warn_dropped(false);
                            self.lock_queue()
                                .stop_by
                                .is_some_and(|by| Instant::now() >= by)
                        })
                    });
                    if passed {
                        paced_until = Instant::now() + MIN_COMMIT_GAP;
                        let lines = self.retention().lines_per_room;
                        match self.store.append(&batch, lines) {
                            Ok(change) => kept = self.apply_cap(kept.saturating_add_signed(change)),
                            Err(e) => {
                                self.dropped
                                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                                if self.failure_warning.due() {
                                    error!("history lines lost: {e}");
                                }
                            }
                        }
                    } else {
                        self.dropped
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    }
                    self.lock_queue().in_flight = Arc::new([]);
                }
                Job::Stop => {
                    self.warn_dropped(true);
                    if let Err(e) = self.store.finish() {
                        error!("history not tidied at stop: {e}");
                    }
                    return;
                }
            }
        }
    }

    fn next_job(&self, next_retention: Instant, paced_until: Instant) -> Job {
        let mut queue = self.lock_queue();
        loop {
            let now = Instant::now();
            if let Some(by) = queue.stop_by {
                if queue.pending.is_empty() {
                    return Job::Stop;
                }
                if now >= by {
                    let lost = queue.pending.len() as u64;
                    queue.pending.clear();
                    queue.pending_bytes = 0;
                    drop(queue);
                    self.dropped.fetch_add(lost, Ordering::Relaxed);
                    return Job::Stop;
                }
            } else {
                let count_pass = self.count_pass_asked.swap(false, Ordering::SeqCst);
                let age_pass = self.age_pass_asked.swap(false, Ordering::SeqCst);
                if count_pass || age_pass || now >= next_retention {
                    return Job::Retain {
                        every_room: count_pass,
                    };
                }
            }
            // A full batch goes at once: the gap only gathers small ones.
            let paced =
                queue.stop_by.is_none() && now < paced_until && queue.pending.len() < BATCH_ROWS;
            if !queue.pending.is_empty() && !paced {
                let take = queue.pending.len().min(BATCH_ROWS);
                let batch: Arc<[Arc<Row>]> = queue.pending.drain(..take).collect();
                queue.pending_bytes -= batch.iter().map(|r| r.queued_bytes()).sum::<usize>();
                queue.in_flight = batch.clone();
                return Job::Write(batch);
            }
            let until = if queue.pending.is_empty() {
                next_retention
            } else {
                paced_until
            };
            // Awake at least this often to log what the hub dropped.
            let wait = until.saturating_duration_since(now).min(DROP_WARN_EVERY);
            let (woken, waited) = self
                .wake
                .wait_timeout(queue, wait)
                .unwrap_or_else(PoisonError::into_inner);
            queue = woken;
            if waited.timed_out() && self.dropped_unreported() {
                return Job::Idle;
            }
        }
    }

    /// Deletes the oldest rows of all rooms beyond the cap, at most
    /// [`CAP_CHUNK`] a transaction; returns the rows kept after.
    fn apply_cap(&self, mut kept: u64) -> u64 {
        while kept > self.max_lines {
            match self
                .store
                .trim_oldest((kept - self.max_lines).min(CAP_CHUNK))
            {
                // Fewer rows than counted: nothing more to delete.
                Ok(0) => return self.max_lines.min(kept),
                Ok(deleted) => kept = kept.saturating_sub(deleted),
                Err(e) => {
                    if self.failure_warning.due() {
                        error!("history lines beyond the cap not deleted: {e}");
                    }
                    break;
                }
            }
        }
        kept
    }

    /// Returns the rows deleted.
    fn apply_retention(&self, every_room: bool) -> u64 {
        let Retention {
            lines_per_room,
            max_age,
        } = self.retention();
        let oldest = if max_age.is_zero() {
            0
        } else {
            self.clock
                .now()
                .checked_sub(max_age)
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        };
        let lines = every_room.then_some(lines_per_room);
        self.store.retain(oldest, lines).unwrap_or_else(|e| {
            if self.failure_warning.due() {
                error!("history retention failed: {e}");
            }
            0
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::clock::{ManualClock, SystemClock};

    pub(crate) const TEXTS: [&str; 6] = [
        "привет мир",
        "שלום עולם",
        "مرحبا",
        "日本語 テキスト",
        "👩‍👩‍👧 👍🏽",
        "e\u{301}te",
    ];

    /// Checked search words, as the peer hands them over.
    pub(crate) fn words(words: &[&str]) -> Vec<SearchWord> {
        SearchWord::parse_all(words).unwrap()
    }

    pub(crate) fn row(room: &str, at: u64, text: &str) -> Row {
        Row {
            room_key: room.to_lowercase().into(),
            room: room.into(),
            at,
            nick: "ällice".into(),
            action: at.is_multiple_of(3),
            text: text.into(),
        }
    }

    /// The rows as the writer hands them to a store.
    pub(crate) fn shared(rows: impl IntoIterator<Item = Row>) -> Vec<Arc<Row>> {
        rows.into_iter().map(Arc::new).collect()
    }

    /// 500 lines per room, no age limit (the test stamps are near 1970).
    pub(crate) fn settings() -> HistorySettings {
        HistorySettings::new(500, Duration::MAX)
    }

    fn stamps(rows: &[Row]) -> Vec<u64> {
        rows.iter().map(|r| r.at).collect()
    }

    /// Waits (bounded) until nothing is queued or in flight.
    pub(crate) async fn settled(history: &History) {
        for _ in 0..500 {
            {
                let q = history.inner.shared.lock_queue();
                if q.pending.is_empty() && q.in_flight.is_empty() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the history writer did not catch up");
    }

    /// The shared read checks, run against any backend through a History.
    pub(crate) async fn reads_with_left(history: &History) {
        for at in 1..=30 {
            history.offer(row("#Лобби", at * 10, TEXTS[(at % 6) as usize]));
            history.offer(row("#other", at * 10 + 1, "שלום"));
        }
        settled(history).await;
        let page = history.recent("#лобби", None, 5, usize::MAX).await.unwrap();
        assert_eq!(stamps(&page.rows), [260, 270, 280, 290, 300]);
        assert_eq!(page.left, 25);
        assert_eq!(&*page.rows[0].room, "#Лобби");
        assert!(page.rows.iter().all(|r| TEXTS.contains(&&*r.text)));
        assert!(page.rows[4].action && !page.rows[0].action);

        let page = history
            .recent("#лобби", Some(30), 50, usize::MAX)
            .await
            .unwrap();
        assert_eq!((stamps(&page.rows), page.left), (vec![10, 20], 0));

        let page = history.since("#лобби", 250, 3, usize::MAX).await.unwrap();
        assert_eq!((stamps(&page.rows), page.left), (vec![280, 290, 300], 2));
        let page = history.since("#лобби", 300, 3, usize::MAX).await.unwrap();
        assert_eq!(page, Page::default());
        let page = history
            .recent("#nowhere", None, 50, usize::MAX)
            .await
            .unwrap();
        assert_eq!(page, Page::default());

        // The byte bound keeps the newest lines that fit, counting the rest.
        let newest_two: usize = page_len(history, 2).await;
        let page = history
            .recent("#лобби", None, 10, newest_two)
            .await
            .unwrap();
        assert_eq!((stamps(&page.rows), page.left), (vec![290, 300], 28));
        let page = history
            .recent("#лобби", None, 10, newest_two - 1)
            .await
            .unwrap();
        assert_eq!((stamps(&page.rows), page.left), (vec![300], 29));
        // The newest line goes even when it alone is over the bound.
        let page = history.recent("#лобби", None, 10, 0).await.unwrap();
        assert_eq!((stamps(&page.rows), page.left), (vec![300], 29));
    }

    /// The global cap: one client alternating rooms and lines is bounded
    /// in all, the newest lines of all rooms are kept, and a lower cap at
    /// start applies at once. `reopen` starts the same store with a cap.
    pub(crate) async fn a_global_cap_keeps_the_newest_lines(reopen: impl Fn(u64) -> History) {
        let history = reopen(10);
        for at in 1..=40 {
            history.offer(row(
                &format!("#Комната{}", at % 25),
                at,
                TEXTS[at as usize % 6],
            ));
        }
        settled(&history).await;
        assert_eq!(
            kept_everywhere(&history).await,
            (31..=40).collect::<Vec<u64>>()
        );
        history.shutdown().await;
        let history = reopen(4);
        // Applied by the writer at start.
        for _ in 0..200 {
            if kept_everywhere(&history).await.len() == 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(kept_everywhere(&history).await, [37, 38, 39, 40]);
        history.shutdown().await;
    }

    /// Every kept stamp of the rooms the cap test uses, in order.
    async fn kept_everywhere(history: &History) -> Vec<u64> {
        let mut all = Vec::new();
        for room in 0..25 {
            let page = history
                .recent(&format!("#комната{room}"), None, 500, usize::MAX)
                .await
                .unwrap();
            all.extend(stamps(&page.rows));
        }
        all.sort_unstable();
        all
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_history_keeps_a_global_cap() {
        let store = Arc::new(MemHistory::default());
        a_global_cap_keeps_the_newest_lines(|max_lines| {
            let mut settings = settings();
            settings.max_lines = max_lines;
            History::start(store.clone(), settings, Arc::new(SystemClock)).unwrap()
        })
        .await;
    }

    /// The room's kept stamps, read again (bounded) until there are `n`.
    async fn kept_when(history: &History, room_key: &str, n: usize) -> Vec<u64> {
        let mut kept = Vec::new();
        for _ in 0..200 {
            let page = history
                .recent(room_key, None, 500, usize::MAX)
                .await
                .unwrap();
            kept = stamps(&page.rows);
            if kept.len() == n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        kept
    }

    async fn page_len(history: &History, n: u32) -> usize {
        let page = history.recent("#лобби", None, n, usize::MAX).await.unwrap();
        page.rows.iter().map(Row::history_line_len).sum()
    }

    /// The scheduling policies of the writer threads (of every history the
    /// tests run), read from `/proc/self/task/<tid>/stat` (field 41),
    /// found by their name.
    #[cfg(target_os = "linux")]
    fn writer_policies() -> Vec<u32> {
        let mut policies = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let path = task.unwrap().path();
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if comm.trim_end() != "tlschat-history" {
                continue;
            }
            // Gone meanwhile (another test's writer).
            let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
                continue;
            };
            // The fields after the name (field 2, in parentheses) start at 3.
            let (_, after_name) = stat.rsplit_once(") ").unwrap();
            policies.push(after_name.split(' ').nth(41 - 3).unwrap().parse().unwrap());
        }
        policies
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_runs_at_idle_priority() {
        const SCHED_IDLE: u32 = 5;
        let history = History::in_memory(settings(), Arc::new(SystemClock));
        history.offer(row("#Мир", 1, "привет мир"));
        settled(&history).await;
        // Other tests' writers may have just started, not yet lowered.
        let mut policies = Vec::new();
        for _ in 0..200 {
            policies = writer_policies();
            if !policies.is_empty() && policies.iter().all(|p| *p == SCHED_IDLE) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            !policies.is_empty() && policies.iter().all(|p| *p == SCHED_IDLE),
            "{policies:?}"
        );
        history.shutdown().await;
    }

    #[test]
    fn history_line_len_is_the_encoded_length() {
        let mut r = row("#Лобби", 1_764_907_200_123, "👩‍👩‍👧 привет");
        r.action = true;
        let line = format!("HISTORY {} {} *{} {}\n", r.room, r.at, r.nick, r.text);
        assert_eq!(r.history_line_len(), line.len());
        r.action = false;
        r.at = 7;
        let line = format!("HISTORY {} {} {} {}\n", r.room, r.at, r.nick, r.text);
        assert_eq!(r.history_line_len(), line.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_reads_count_what_they_leave_out() {
        let history = History::in_memory(settings(), Arc::new(SystemClock));
        reads_with_left(&history).await;
        history.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn count_retention_keeps_exactly_the_newest_n_per_room() {
        let mut settings = settings();
        settings.lines_per_room = 7;
        let history = History::in_memory(settings, Arc::new(SystemClock));
        for at in 1..=40 {
            history.offer(row("#Ünï", at, TEXTS[(at % 6) as usize]));
            if at.is_multiple_of(2) {
                history.offer(row("#二", at, "日本語 テキスト"));
            }
        }
        settled(&history).await;
        let page = history.recent("#ünï", None, 100, usize::MAX).await.unwrap();
        assert_eq!((stamps(&page.rows), page.left), ((34..=40).collect(), 0));
        let page = history.recent("#二", None, 100, usize::MAX).await.unwrap();
        assert_eq!(stamps(&page.rows), [28, 30, 32, 34, 36, 38, 40]);
        // A lower limit applies to what is kept at once.
        history.set_retention(3, Duration::MAX);
        assert_eq!(kept_when(&history, "#二", 3).await, [36, 38, 40]);
        assert_eq!(kept_when(&history, "#ünï", 3).await, [38, 39, 40]);
        history.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lowered_line_count_applies_at_start() {
        let store = Arc::new(MemHistory::default());
        let rows: Vec<Row> = (1..=10)
            .map(|at| row("#Ωμέγα", at, TEXTS[at as usize % 6]))
            .collect();
        store.append(&shared(rows), 500).unwrap();
        let mut settings = settings();
        settings.lines_per_room = 4;
        let history = History::start(store, settings, Arc::new(SystemClock)).unwrap();
        assert_eq!(kept_when(&history, "#ωμέγα", 4).await, [7, 8, 9, 10]);
        assert_eq!(history.high_water(), 10);
        history.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn age_retention_follows_the_injected_clock() {
        let start = UNIX_EPOCH + Duration::from_secs(1_795_528_800);
        let clock = Arc::new(ManualClock::new(start));
        let ms = |t: Duration| (start + t).duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let store = Arc::new(MemHistory::default());
        let rows: Vec<Row> = (0..10)
            .map(|day| {
                row(
                    "#мир",
                    ms(Duration::from_secs(day * 86_400)),
                    TEXTS[day as usize % 6],
                )
            })
            .collect();
        store.append(&shared(rows), 500).unwrap();
        clock.advance(Duration::from_secs(12 * 86_400));
        let history = History::start(
            store.clone(),
            HistorySettings::new(500, Duration::from_secs(5 * 86_400)),
            clock.clone(),
        )
        .unwrap();
        // At start: days 0..=6 are older than 5 days at day 12.
        let expect_days = |days: std::ops::RangeInclusive<u64>| -> Vec<u64> {
            days.map(|d| ms(Duration::from_secs(d * 86_400))).collect()
        };
        assert_eq!(kept_when(&history, "#мир", 3).await, expect_days(7..=9));
        assert_eq!(history.high_water(), ms(Duration::from_secs(9 * 86_400)));
        // A reload changing the age runs it again at the clock's new time.
        clock.advance(Duration::from_secs(86_400));
        history.set_retention(500, Duration::from_secs(5 * 86_400 + 1));
        assert_eq!(kept_when(&history, "#мир", 2).await, expect_days(8..=9));
        // Zero is no age limit (not "older than now").
        history.set_retention(500, Duration::ZERO);
        history.offer(row("#мир", ms(Duration::from_secs(10 * 86_400)), "שלום"));
        assert_eq!(kept_when(&history, "#мир", 3).await.len(), 3);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(kept_when(&history, "#мир", 3).await.len(), 3);
        history.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_drops_and_counts_without_blocking() {
        let (history, gate) = stalled(10).await;
        let started = Instant::now();
        for at in 2..=1000 {
            history.offer(row("#r", at, "שלום עולם"));
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(history.dropped(), 1000 - 1 - 10);
        // By bytes too.
        let small_gate = Arc::new(HistoryGate::new());
        small_gate.close();
        let mut settings = self::settings();
        settings.queue_bytes = 200;
        settings.gate = Some(small_gate.clone());
        let small = History::in_memory(settings, Arc::new(SystemClock));
        small.offer(row("#r", 1, "e\u{301}te"));
        in_flight(&small, 1).await;
        small.offer(row("#r", 2, &"ж".repeat(60)));
        small.offer(row("#r", 3, &"ж".repeat(60)));
        assert_eq!(small.dropped(), 1);
        small_gate.open();
        gate.open();
        settled(&history).await;
        let page = history.recent("#r", None, 100, usize::MAX).await.unwrap();
        assert_eq!(stamps(&page.rows), (1..=11).collect::<Vec<u64>>());
        history.shutdown().await;
        small.shutdown().await;
    }

    /// A store whose writes fail while told to, and which notes when
    /// each write started and how many rows it had.
    #[derive(Default)]
    struct Flaky {
        kept: MemHistory,
        failing: AtomicBool,
        panicking: AtomicBool,
        appends: Mutex<Vec<(Instant, usize)>>,
        /// The line counts of the retention passes asked for.
        retains: Mutex<Vec<Option<u32>>>,
    }

    impl HistoryStore for Flaky {
        fn high_water(&self) -> Result<u64, StoreError> {
            self.kept.high_water()
        }
        fn count(&self) -> Result<u64, StoreError> {
            self.kept.count()
        }
        fn trim_oldest(&self, n: u64) -> Result<u64, StoreError> {
            self.kept.trim_oldest(n)
        }
        fn append(&self, rows: &[Arc<Row>], lines_per_room: u32) -> Result<i64, StoreError> {
            self.appends
                .lock()
                .unwrap()
                .push((Instant::now(), rows.len()));
            assert!(!self.panicking.load(Ordering::SeqCst), "a bug in the store");
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::Write {
                    path: "history.db".into(),
                    reason: "диск полон".to_owned(),
                });
            }
            self.kept.append(rows, lines_per_room)
        }
        fn retain(&self, oldest_ms: u64, lines_per_room: Option<u32>) -> Result<u64, StoreError> {
            self.retains.lock().unwrap().push(lines_per_room);
            self.kept.retain(oldest_ms, lines_per_room)
        }
        fn slice(
            &self,
            room_key: &str,
            range: Range,
            limit: usize,
            queued_from: Option<u64>,
        ) -> Result<Slice, HistoryError> {
            self.kept.slice(room_key, range, limit, queued_from)
        }
        fn search(
            &self,
            room_key: &str,
            words: &[SearchWord],
            limit: usize,
        ) -> Result<Vec<Row>, HistoryError> {
            self.kept.search(room_key, words, limit)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_is_counted_and_the_writer_goes_on() {
        let store = Arc::new(Flaky::default());
        store.failing.store(true, Ordering::SeqCst);
        let history = History::start(store.clone(), settings(), Arc::new(SystemClock)).unwrap();
        for at in 1..=3 {
            history.offer(row("#r", at, "שלום עולם"));
        }
        settled(&history).await;
        assert_eq!(history.dropped(), 3);
        store.failing.store(false, Ordering::SeqCst);
        for at in 4..=5 {
            history.offer(row("#r", at, "日本語 テキスト"));
        }
        settled(&history).await;
        let page = history.recent("#r", None, 50, usize::MAX).await.unwrap();
        assert_eq!((stamps(&page.rows), page.left), (vec![4, 5], 0));
        assert_eq!(history.dropped(), 3);
        history.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_writer_stops_the_queue_and_reads_go_on() {
        let store = Arc::new(Flaky::default());
        let history = History::start(store.clone(), settings(), Arc::new(SystemClock)).unwrap();
        history.offer(row("#r", 1, "привет мир"));
        settled(&history).await;
        store.panicking.store(true, Ordering::SeqCst);
        history.offer(row("#r", 2, "שלום עולם"));
        writer_died(&history).await;
        for at in 3..=5 {
            history.offer(row("#r", at, "日本語 テキスト"));
        }
        assert_eq!(history.dropped(), 4);
        assert!(history.inner.shared.lock_queue().pending.is_empty());
        let page = history.recent("#r", None, 50, usize::MAX).await.unwrap();
        assert_eq!((stamps(&page.rows), page.left), (vec![1], 0));
        history.shutdown().await;
    }

    /// A history in memory whose queue holds `queue_rows`, its writer
    /// stalled at a closed gate with row 1.
    async fn stalled(queue_rows: usize) -> (History, Arc<HistoryGate>) {
        let gate = Arc::new(HistoryGate::new());
        gate.close();
        let mut settings = settings();
        settings.queue_rows = queue_rows;
        settings.gate = Some(gate.clone());
        let history = History::in_memory(settings, Arc::new(SystemClock));
        history.offer(row("#r", 1, "привет мир"));
        // The writer takes the first row and waits at the gate with it.
        in_flight(&history, 1).await;
        (history, gate)
    }

    /// Waits (bounded) until the writer thread has died.
    async fn writer_died(history: &History) {
        for _ in 0..200 {
            if history.inner.shared.writer_dead.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the history writer did not die");
    }

    async fn warnings_when(history: &History, n: u64) -> u64 {
        let warnings = || history.inner.shared.drop_warnings.load(Ordering::SeqCst);
        for _ in 0..200 {
            if warnings() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        warnings()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn offer_only_counts_and_the_writer_or_a_read_logs_the_drops() {
        // Stalled at a closed gate: the writer logs what offer dropped.
        let (history, gate) = stalled(2).await;
        for at in 2..=10 {
            history.offer(row("#r", at, "שלום עולם"));
        }
        assert_eq!(warnings_when(&history, 1).await, 1);
        let shared = &history.inner.shared;
        assert_eq!(shared.dropped_reported.load(Ordering::SeqCst), 7);
        gate.open();
        history.shutdown().await;

        // A dead writer logs nothing more: offer does not either, a read does.
        let store = Arc::new(Flaky::default());
        let history =
            History::start(store.clone(), self::settings(), Arc::new(SystemClock)).unwrap();
        store.panicking.store(true, Ordering::SeqCst);
        history.offer(row("#r", 1, "日本語 テキスト"));
        writer_died(&history).await;
        for at in 2..=4 {
            history.offer(row("#r", at, "e\u{301}te"));
        }
        let shared = &history.inner.shared;
        assert_eq!(shared.drop_warnings.load(Ordering::SeqCst), 0);
        assert_eq!(history.dropped(), 4);
        history.recent("#r", None, 5, usize::MAX).await.unwrap();
        assert_eq!(shared.drop_warnings.load(Ordering::SeqCst), 1);
        assert_eq!(shared.dropped_reported.load(Ordering::SeqCst), 4);
        history.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reload_runs_a_retention_pass_only_when_the_limits_tighten_or_the_age_changes() {
        let store = Arc::new(Flaky::default());
        let history = History::start(store.clone(), settings(), Arc::new(SystemClock)).unwrap();
        let passes = |n: usize| {
            let store = store.clone();
            async move {
                for _ in 0..100 {
                    if store.retains.lock().unwrap().len() >= n {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                // Time for a pass that should not come.
                tokio::time::sleep(Duration::from_millis(50)).await;
                store.retains.lock().unwrap().clone()
            }
        };
        assert_eq!(passes(1).await, [Some(500)]);
        history.set_retention(500, Duration::MAX);
        history.set_retention(900, Duration::MAX);
        history.offer(row("#Мир", 1, "привет мир"));
        assert_eq!(passes(2).await, [Some(500)]);
        history.set_retention(300, Duration::MAX);
        assert_eq!(passes(2).await, [Some(500), Some(300)]);
        history.set_retention(300, Duration::from_secs(86_400));
        assert_eq!(passes(3).await, [Some(500), Some(300), None]);
        history.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_batches_are_written_without_a_pause() {
        let gate = Arc::new(HistoryGate::new());
        gate.close();
        let mut settings = settings();
        settings.gate = Some(gate.clone());
        let store = Arc::new(Flaky::default());
        let history = History::start(store.clone(), settings, Arc::new(SystemClock)).unwrap();
        history.offer(row("#r", 1, "привет мир"));
        in_flight(&history, 1).await;
        for at in 2..=4001 {
            history.offer(row("#r", at, TEXTS[at as usize % 6]));
        }
        gate.open();
        settled(&history).await;
        let appends = store.appends.lock().unwrap().clone();
        let sizes: Vec<usize> = appends.iter().map(|(_, n)| *n).collect();
        assert_eq!(sizes, [1, BATCH_ROWS, BATCH_ROWS, BATCH_ROWS, BATCH_ROWS]);
        let quickest = appends[1..]
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .min()
            .unwrap();
        assert!(quickest < MIN_COMMIT_GAP, "{quickest:?}");
        assert_eq!(history.dropped(), 0);
        history.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_merge_queued_and_in_flight_rows_once() {
        let gate = Arc::new(HistoryGate::new());
        let mut settings = settings();
        settings.gate = Some(gate.clone());
        let store = Arc::new(MemHistory::default());
        let history = History::start(store.clone(), settings, Arc::new(SystemClock)).unwrap();
        for at in 1..=5 {
            history.offer(row("#r", at, TEXTS[at as usize % 6]));
        }
        settled(&history).await;
        gate.close();
        for at in 6..=8 {
            history.offer(row("#r", at, "مرحبا"));
        }
        in_flight(&history, 3).await;
        for at in 9..=10 {
            history.offer(row("#r", at, "日本語 テキスト"));
        }
        // In flight and already in the store (a commit racing the read):
        // still one row per stamp, counted once.
        store
            .append(&[Arc::new(row("#r", 7, "مرحبا"))], 500)
            .unwrap();
        let page = history.recent("#r", None, 50, usize::MAX).await.unwrap();
        assert_eq!((stamps(&page.rows), page.left), ((1..=10).collect(), 0));
        let page = history.recent("#r", None, 4, usize::MAX).await.unwrap();
        assert_eq!((stamps(&page.rows), page.left), (vec![7, 8, 9, 10], 6));
        let page = history.since("#r", 6, 2, usize::MAX).await.unwrap();
        assert_eq!((stamps(&page.rows), page.left), (vec![9, 10], 2));
        let page = history.recent("#r", Some(8), 3, usize::MAX).await.unwrap();
        assert_eq!((stamps(&page.rows), page.left), (vec![5, 6, 7], 4));
        gate.open();
        history.shutdown().await;
        let page = store.slice("#r", Range::Before(None), 50, None).unwrap();
        assert_eq!(page.total, 10);
    }

    /// Waits (bounded) until the writer holds `n` rows at the gate.
    async fn in_flight(history: &History, n: usize) {
        for _ in 0..200 {
            if history.inner.shared.lock_queue().in_flight.len() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the writer did not take {n} rows");
    }

    async fn every_read_place(history: &History) -> tokio::sync::OwnedSemaphorePermit {
        let reads = history.inner.shared.reads.clone();
        reads
            .acquire_many_owned(CONCURRENT_READS as u32)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_looks_at_the_queue_once_it_may_run_and_copies_only_its_rows() {
        let gate = Arc::new(HistoryGate::new());
        gate.close();
        let mut settings = settings();
        settings.gate = Some(gate.clone());
        let history = History::in_memory(settings, Arc::new(SystemClock));
        history.offer(row("#r", 1, "привет мир"));
        in_flight(&history, 1).await;
        for at in 2..=100 {
            history.offer(row("#r", at, TEXTS[at as usize % 6]));
            history.offer(row("#other", at, "שלום"));
        }
        let queued = history
            .inner
            .shared
            .queued("#r", Range::Before(Some(100)), 5);
        assert_eq!(
            stamps(
                &queued
                    .newest
                    .iter()
                    .map(|r| Row::clone(r))
                    .collect::<Vec<_>>()
            ),
            [99, 98, 97, 96, 95]
        );
        assert_eq!((queued.count, queued.oldest), (99, Some(1)));
        // Every read place taken: a read waits without a look at the queue,
        // so rows offered meanwhile are in its answer.
        let busy = every_read_place(&history).await;
        let reader = {
            let history = history.clone();
            tokio::spawn(async move { history.recent("#r", None, 3, usize::MAX).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        for at in 101..=102 {
            history.offer(row("#r", at, "日本語 テキスト"));
        }
        drop(busy);
        let page = reader.await.unwrap().unwrap();
        assert_eq!((stamps(&page.rows), page.left), (vec![100, 101, 102], 99));
        gate.open();
        history.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_waits_for_its_turn_a_bounded_time() {
        let history = History::in_memory(settings(), Arc::new(SystemClock));
        history.offer(row("#r", 1, "привет мир"));
        settled(&history).await;
        let busy = every_read_place(&history).await;
        let started = Instant::now();
        let waited =
            tokio::time::timeout(READ_WAIT * 3, history.recent("#r", None, 5, usize::MAX)).await;
        assert!(matches!(waited, Ok(Err(HistoryError::Busy))), "{waited:?}");
        assert!(started.elapsed() >= READ_WAIT);
        // Searches have a place of their own.
        let hits = history
            .search("#r", words(&["мир"]), 5, usize::MAX)
            .await
            .unwrap();
        assert_eq!(stamps(&hits.rows), [1]);
        drop(busy);
        let page = history.recent("#r", None, 5, usize::MAX).await.unwrap();
        assert_eq!(stamps(&page.rows), [1]);
        history.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_running_search_does_not_delay_page_reads() {
        let history = History::in_memory(settings(), Arc::new(SystemClock));
        history.offer(row("#Мир", 1, "привет мир"));
        history.offer(row("#Мир", 2, "שלום עולם"));
        settled(&history).await;
        // A search holding its place as long as it may run.
        let searching = history.inner.shared.searches.clone();
        let held = searching
            .acquire_many_owned(CONCURRENT_SEARCHES as u32)
            .await
            .unwrap();
        let started = Instant::now();
        for _ in 0..CONCURRENT_READS + 1 {
            let page = history.recent("#мир", None, 5, usize::MAX).await.unwrap();
            assert_eq!(stamps(&page.rows), [1, 2]);
            let page = history.since("#мир", 1, 5, usize::MAX).await.unwrap();
            assert_eq!(stamps(&page.rows), [2]);
        }
        assert!(started.elapsed() < READ_WAIT, "{:?}", started.elapsed());
        // Another search waits a bounded time, then is told the history is busy.
        let started = Instant::now();
        let waited = tokio::time::timeout(
            READ_WAIT * 3,
            history.search("#мир", words(&["שלום"]), 5, usize::MAX),
        )
        .await;
        assert!(matches!(waited, Ok(Err(HistoryError::Busy))), "{waited:?}");
        assert!(started.elapsed() >= READ_WAIT);
        drop(held);
        let hits = history
            .search("#мир", words(&["שלום"]), 5, usize::MAX)
            .await
            .unwrap();
        assert_eq!(stamps(&hits.rows), [2]);
        history.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_drains_the_queue_and_refuses_later_rows() {
        let store = Arc::new(MemHistory::default());
        let history = History::start(store.clone(), settings(), Arc::new(SystemClock)).unwrap();
        for at in 1..=3000 {
            history.offer(row(&format!("#r{}", at % 20), at, TEXTS[at as usize % 6]));
        }
        history.shutdown().await;
        assert_eq!(store.lock().len(), 3000);
        history.offer(row("#r1", 5000, "поздно"));
        assert_eq!(history.dropped(), 1);
        // A closed gate at shutdown: it gives up after the drain limit.
        let gate = Arc::new(HistoryGate::new());
        gate.close();
        let mut settings = settings();
        settings.gate = Some(gate);
        let history = History::in_memory(settings, Arc::new(SystemClock));
        history.offer(row("#r", 1, "e\u{301}te"));
        history.offer(row("#r", 2, "e\u{301}te"));
        let started = Instant::now();
        history.shutdown().await;
        assert!(started.elapsed() < DRAIN_LIMIT + Duration::from_secs(1));
        assert_eq!(history.dropped(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn search_words_are_checked_and_bounded() {
        let history = History::in_memory(settings(), Arc::new(SystemClock));
        for at in 1..=30 {
            history.offer(row("#r", at, "привет мир"));
        }
        settled(&history).await;
        let hits = history
            .search("#r", words(&["ПРИВЕТ"]), 20, usize::MAX)
            .await
            .unwrap();
        assert_eq!(hits.rows.len(), 20);
        assert!(hits.more);
        assert_eq!(hits.rows[0].at, 30);
        let hits = history
            .search("#r", words(&["при*", "мир"]), 20, usize::MAX)
            .await
            .unwrap();
        assert_eq!((hits.rows.len(), hits.more), (20, true));
        let hits = history
            .search("#r", words(&["мир"]), 30, usize::MAX)
            .await
            .unwrap();
        assert_eq!((hits.rows.len(), hits.more), (30, false));
        // Bounded in bytes of FOUND lines too: the newest that fit, and more.
        let three =
            "FOUND #r 30 *ällice привет мир\n".len() + 2 * "FOUND #r 29 ällice привет мир\n".len();
        let hits = history
            .search("#r", words(&["мир"]), 30, three)
            .await
            .unwrap();
        assert_eq!((stamps(&hits.rows), hits.more), (vec![30, 29, 28], true));
        let hits = history
            .search("#r", words(&["мир"]), 30, three - 1)
            .await
            .unwrap();
        assert_eq!((stamps(&hits.rows), hits.more), (vec![30, 29], true));
        let hits = history.search("#r", words(&["мир"]), 30, 1).await.unwrap();
        assert_eq!((stamps(&hits.rows), hits.more), (vec![30], true));
        for bad in [&["пр*"][..], &["*"], &[""], &[]] {
            assert!(matches!(
                SearchWord::parse_all(bad),
                Err(HistoryError::Words(_))
            ));
        }
        history.shutdown().await;
    }

    #[test]
    fn search_words_keep_their_text_and_mark_prefixes() {
        let word = SearchWord::parse("\"NEAR*\"*").unwrap();
        assert_eq!((word.text.as_str(), word.prefix), ("\"NEAR*\"", true));
        let word = SearchWord::parse("日本語*").unwrap();
        assert_eq!((word.text.as_str(), word.prefix), ("日本語", true));
        assert!(SearchWord::parse("日本*").is_err());
        assert!(SearchWord::parse("e\u{301}*").is_err());
        // The prefix is the last token's: too short after a separator.
        for short in ["a.b*", "x--*", "日本語.ть*", "abc-de*", "--*", "ab\u{301}*"] {
            assert!(SearchWord::parse(short).is_err(), "{short}");
        }
        let word = SearchWord::parse("x.при*").unwrap();
        assert_eq!((word.text.as_str(), word.prefix), ("x.при", true));
        assert!(SearchWord::parse("abc--*").is_ok());
        let word = SearchWord::parse("OR").unwrap();
        assert_eq!((word.text.as_str(), word.prefix), ("OR", false));
    }
}
