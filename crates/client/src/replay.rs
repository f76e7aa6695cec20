//! What the session knows of each room's history, so that a person sees
//! every line once: which kept lines the server sends were already shown,
//! and what to ask for after a reconnect.
//!
//! ```text
//! our JOIN ─▶ Replay batch ─HISTORY…─▶ dropped if ≤ floor or ≥ first live
//!             HISTORYEND ─ gap after a reconnect? ─▶ "/history since <cursor>"
//!                                                   CatchUp batch ─HISTORYEND─▶ settled
//! "@<at> MSG …" (live) ─▶ first live stamp, newest; the cursor follows
//!                         while the room is settled
//! ```
//!
//! A room's *cursor* is the newest stamp the person has seen with nothing
//! missing before it. It lives in the session, across reconnects, and does
//! not move while a room's replay or catch-up is open: a connection lost
//! again before the catch-up answered asks from the same cursor, so
//! nothing is lost (some lines may then be shown twice, never missed).
//!
//! Kept lines are taken only in a batch the client expects (the replay
//! after its own `JOIN`, its own catch-up, a `/history` or `/search` the
//! user sent) and at most [`MAX_CATCH_UP`] per batch; rooms tracked are at
//! most [`MAX_ROOMS`], so a hostile server can make the client hold or
//! place only so much.

use indexmap::IndexMap;

use crate::state::{Batch, HistoryEnd};
use tlschat_protocol::history::{MAX_CATCH_UP, MAX_SEARCH_HITS};
use tlschat_protocol::{Command, HistoryAsk, Kept};

/// Rooms whose cursor and batch are kept; past it, the one touched least
/// recently is forgotten.
pub(crate) const MAX_ROOMS: usize = 64;

/// `/history` or `/search` answers the client waits for at once, at most
/// (an unanswered one, say from a server without history, lets at most
/// this many unasked batches through).
const MAX_ASKS: u8 = 8;

/// One room's history as the session saw it.
#[derive(Debug, Clone, Default)]
struct Room {
    /// The newest stamp seen with nothing missing before it.
    cursor: Option<u64>,
    /// The newest stamp passed on since our last `JOIN` (live or replayed).
    newest: Option<u64>,
    /// The first live stamp since our last `JOIN`: replayed lines from it
    /// on were shown live.
    first_live: Option<u64>,
    /// The batch of kept lines being received, if any.
    batch: Option<Open>,
    /// A replay or catch-up is open: the cursor waits.
    unsettled: bool,
}

/// A batch being received.
#[derive(Debug, Clone)]
struct Open {
    kind: Batch,
    /// Lines at or before this were shown already.
    floor: Option<u64>,
    /// Lines at or after this were shown already (a catch-up: the replay's
    /// oldest line).
    ceiling: Option<u64>,
    /// A catch-up may follow this replay (the room the session rejoined
    /// after a reconnect).
    may_catch_up: bool,
    received: u32,
    shown: u32,
    oldest: Option<u64>,
    newest: Option<u64>,
}

impl Open {
    fn new(kind: Batch, floor: Option<u64>) -> Open {
        Open {
            kind,
            floor,
            ceiling: None,
            may_catch_up: false,
            received: 0,
            shown: 0,
            oldest: None,
            newest: None,
        }
    }
}

/// The session's history bookkeeping, across its connections.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tracker {
    /// By case-folded room name; the most recently touched last.
    rooms: IndexMap<String, Room>,
    /// The connection is in history mode (the server selected ALPN
    /// `tlschat/2`).
    history_mode: bool,
    /// The room the session rejoins after a reconnect, until its `JOIN`.
    rejoin: Option<String>,
    /// `/history` answers asked for and not ended yet.
    asks: u8,
    /// `/search` answers asked for and not ended yet, and the hits of the
    /// current one so far.
    searches: u8,
    hits: u32,
    /// Lines the session is to send (the catch-up).
    requests: Vec<String>,
}

fn key(room: &str) -> String {
    room.to_ascii_lowercase()
}

impl Tracker {
    /// A new connection: in history mode or not; `rejoin` is the room the
    /// session goes back to when this is a reconnect. Batches of the old
    /// connection are over; cursors stay.
    pub(crate) fn connected(&mut self, history_mode: bool, rejoin: Option<&str>) {
        self.history_mode = history_mode;
        self.rejoin = rejoin.map(key);
        self.asks = 0;
        self.searches = 0;
        self.hits = 0;
        self.requests.clear();
        for room in self.rooms.values_mut() {
            room.batch = None;
        }
    }

    /// The newest stamp seen in `room` with nothing missing before it.
    pub(crate) fn cursor(&self, room: &str) -> Option<u64> {
        self.rooms.get(&key(room)).and_then(|r| r.cursor)
    }

    /// The lines the session is to send now.
    pub(crate) fn take_requests(&mut self) -> Vec<String> {
        std::mem::take(&mut self.requests)
    }

    /// The room's entry, made if new and moved to the most recent place;
    /// the least recently touched room is forgotten past [`MAX_ROOMS`].
    fn room(&mut self, room: &str) -> &mut Room {
        let k = key(room);
        let entry = self.rooms.shift_remove(&k).unwrap_or_default();
        if self.rooms.len() >= MAX_ROOMS {
            self.rooms.shift_remove_index(0);
        }
        let (i, _) = self.rooms.insert_full(k, entry);
        &mut self.rooms[i]
    }

    /// A line the session sends: a `/history` or `/search` opens the wait
    /// for its answer.
    pub(crate) fn sent(&mut self, line: &str) {
        match Command::parse(line.trim_start()) {
            Ok(Command::History(_)) => self.asks = (self.asks + 1).min(MAX_ASKS),
            Ok(Command::Search(_)) => self.searches = (self.searches + 1).min(MAX_ASKS),
            _ => {}
        }
    }

    /// Our own `JOIN` of `room`: in history mode, its replay follows.
    /// Replayed lines up to the cursor were shown before.
    pub(crate) fn joined(&mut self, room: &str) {
        if !self.history_mode {
            return;
        }
        let may_catch_up = self.rejoin.as_deref() == Some(key(room).as_str());
        if may_catch_up {
            self.rejoin = None;
        }
        let r = self.room(room);
        r.newest = None;
        r.first_live = None;
        r.unsettled = true;
        let mut open = Open::new(Batch::Replay, r.cursor);
        open.may_catch_up = may_catch_up;
        r.batch = Some(open);
    }

    /// A live room line stamped `at`.
    pub(crate) fn live(&mut self, room: &str, at: u64) {
        let r = self.room(room);
        r.first_live.get_or_insert(at);
        r.newest = r.newest.max(Some(at));
        if !r.unsettled {
            r.cursor = r.cursor.max(Some(at));
        }
    }

    /// A `HISTORY` line: whether to pass it on (expected, and not shown
    /// before).
    pub(crate) fn history(&mut self, kept: &Kept<'_>) -> bool {
        let asks = self.asks;
        let r = self.room(kept.room);
        if r.batch.is_none() {
            if asks == 0 {
                return false;
            }
            r.batch = Some(Open::new(Batch::Asked, None));
        }
        let first_live = r.first_live;
        let Some(open) = r.batch.as_mut() else {
            return false;
        };
        open.received = open.received.saturating_add(1);
        if open.received > MAX_CATCH_UP {
            return false;
        }
        let at = kept.at;
        open.oldest = Some(open.oldest.map_or(at, |o| o.min(at)));
        open.newest = open.newest.max(Some(at));
        let ceiling = match open.kind {
            Batch::Asked => None,
            Batch::Replay | Batch::CatchUp => match (open.ceiling, first_live) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        };
        let seen = open.floor.is_some_and(|f| at <= f) || ceiling.is_some_and(|c| at >= c);
        if seen {
            return false;
        }
        open.shown += 1;
        let kind = open.kind;
        if kind != Batch::Asked {
            r.newest = r.newest.max(Some(at));
        }
        true
    }

    /// A `HISTORYEND`: the entry that ends the batch, if one was expected.
    /// After the replay of the room rejoined after a reconnect, when lines
    /// were left out and the oldest one sent is newer than the cursor, the
    /// catch-up `/history since <cursor>` is queued (once).
    pub(crate) fn history_end(&mut self, room: &str, sent: u32, left: u32) -> Option<HistoryEnd> {
        let history_mode = self.history_mode;
        let mut asked = self.asks > 0;
        let r = self.room(room);
        let open = match r.batch.take() {
            Some(open) => open,
            None if asked => Open::new(Batch::Asked, None),
            None => return None,
        };
        let mut catch_up = None;
        match open.kind {
            Batch::Asked => {}
            Batch::Replay => {
                let gap = match (open.floor, open.oldest) {
                    (Some(floor), Some(oldest)) => left > 0 && oldest > floor,
                    (Some(_), None) => left > 0,
                    (None, _) => false,
                };
                if gap && open.may_catch_up && history_mode {
                    catch_up = open.floor;
                }
            }
            Batch::CatchUp => {}
        }
        asked &= open.kind == Batch::Asked;
        match catch_up {
            Some(floor) => {
                let mut next = Open::new(Batch::CatchUp, Some(floor));
                next.ceiling = open.oldest;
                r.batch = Some(next);
            }
            None if open.kind != Batch::Asked => {
                r.unsettled = false;
                r.cursor = r.cursor.max(r.newest);
            }
            None => {}
        }
        if let Some(floor) = catch_up {
            self.requests.push(
                HistoryAsk::Since {
                    at: floor,
                    n: MAX_CATCH_UP,
                }
                .to_command(),
            );
        }
        if asked {
            self.asks -= 1;
        }
        Some(HistoryEnd {
            room: room.to_owned(),
            batch: open.kind,
            sent,
            left,
            shown: open.shown,
            oldest: open.oldest,
            newest: open.newest,
        })
    }

    /// A `FOUND` line: whether to pass it on (a `/search` is waiting, and
    /// its hits are within bounds).
    pub(crate) fn found(&mut self) -> bool {
        if self.searches == 0 || self.hits >= MAX_SEARCH_HITS {
            return false;
        }
        self.hits += 1;
        true
    }

    /// A `FOUNDEND`: whether to pass it on (it ends a `/search` asked for).
    pub(crate) fn found_end(&mut self) -> bool {
        if self.searches == 0 {
            return false;
        }
        self.searches -= 1;
        self.hits = 0;
        true
    }
}
