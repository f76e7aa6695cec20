//! What the session knows of each room's history, so that a person sees
//! every line once: which kept lines the server sends were already shown,
//! and what to ask for after a reconnect.
//!
//! ```text
//! our JOIN ─▶ Replay batch ─HISTORY…─▶ dropped if ≤ floor or ≥ first live
//!             HISTORYEND ─ gap or none after a reconnect? ─▶ "/history since <cursor>"
//!                                                   CatchUp batch ─HISTORYEND─▶ settled
//!                                     (left > 0 ─▶ "/history before <oldest>", bounded)
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
//! place only so much. The server answers a session's commands in order,
//! each `/history` or `/search` (as its parser reads the line) with exactly
//! one end line, so the answers owed are a queue: each `HISTORYEND` or
//! `FOUNDEND` ends the oldest one. An `ERROR` or a failed read said just
//! before an end line marks that answer as refused; an `ERROR` ends
//! nothing (it may answer another line).
//!
//! A catch-up answer holds the newest missed lines that fit; while it left
//! older missed lines out, the session pages back (`/history before`) in
//! at most [`CATCH_UP_ROUNDS`] rounds, then settles the cursor (saying how
//! many missed lines it does not show, if any). An empty replay after a
//! reconnect (the server may not have read it) is caught up too. A
//! catch-up the server refused or could not read leaves the cursor below
//! the gap, so the next connection asks again, and says how to load the
//! lines now.
//!
//! While a room rejoined after a reconnect is replayed and caught up, its
//! kept and live lines are held ([`Held`], bounded) and passed on in the
//! order they were said once the catch-up ended (or the connection did).

use std::collections::VecDeque;

use indexmap::IndexMap;

use crate::state::{Batch, EntryKind, HistoryEnd};
use crate::ClientEvent;
use tlschat_protocol::history::{MAX_CATCH_UP, MAX_HISTORY_LINES, MAX_SEARCH_HITS};
use tlschat_protocol::{check_text, Command, ErrorCode, HistoryAsk, Kept, LOBBY, MAX_CLIENT_LINE};

/// Rooms whose cursor and batch are kept; past it, the one touched least
/// recently is forgotten.
pub(crate) const MAX_ROOMS: usize = 64;

/// Answers the client waits for at once, at most (past it, a further
/// `/history` or `/search` is not expected: its answer is not shown, and a
/// catch-up is not sent).
const MAX_EXPECTED: usize = 16;

/// Answers a catch-up takes at most: the first, then pages back towards
/// the cursor.
const CATCH_UP_ROUNDS: u8 = 10;

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
    /// The replay of the lobby a login passes through on its way back to
    /// another room after a reconnect: not shown, and its cursor stays.
    passing: bool,
    received: u32,
    shown: u32,
    oldest: Option<u64>,
    newest_shown: Option<u64>,
}

impl Open {
    /// A replay that left `left` older lines out and whose oldest line is
    /// newer than the floor (or that sent none): lines between the floor
    /// and what it sent are missing.
    fn left_a_gap(&self, left: u32) -> bool {
        left > 0
            && match (self.floor, self.oldest) {
                (Some(floor), Some(oldest)) => oldest > floor,
                (Some(_), None) => true,
                (None, _) => false,
            }
    }

    fn new(kind: Batch, floor: Option<u64>) -> Open {
        Open {
            kind,
            floor,
            ceiling: None,
            may_catch_up: false,
            passing: false,
            received: 0,
            shown: 0,
            oldest: None,
            newest_shown: None,
        }
    }
}

/// An answer the server owes the session, in the order it will come (the
/// server answers a session's commands strictly in order).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    /// A `/history` sent by the user or a front end: about the room the
    /// session is in when the server reads it.
    Asked,
    /// A `/search` sent by the user or a front end.
    Search,
    /// The session's own catch-up of a room (case-folded), round `round`:
    /// lines above `floor` and below `ceiling` were missed.
    CatchUp {
        room: String,
        floor: u64,
        ceiling: Option<u64>,
        round: u8,
        /// Missed lines the first answer left out and no later round
        /// brought yet.
        missing: u32,
    },
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
    /// The answers this connection's server owes, oldest first (a replay
    /// is not here: it follows our `JOIN` at once).
    expected: VecDeque<Expected>,
    /// The hits of the current `/search` answer so far.
    hits: u32,
    /// The server said it could not read history: the answer it ends next
    /// is empty for that reason.
    read_failed: bool,
    /// An `ERROR` came while an answer was owed: the answer ended next,
    /// if empty, was refused.
    refused: bool,
    /// Lines the session is to send (the catch-up).
    requests: Vec<String>,
}

fn key(room: &str) -> String {
    room.to_ascii_lowercase()
}

/// The server's word that a history read failed (`INFO history NOT
/// available …`), after which it ends the batch with nothing.
const READ_FAILED: &str = "history NOT available";

impl Tracker {
    /// A new connection: in history mode or not; `rejoin` is the room the
    /// session goes back to when this is a reconnect. Batches and answers
    /// owed by the old connection are over; cursors stay.
    pub(crate) fn connected(&mut self, history_mode: bool, rejoin: Option<&str>) {
        self.history_mode = history_mode;
        self.rejoin = rejoin.map(key);
        self.expected.clear();
        self.hits = 0;
        self.read_failed = false;
        self.refused = false;
        self.requests.clear();
        for room in self.rooms.values_mut() {
            room.batch = None;
        }
    }

    /// The room was rejoined after a reconnect and its replay or catch-up
    /// is not over: its lines are held to be passed on in order.
    pub(crate) fn holding(&self, room: &str) -> bool {
        let k = key(room);
        let replay = self
            .rooms
            .get(&k)
            .and_then(|r| r.batch.as_ref())
            .is_some_and(|open| {
                open.kind == Batch::Replay && open.may_catch_up && open.floor.is_some()
            });
        replay
            || self
                .expected
                .iter()
                .any(|e| matches!(e, Expected::CatchUp { room, .. } if *room == k))
    }

    /// The room's batch being received answers a `/history` asked.
    fn answering_asked(&self, room: &str) -> bool {
        self.rooms
            .get(room)
            .and_then(|r| r.batch.as_ref())
            .is_some_and(|open| open.kind == Batch::Asked)
    }

    /// The connection is in history mode.
    pub(crate) fn history_mode(&self) -> bool {
        self.history_mode
    }

    /// The newest stamp seen in `room` with nothing missing before it.
    #[cfg(test)]
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

    /// Notes an answer owed, unless too many are owed already; whether it
    /// was noted.
    fn expect(&mut self, expected: Expected) -> bool {
        let room = self.expected.len() < MAX_EXPECTED;
        if room {
            self.expected.push_back(expected);
        }
        room
    }

    /// A line the session sends: a `/history` or `/search` is answered in
    /// its turn, by a server in history mode. What counts is what the
    /// server makes of the line: its text rule, its length limit and its
    /// parser.
    pub(crate) fn sent(&mut self, line: &str) {
        if !self.history_mode || line.len() >= MAX_CLIENT_LINE || check_text(line).is_err() {
            return;
        }
        match Command::parse(line) {
            Ok(Command::History(_)) => self.expect(Expected::Asked),
            Ok(Command::Search(_)) => self.expect(Expected::Search),
            _ => false,
        };
    }

    /// Queues a catch-up command, unless its answer could not be told
    /// apart (too many owed); whether it was queued.
    fn request(&mut self, ask: HistoryAsk, expected: Expected) -> bool {
        let queued = self.expect(expected);
        if queued {
            self.requests.push(ask.to_command());
        }
        queued
    }

    /// Our own `JOIN` of `room`: in history mode, its replay follows.
    /// Replayed lines up to the cursor were shown before. The login's
    /// lobby on the way back to another room after a reconnect is passed
    /// through: its replay is not shown and its cursor stays.
    pub(crate) fn joined(&mut self, room: &str) {
        if !self.history_mode {
            return;
        }
        let may_catch_up = self.rejoin.as_deref() == Some(key(room).as_str());
        if may_catch_up {
            self.rejoin = None;
        }
        if self.rejoin.is_some() && room.eq_ignore_ascii_case(LOBBY) {
            let passing = Open {
                passing: true,
                ..Open::new(Batch::Replay, None)
            };
            let r = self.room(room);
            r.batch = Some(passing);
            // Lines said while passing through do not cover what was
            // missed before them: the cursor waits for the next join.
            r.unsettled = true;
            return;
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

    /// An `INFO` line: the server's word that a history read failed marks
    /// the batch it ends next as failed.
    pub(crate) fn info(&mut self, text: &str) {
        if text.starts_with(READ_FAILED) {
            self.read_failed = true;
        }
    }

    /// An `ERROR` of a kind a `/history` or `/search` is refused with
    /// (`rate-limited`, `bad-argument`, `unknown-command`) while an answer
    /// is owed: the answer ended next, if empty, was refused. It ends
    /// nothing itself (it may answer another line).
    pub(crate) fn error(&mut self, code: ErrorCode) {
        let refuses = matches!(
            code,
            ErrorCode::RateLimited | ErrorCode::BadArgument | ErrorCode::UnknownCommand
        );
        if refuses && !self.expected.is_empty() {
            self.refused = true;
        }
    }

    /// Why the answer ending now with `sent` lines brought none, if the
    /// server said so before its end; forgotten at every end line.
    fn take_refusal(&mut self, sent: u32) -> Option<&'static str> {
        let failed = std::mem::take(&mut self.read_failed);
        let refused = std::mem::take(&mut self.refused);
        match (sent, failed, refused) {
            (0, true, _) => Some("history not available"),
            (0, _, true) => Some("server busy"),
            _ => None,
        }
    }

    /// A `HISTORY` line: whether to pass it on (expected, and not shown
    /// before).
    pub(crate) fn history(&mut self, kept: &Kept<'_>) -> bool {
        let front = self.expected.front().cloned();
        let r = self.room(kept.room);
        if r.batch.is_none() {
            r.batch = match front {
                Some(Expected::Asked) => Some(Open::new(Batch::Asked, None)),
                Some(Expected::CatchUp {
                    room,
                    floor,
                    ceiling,
                    ..
                }) if room == key(kept.room) => Some(Open {
                    ceiling,
                    ..Open::new(Batch::CatchUp, Some(floor))
                }),
                _ => return false,
            };
        }
        let first_live = r.first_live;
        let Some(open) = r.batch.as_mut().filter(|open| !open.passing) else {
            return false;
        };
        open.received = open.received.saturating_add(1);
        if open.received > MAX_CATCH_UP {
            return false;
        }
        let at = kept.at;
        open.oldest = Some(open.oldest.map_or(at, |o| o.min(at)));
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
        open.newest_shown = open.newest_shown.max(Some(at));
        let kind = open.kind;
        if kind != Batch::Asked {
            r.newest = r.newest.max(Some(at));
        }
        true
    }

    /// A `HISTORYEND`: the entry that ends the batch, if one was expected
    /// (the replay open in the room, else the oldest answer owed), and a
    /// notice for the person, if any.
    pub(crate) fn history_end(
        &mut self,
        room: &str,
        sent: u32,
        left: u32,
    ) -> Option<(HistoryEnd, Option<String>)> {
        let refusal = self.take_refusal(sent);
        let replay = self
            .rooms
            .get(&key(room))
            .and_then(|r| r.batch.as_ref())
            .is_some_and(|open| open.kind == Batch::Replay);
        // `covered`: the lines left out were seen already, or the
        // catch-up brings them: no count of them is shown.
        let (open, covered, notice) = if replay {
            let open = self.room(room).batch.take()?;
            if open.passing {
                return None;
            }
            let (covered, notice) = self.replay_end(room, &open, sent, left);
            (open, covered, notice)
        } else {
            if self.expected.front()? == &Expected::Search {
                return None;
            }
            // It answers the oldest request owed, whatever its room; a
            // catch-up answered about another room (the person moved on
            // before it was read) brought nothing and settles nothing.
            let expected = self.expected.pop_front()?;
            if matches!(&expected, Expected::CatchUp { room: r, .. } if *r != key(room)) {
                return None;
            }
            let open = self.room(room).batch.take();
            let kind = match expected {
                Expected::CatchUp { .. } => Batch::CatchUp,
                _ => Batch::Asked,
            };
            let open = open.unwrap_or_else(|| Open::new(kind, None));
            let notice = match expected {
                Expected::CatchUp {
                    floor,
                    round,
                    missing,
                    ..
                } => self.catch_up_end(room, &open, floor, round, (sent, left, missing), refusal),
                _ => None,
            };
            // A catch-up's own count is of lines it brings next, or of
            // the missed lines the notice names.
            let covered = open.kind == Batch::CatchUp;
            (open, covered, notice)
        };
        let end = HistoryEnd {
            room: room.to_owned(),
            batch: open.kind,
            sent,
            left: if covered { 0 } else { left },
            shown: open.shown,
            oldest: open.oldest,
            newest_shown: open.newest_shown,
        };
        Some((end, notice))
    }

    /// The end of a room's replay. After the replay of the room rejoined
    /// after a reconnect, when it sent nothing (it may not have been read)
    /// or lines were left out and the oldest one sent is newer than the
    /// cursor, the catch-up `/history since <cursor>` is queued (once);
    /// else the room settles (a replay is never refused: one the server
    /// could not read is an empty one). Returns whether the
    /// lines it left out are covered (seen before, at or below the cursor,
    /// or brought by the catch-up), and a notice when the catch-up cannot
    /// be sent.
    fn replay_end(
        &mut self,
        room: &str,
        open: &Open,
        sent: u32,
        left: u32,
    ) -> (bool, Option<String>) {
        let catch_up = open
            .floor
            .filter(|_| open.may_catch_up && self.history_mode)
            .filter(|_| sent == 0 || open.left_a_gap(left));
        match catch_up {
            Some(floor) => {
                let ask = HistoryAsk::Since {
                    at: floor,
                    n: MAX_CATCH_UP,
                };
                let expected = Expected::CatchUp {
                    room: key(room),
                    floor,
                    ceiling: open.oldest,
                    round: 0,
                    missing: 0,
                };
                if self.request(ask, expected) {
                    (true, None)
                } else {
                    (
                        false,
                        Some(not_loaded(room, floor, "too many requests waiting")),
                    )
                }
            }
            None => {
                self.settle(room);
                (open.floor.is_some() && !open.left_a_gap(left), None)
            }
        }
    }

    /// The end of one round of a room's catch-up (`sent`, `left`, and the
    /// missed lines still `missing` before it). While lines were left out
    /// above the cursor, the next round asks for the page before the
    /// oldest line received (at most [`CATCH_UP_ROUNDS`] rounds); then the
    /// room settles. An answer refused or not read leaves the cursor below
    /// the gap (the next connection asks again) and says how to load the
    /// lines now; an empty one settles (nothing more is kept). Returns a
    /// notice of missed lines not shown.
    fn catch_up_end(
        &mut self,
        room: &str,
        open: &Open,
        floor: u64,
        round: u8,
        (sent, left, missing): (u32, u32, u32),
        refusal: Option<&str>,
    ) -> Option<String> {
        if let Some(why) = refusal {
            return Some(not_loaded(room, floor, why));
        }
        if sent == 0 {
            self.settle(room);
            return (round > 0).then(|| not_shown(room, missing)).flatten();
        }
        let reached = open.oldest.is_some_and(|oldest| oldest <= floor);
        let missing = if round == 0 {
            left
        } else {
            missing.saturating_sub(open.received)
        };
        let more = !reached && left > 0 && missing > 0;
        if let Some(oldest) = open.oldest.filter(|_| more && round + 1 < CATCH_UP_ROUNDS) {
            let ask = HistoryAsk::Before {
                at: oldest,
                n: MAX_HISTORY_LINES,
            };
            let expected = Expected::CatchUp {
                room: key(room),
                floor,
                ceiling: Some(oldest),
                round: round + 1,
                missing,
            };
            if self.request(ask, expected) {
                return None;
            }
        }
        self.settle(room);
        more.then(|| not_shown(room, missing)).flatten()
    }

    /// The room's replay and catch-up are over: the cursor follows what was
    /// passed on.
    fn settle(&mut self, room: &str) {
        let r = self.room(room);
        r.unsettled = false;
        r.cursor = r.cursor.max(r.newest);
    }

    /// A `FOUND` line: whether to pass it on (a `/search` is answered now,
    /// and its hits are within bounds).
    pub(crate) fn found(&mut self) -> bool {
        if self.expected.front() != Some(&Expected::Search) || self.hits >= MAX_SEARCH_HITS {
            return false;
        }
        self.hits += 1;
        true
    }

    /// A `FOUNDEND`: whether to pass it on (it ends the `/search` answered
    /// now).
    pub(crate) fn found_end(&mut self) -> bool {
        // What was said before an end line belongs to its answer.
        self.take_refusal(0);
        if self.expected.front() != Some(&Expected::Search) {
            return false;
        }
        self.expected.pop_front();
        self.hits = 0;
        true
    }
}

/// The notice for missed lines of `room` a catch-up did not load now
/// (`why`): the cursor stays at `floor`, so the next connection asks again.
fn not_loaded(room: &str, floor: u64, why: &str) -> String {
    format!("missed lines of {room} not loaded now ({why}); /history since {floor} loads them")
}

/// The notice for `missing` earlier missed lines of `room` a catch-up
/// settled without; none when nothing is missing.
fn not_shown(room: &str, missing: u32) -> Option<String> {
    match missing {
        0 => None,
        1 => Some(format!("1 earlier missed line of {room} is not shown")),
        n => Some(format!("{n} earlier missed lines of {room} are not shown")),
    }
}

/// Events held while a room rejoined after a reconnect catches up, at most
/// this many (past it they are passed on as they are).
const MAX_HELD: usize = 2 * MAX_CATCH_UP as usize;

/// The kept and live lines of a room rejoined after a reconnect, held
/// from its replay until its catch-up ended, then passed on in the order
/// they were said: a front end that prints lines as they come (plain
/// mode) prints them in order too. A `/history` the person asked
/// meanwhile is passed on as it comes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held {
    /// The room held (case-folded).
    room: Option<String>,
    events: Vec<ClientEvent>,
}

impl Held {
    /// The events of one server line: those to pass on now.
    pub(crate) fn pass(&mut self, events: Vec<ClientEvent>, tracker: &Tracker) -> Vec<ClientEvent> {
        let mut now = Vec::new();
        for event in events {
            match self.room_to_hold(&event, tracker) {
                Some(room) => {
                    self.room = Some(room);
                    self.events.push(event);
                }
                None => now.push(event),
            }
        }
        let done = self.room.as_deref().is_some_and(|r| !tracker.holding(r));
        if done || self.events.len() >= MAX_HELD {
            now.extend(self.flush());
        }
        now
    }

    /// The room whose lines are held, if `event` is one of them.
    fn room_to_hold(&self, event: &ClientEvent, tracker: &Tracker) -> Option<String> {
        let ClientEvent::Line(kind) = event else {
            return None;
        };
        let room = key(kind.stamp_key()?.0);
        let asked = match kind {
            EntryKind::HistoryEnd(end) => end.batch == Batch::Asked,
            EntryKind::History(_) => tracker.answering_asked(&room),
            _ => false,
        };
        let held = self.room.as_ref() == Some(&room) || tracker.holding(&room);
        (held && !asked).then_some(room)
    }

    /// Everything held, in the order it was said.
    pub(crate) fn flush(&mut self) -> Vec<ClientEvent> {
        self.room = None;
        let mut events = std::mem::take(&mut self.events);
        events.sort_by_key(|event| {
            let stamp = match event {
                ClientEvent::Line(kind) => kind.stamp_key().map(|(_, k)| k),
                _ => None,
            };
            stamp.unwrap_or((u64::MAX, u8::MAX))
        });
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ChatState, EntryKind};
    use crate::{ClientEvent, ServerLines};

    /// Text in several scripts, combining marks and a ZWJ sequence.
    const WORLD: &str = "Привет שלום مرحبا 你好 👩‍👩‍👧 e\u{301}";

    /// A session in history mode for `alice`, and the chat it feeds.
    struct Chat {
        lines: ServerLines,
        state: ChatState,
    }

    impl Chat {
        fn new() -> Chat {
            Chat {
                lines: ServerLines::with_history("alice", "#lobby"),
                state: ChatState::new("h:1", "alice"),
            }
        }

        /// Server lines as the session reads them; the entries passed on.
        fn read(&mut self, lines: &[String]) -> Vec<EntryKind> {
            let mut shown = Vec::new();
            for line in lines {
                for event in self.lines.read(line).expect("a line") {
                    if let ClientEvent::Line(kind) = &event {
                        shown.push(kind.clone());
                    }
                    self.state.apply(&event);
                }
            }
            shown
        }

        /// A new connection, as after a drop: login into the lobby.
        fn reconnect(&mut self) {
            for event in self.lines.take_held() {
                self.state.apply(&event);
            }
            self.lines.connected("alice", true, true);
        }

        /// The stamps of the room lines in the scrollback, in order, with
        /// `h` for a kept line and `l` for a live one.
        fn timeline(&self) -> Vec<String> {
            self.state
                .entries
                .iter()
                .filter_map(|e| match &e.kind {
                    EntryKind::History(k) => Some(format!("h{}", k.at)),
                    EntryKind::Message { at: Some(at), .. } => Some(format!("l{at}")),
                    EntryKind::HistoryEnd(_) => Some("--".to_owned()),
                    _ => None,
                })
                .collect()
        }
    }

    fn live(at: u64) -> String {
        format!("@{at} MSG #lobby bob {WORLD} {at}")
    }

    fn kept(at: u64) -> String {
        format!("HISTORY #lobby {at} bob {WORLD} {at}")
    }

    fn join() -> String {
        "JOIN #lobby alice".to_owned()
    }

    /// Room lines and separators passed on, as [`Chat::timeline`] writes
    /// them.
    fn labels(shown: &[EntryKind]) -> Vec<String> {
        shown
            .iter()
            .filter_map(|k| match k {
                EntryKind::History(k) => Some(format!("h{}", k.at)),
                EntryKind::Message { at: Some(at), .. } => Some(format!("l{at}")),
                EntryKind::HistoryEnd(_) => Some("--".to_owned()),
                _ => None,
            })
            .collect()
    }

    fn stamps(shown: &[EntryKind]) -> Vec<u64> {
        shown
            .iter()
            .filter_map(|k| match k {
                EntryKind::History(k) => Some(k.at),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn stamped_and_kept_lines_are_parsed() {
        let mut chat = Chat::new();
        let shown = chat.read(&[
            join(),
            format!("@1764907200123 ACTION #lobby bob {WORLD}"),
            format!("HISTORY #lobby 1764907200001 *carol {WORLD}"),
            "@12a MSG #lobby bob not stamped".to_owned(),
            "HISTORYEND #lobby 1 0".to_owned(),
        ]);
        assert_eq!(
            shown[1],
            EntryKind::Action {
                room: "#lobby".into(),
                nick: "bob".into(),
                text: WORLD.into(),
                at: Some(1_764_907_200_123)
            }
        );
        let EntryKind::History(k) = &shown[2] else {
            panic!("{shown:?}");
        };
        assert!(k.action && k.nick == "carol" && k.text == WORLD);
        assert_eq!(
            k.time().map(|t| t.timestamp_millis()),
            Some(1_764_907_200_001)
        );
        // A malformed stamp leaves a line that is no known word: ignored.
        assert_eq!(shown.len(), 4, "{shown:?}");
        let EntryKind::HistoryEnd(end) = &shown[3] else {
            panic!("{shown:?}");
        };
        assert_eq!(
            (end.batch, end.sent, end.left, end.shown),
            (Batch::Replay, 1, 0, 1)
        );
    }

    #[test]
    fn a_replay_overlapping_live_lines_shows_each_line_once_in_order() {
        let mut chat = Chat::new();
        let shown = chat.read(&[
            join(),
            "USERS #lobby alice bob".to_owned(),
            live(200),
            kept(100),
            kept(150),
            kept(200),
            live(201),
            kept(201),
            "HISTORYEND #lobby 4 0".to_owned(),
            live(202),
        ]);
        assert_eq!(stamps(&shown), [100, 150]);
        assert_eq!(
            chat.timeline(),
            ["h100", "h150", "--", "l200", "l201", "l202"]
        );
        assert_eq!(chat.lines.cursor("#LOBBY"), Some(202));
    }

    #[test]
    fn a_reconnect_catches_up_from_the_cursor_once_and_fills_the_gap() {
        let mut chat = Chat::new();
        chat.read(&[
            join(),
            "HISTORYEND #lobby 0 0".to_owned(),
            live(100),
            live(110),
        ]);
        assert_eq!(chat.lines.cursor("#lobby"), Some(110));
        chat.reconnect();
        // The replay reaches back only to 300 (more were left out), and a
        // live line came meanwhile: lines 111..300 are missing.
        let shown = chat.read(&[
            join(),
            live(400),
            kept(300),
            kept(350),
            "HISTORYEND #lobby 2 7".to_owned(),
        ]);
        assert!(stamps(&shown).is_empty(), "held until the catch-up ended");
        assert_eq!(
            chat.lines.take_requests(),
            ["/history since 110 500"],
            "asked once, from the cursor"
        );
        assert_eq!(chat.lines.take_requests(), Vec::<String>::new());
        // Until the answer, the cursor waits below the gap.
        chat.read(&[live(401)]);
        assert_eq!(chat.lines.cursor("#lobby"), Some(110));
        let shown = chat.read(&[
            kept(110),
            kept(120),
            kept(250),
            kept(300),
            kept(400),
            "HISTORYEND #lobby 5 0".to_owned(),
        ]);
        // Only the missed lines, then the held ones, in the order said.
        assert_eq!(
            labels(&shown),
            ["--", "h120", "h250", "h300", "h350", "--", "l400", "l401"]
        );
        assert!(shown
            .iter()
            .any(|k| matches!(k, EntryKind::HistoryEnd(e) if e.batch == Batch::CatchUp)));
        assert_eq!(chat.lines.cursor("#lobby"), Some(401));
        assert_eq!(
            chat.timeline(),
            ["l100", "l110", "h120", "h250", "h300", "h350", "--", "l400", "l401"]
        );
        assert!(chat.lines.take_requests().is_empty());
    }

    #[test]
    fn a_second_drop_during_the_catch_up_loses_nothing() {
        let mut chat = reconnected();
        chat.read(&[
            join(),
            kept(300),
            "HISTORYEND #lobby 1 9".to_owned(),
            live(310),
        ]);
        assert_eq!(chat.lines.take_requests(), ["/history since 100 500"]);
        // Dropped before the answer: the cursor did not pass the gap.
        chat.reconnect();
        assert_eq!(chat.lines.cursor("#lobby"), Some(100));
        chat.read(&[join(), kept(320), "HISTORYEND #lobby 1 12".to_owned()]);
        assert_eq!(chat.lines.take_requests(), ["/history since 100 500"]);
        let shown = chat.read(&[kept(150), kept(320), "HISTORYEND #lobby 2 0".to_owned()]);
        assert_eq!(stamps(&shown), [150, 320]);
        assert_eq!(chat.lines.cursor("#lobby"), Some(320));
    }

    /// A chat whose cursor is at 100, reconnected.
    fn reconnected() -> Chat {
        let mut chat = Chat::new();
        chat.read(&[join(), "HISTORYEND #lobby 0 0".to_owned(), live(100)]);
        chat.reconnect();
        chat
    }

    /// A chat whose cursor is at 100, reconnected, with a replay that left
    /// a gap after it: the catch-up is queued.
    fn with_a_gap(before_replay: &[&str]) -> Chat {
        let mut chat = reconnected();
        for line in before_replay {
            chat.lines.sent(line);
        }
        chat.read(&[join(), kept(300), "HISTORYEND #lobby 1 9".to_owned()]);
        assert_eq!(chat.lines.take_requests(), ["/history since 100 500"]);
        chat
    }

    fn end_of(shown: &[EntryKind]) -> Option<(Batch, u32)> {
        shown.iter().find_map(|k| match k {
            EntryKind::HistoryEnd(e) => Some((e.batch, e.left)),
            _ => None,
        })
    }

    #[test]
    fn a_history_typed_before_the_catch_up_is_answered_first_as_asked() {
        let mut chat = with_a_gap(&["/history 5"]);
        // The user's /history was read first: its answer is no catch-up.
        let shown = chat.read(&[kept(290), kept(300), "HISTORYEND #lobby 2 40".to_owned()]);
        assert_eq!(stamps(&shown), [290, 300]);
        assert_eq!(end_of(&shown), Some((Batch::Asked, 40)));
        assert_eq!(chat.lines.cursor("#lobby"), Some(100), "no catch-up yet");
        let shown = chat.read(&[kept(150), kept(300), "HISTORYEND #lobby 2 0".to_owned()]);
        assert_eq!(stamps(&shown), [150, 300], "with the replay's, held");
        assert_eq!(end_of(&shown), Some((Batch::CatchUp, 0)));
        assert_eq!(chat.lines.cursor("#lobby"), Some(300));
        // A catch-up answered about another room ends it all the same.
        let mut chat = with_a_gap(&[]);
        chat.read(&[
            "JOIN #dev alice".to_owned(),
            "HISTORYEND #dev 0 0".to_owned(),
        ]);
        let shown = chat.read(&["HISTORYEND #dev 0 0".to_owned()]);
        assert_eq!(stamps(&shown), [300], "only what was held is let go");
        chat.lines.sent("/history");
        let shown = chat.read(&[
            format!("HISTORY #dev 5 bob {WORLD}"),
            "HISTORYEND #dev 1 0".to_owned(),
        ]);
        assert_eq!(end_of(&shown), Some((Batch::Asked, 0)));
        assert_eq!(chat.lines.cursor("#lobby"), Some(100));
        // Nothing more is owed.
        assert!(chat
            .read(&[kept(120), "HISTORYEND #lobby 1 0".to_owned()])
            .is_empty());
    }

    /// The status notices among `shown`.
    fn notices(shown: &[EntryKind]) -> Vec<String> {
        shown
            .iter()
            .filter_map(|k| match k {
                EntryKind::Status(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    const BUSY: &str = "ERROR rate-limited 3 too many history reads; try again in 3 s";

    #[test]
    fn only_end_lines_end_an_answer_owed() {
        // A refused search (its ERROR, then its end), then an unrelated
        // ERROR: the catch-up after them is still taken as such.
        let mut chat = with_a_gap(&["/search привет"]);
        chat.read(&[BUSY.to_owned(), "FOUNDEND #lobby 0 0".to_owned()]);
        chat.read(&["ERROR unknown-command /hlep: no such command".to_owned()]);
        let shown = chat.read(&[kept(150), kept(300), "HISTORYEND #lobby 2 0".to_owned()]);
        assert_eq!(stamps(&shown), [150, 300]);
        assert_eq!(end_of(&shown), Some((Batch::CatchUp, 0)));
        assert_eq!(chat.lines.cursor("#lobby"), Some(300));
        // Owed exactly when the server's parser sees a /history or
        // /search: text that merely starts so is said, not asked.
        for said in [" /history", "/historyx", "//history", "/search\u{1b}x"] {
            chat.lines.sent(said);
        }
        assert!(chat
            .read(&[kept(120), "HISTORYEND #lobby 1 0".to_owned()])
            .is_empty());
        // With as many answers owed as are tracked, no catch-up is sent:
        // its answer could not be told apart.
        let mut chat = reconnected();
        chat.read(&[join()]);
        for _ in 0..MAX_EXPECTED {
            chat.lines.sent("/history 5");
        }
        let shown = chat.read(&[kept(300), "HISTORYEND #lobby 1 9".to_owned()]);
        assert!(chat.lines.take_requests().is_empty());
        assert_eq!(chat.lines.cursor("#lobby"), Some(100));
        assert_eq!(notices(&shown).len(), 1, "{shown:?}");
    }

    #[test]
    fn a_refused_or_failed_catch_up_leaves_the_cursor_and_says_so() {
        for (before, why) in [
            (BUSY, "server busy"),
            (
                "INFO history NOT available: the database is busy",
                "not available",
            ),
        ] {
            let mut chat = with_a_gap(&[]);
            let shown = chat.read(&[
                before.to_owned(),
                "HISTORYEND #lobby 0 0".to_owned(),
                live(500),
            ]);
            assert_eq!(chat.lines.cursor("#lobby"), Some(100));
            let said = notices(&shown);
            assert!(
                said.len() == 1 && said[0].contains(why) && said[0].contains("/history since 100"),
                "{said:?}"
            );
            // The refused end, then what was held, in order.
            assert_eq!(labels(&shown), ["--", "h300", "--", "l500"]);
            // The next connection asks again from the same cursor.
            chat.reconnect();
            chat.read(&[join(), "HISTORYEND #lobby 0 0".to_owned()]);
            assert_eq!(chat.lines.take_requests(), ["/history since 100 500"]);
        }
    }

    #[test]
    fn an_empty_replay_after_a_reconnect_catches_up() {
        // A replay the server could not read is an empty one.
        let mut chat = reconnected();
        let shown = chat.read(&[join(), live(400), "HISTORYEND #lobby 0 0".to_owned()]);
        assert_eq!(labels(&shown), ["--"], "the live line is held: {shown:?}");
        assert_eq!(chat.lines.take_requests(), ["/history since 100 500"]);
        chat.read(&[live(401)]);
        assert_eq!(chat.lines.cursor("#lobby"), Some(100));
        let shown = chat.read(&[kept(150), kept(400), "HISTORYEND #lobby 2 0".to_owned()]);
        assert_eq!(labels(&shown), ["--", "h150", "l400", "l401"]);
        assert_eq!(chat.lines.cursor("#lobby"), Some(401));
        // An empty catch-up: nothing newer than the cursor is kept.
        let mut chat = reconnected();
        chat.read(&[join(), "HISTORYEND #lobby 0 0".to_owned()]);
        assert_eq!(chat.lines.take_requests(), ["/history since 100 500"]);
        let shown = chat.read(&["HISTORYEND #lobby 0 0".to_owned(), live(402)]);
        assert!(notices(&shown).is_empty(), "{shown:?}");
        assert_eq!(chat.lines.cursor("#lobby"), Some(402));
    }

    #[test]
    fn a_failed_search_does_not_spoil_the_next_answer() {
        let mut chat = with_a_gap(&["/search привет"]);
        chat.read(&[
            "INFO history NOT available: the database is busy".to_owned(),
            "FOUNDEND #lobby 0 0".to_owned(),
        ]);
        let shown = chat.read(&[kept(150), kept(300), "HISTORYEND #lobby 2 0".to_owned()]);
        assert_eq!(stamps(&shown), [150, 300]);
        assert_eq!(chat.lines.cursor("#lobby"), Some(300));
        assert!(notices(&shown).is_empty(), "{shown:?}");
    }

    #[test]
    fn an_empty_later_round_settles_and_says_what_is_not_shown() {
        let mut chat = with_a_gap(&[]);
        chat.read(&[kept(250), kept(260), "HISTORYEND #lobby 2 60".to_owned()]);
        assert_eq!(chat.lines.take_requests(), ["/history before 250 200"]);
        let shown = chat.read(&["HISTORYEND #lobby 0 0".to_owned(), live(500)]);
        assert_eq!(chat.lines.cursor("#lobby"), Some(500));
        assert_eq!(stamps(&shown), [250, 260, 300]);
        let said = notices(&shown);
        assert!(
            said.len() == 1 && said[0].contains("60 earlier missed lines"),
            "{said:?}"
        );
    }

    #[test]
    fn a_catch_up_pages_back_to_the_cursor_in_bounded_rounds() {
        let mut chat = with_a_gap(&[]);
        // The newest that fit; 60 older missed lines left out.
        let shown = chat.read(&[kept(250), kept(260), "HISTORYEND #lobby 2 60".to_owned()]);
        assert!(stamps(&shown).is_empty(), "held until the last round");
        assert_eq!(chat.lines.take_requests(), ["/history before 250 200"]);
        assert_eq!(chat.lines.cursor("#lobby"), Some(100));
        let shown = chat.read(&[
            kept(90),
            kept(100),
            kept(120),
            "HISTORYEND #lobby 3 4".to_owned(),
        ]);
        assert_eq!(stamps(&shown), [120, 250, 260, 300], "reached the cursor");
        assert!(chat.lines.take_requests().is_empty());
        assert_eq!(chat.lines.cursor("#lobby"), Some(300));
        assert_eq!(
            chat.timeline(),
            ["l100", "h120", "h250", "h260", "h300", "--"]
        );
        // A server that never reaches the cursor: bounded, then said.
        let mut chat = with_a_gap(&[]);
        let mut rounds = 0;
        let last = loop {
            let shown = chat.read(&[kept(289 - rounds), "HISTORYEND #lobby 1 1000".to_owned()]);
            rounds += 1;
            if chat.lines.take_requests().is_empty() {
                break shown;
            }
            assert!(rounds < 20);
        };
        assert_eq!(rounds, u64::from(CATCH_UP_ROUNDS));
        assert!(
            last.iter().any(
                |k| matches!(k, EntryKind::Status(s) if s.contains("991 earlier missed lines"))
            ),
            "{last:?}"
        );
        assert_eq!(chat.lines.cursor("#lobby"), Some(300));
    }

    #[test]
    fn a_second_drop_before_the_rejoin_still_goes_back_to_the_room() {
        let dev = |at: u64| format!("@{at} MSG #dev bob {WORLD} {at}");
        let mut chat = Chat::new();
        chat.read(&[
            join(),
            "HISTORYEND #lobby 0 0".to_owned(),
            "JOIN #dev alice".to_owned(),
            "HISTORYEND #dev 0 0".to_owned(),
            dev(100),
        ]);
        chat.reconnect();
        assert_eq!(chat.lines.rejoin_room(), "#dev");
        // The login's lobby, then lost before the JOIN of #dev came.
        chat.read(&[join(), "HISTORYEND #lobby 0 0".to_owned()]);
        assert_eq!(chat.lines.room(), "#lobby");
        chat.reconnect();
        assert_eq!(chat.lines.rejoin_room(), "#dev", "still on the way back");
        chat.read(&[
            join(),
            "HISTORYEND #lobby 0 0".to_owned(),
            "JOIN #dev alice".to_owned(),
            format!("HISTORY #dev 300 bob {WORLD}"),
            "HISTORYEND #dev 1 9".to_owned(),
        ]);
        assert_eq!(chat.lines.take_requests(), ["/history since 100 500"]);
        assert_eq!(chat.lines.cursor("#dev"), Some(100));
        // The lobby passed through on the way is not shown, its cursor
        // stays.
        let lobby = chat.lines.cursor("#lobby");
        chat.reconnect();
        let shown = chat.read(&[join(), kept(1000), "HISTORYEND #lobby 1 5".to_owned()]);
        assert!(
            shown.iter().all(|k| matches!(k, EntryKind::Join { .. })),
            "{shown:?}"
        );
        assert_eq!(chat.lines.cursor("#lobby"), lobby);
        chat.read(&[
            "JOIN #dev alice".to_owned(),
            "HISTORYEND #dev 0 0".to_owned(),
        ]);
        // Back in #dev: the next drop goes back there as usual.
        chat.reconnect();
        assert_eq!(chat.lines.rejoin_room(), "#dev");
        chat.read(&[join(), "JOIN #rust alice".to_owned()]);
        chat.reconnect();
        assert_eq!(chat.lines.rejoin_room(), "#rust", "a later /join moved on");
    }

    #[test]
    fn passing_through_the_lobby_keeps_its_cursor() {
        let dev = |at: u64| format!("@{at} MSG #dev bob {WORLD} {at}");
        let mut chat = Chat::new();
        chat.read(&[
            join(),
            "HISTORYEND #lobby 0 0".to_owned(),
            live(100),
            "JOIN #dev alice".to_owned(),
            "HISTORYEND #dev 0 0".to_owned(),
            dev(100),
        ]);
        chat.reconnect();
        // A lobby line said while the login passes through.
        chat.read(&[
            join(),
            live(150),
            "HISTORYEND #lobby 0 0".to_owned(),
            "JOIN #dev alice".to_owned(),
        ]);
        assert_eq!(chat.lines.cursor("#lobby"), Some(100));
        // Back in the lobby later: what was said before it is not dropped.
        chat.read(&["JOIN #lobby alice".to_owned()]);
        let shown = chat.read(&[kept(120), kept(150), "HISTORYEND #lobby 2 0".to_owned()]);
        assert_eq!(stamps(&shown), [120, 150]);
        assert_eq!(chat.lines.cursor("#lobby"), Some(150));
    }

    #[test]
    fn stamps_are_read_only_in_history_mode_and_only_before_room_lines() {
        let mut v1 = ServerLines::new("alice", "#lobby");
        assert!(
            v1.read(&live(100)).unwrap().next().is_none(),
            "unknown in v1"
        );
        let mut chat = Chat::new();
        let shown = chat.read(&[
            "@100 JOIN #lobby bob".to_owned(),
            "@101 INFO hi".to_owned(),
            live(102),
        ]);
        assert!(
            matches!(&shown[..], [EntryKind::Message { at: Some(102), .. }]),
            "{shown:?}"
        );
    }

    /// The separator a batch's end shows.
    fn separator_of(shown: &[EntryKind]) -> Option<String> {
        shown.iter().find_map(|k| match k {
            EntryKind::HistoryEnd(e) => e.separator(),
            _ => None,
        })
    }

    #[test]
    fn separators_count_only_lines_neither_seen_nor_coming() {
        // After a reconnect, lines left out at or below the cursor were seen.
        let mut chat = reconnected();
        let shown = chat.read(&[
            join(),
            kept(90),
            kept(130),
            "HISTORYEND #lobby 2 40".to_owned(),
        ]);
        assert_eq!(separator_of(&shown).as_deref(), Some("— history —"));
        // Lines the catch-up brings are not counted either.
        let mut chat = with_a_gap(&[]);
        let shown = chat.read(&[kept(200), "HISTORYEND #lobby 1 0".to_owned()]);
        assert_eq!(separator_of(&shown).as_deref(), Some("— history —"));
        assert!(shown.iter().all(|k| match k {
            EntryKind::HistoryEnd(e) => e.batch == Batch::Replay || e.separator().is_none(),
            _ => true,
        }));
        // A replay that showed nothing puts no separator at the bottom.
        let mut chat = Chat::new();
        let shown = chat.read(&[
            join(),
            live(100),
            kept(100),
            "HISTORYEND #lobby 1 5".to_owned(),
        ]);
        assert_eq!(separator_of(&shown), None);
        // A newcomer's replay counts what is left, and says it is kept.
        let mut chat = Chat::new();
        let shown = chat.read(&[join(), kept(50), "HISTORYEND #lobby 1 12".to_owned()]);
        assert_eq!(
            separator_of(&shown).as_deref(),
            Some("— 12 earlier lines kept —")
        );
    }

    #[test]
    fn no_catch_up_without_a_gap_a_cursor_or_history_mode() {
        // Nothing left out past the cursor: the replay covered the gap.
        let mut chat = reconnected();
        let shown = chat.read(&[
            join(),
            kept(90),
            kept(100),
            kept(130),
            "HISTORYEND #lobby 3 40".to_owned(),
        ]);
        assert_eq!(stamps(&shown), [130]);
        assert!(chat.lines.take_requests().is_empty());
        assert_eq!(chat.lines.cursor("#lobby"), Some(130));
        // A first connection has no cursor: a newcomer sees the replay.
        let mut chat = Chat::new();
        chat.read(&[join(), kept(300), "HISTORYEND #lobby 1 99".to_owned()]);
        assert!(chat.lines.take_requests().is_empty());
        // A v1 connection never asks, whatever a server sends.
        let mut chat = Chat::new();
        chat.read(&[join(), "HISTORYEND #lobby 0 0".to_owned(), live(100)]);
        chat.lines.connected("alice", false, true);
        let shown = chat.read(&[join(), kept(300), "HISTORYEND #lobby 1 9".to_owned()]);
        assert!(
            shown.iter().all(|k| matches!(k, EntryKind::Join { .. })),
            "{shown:?}"
        );
        assert!(chat.lines.take_requests().is_empty());
    }

    #[test]
    fn kept_lines_are_taken_only_when_expected_and_bounded() {
        let mut chat = Chat::new();
        chat.read(&[join(), "HISTORYEND #lobby 0 0".to_owned()]);
        // Nobody asked: nothing is passed on.
        assert!(chat
            .read(&[kept(5), "HISTORYEND #lobby 1 0".to_owned()])
            .is_empty());
        assert!(chat
            .read(&[
                format!("FOUND #lobby 5 bob {WORLD}"),
                "FOUNDEND #lobby 1 0".to_owned()
            ])
            .is_empty());
        // Asked: at most MAX_CATCH_UP lines of one answer.
        chat.lines.sent("/history before 100000 200");
        let flood: Vec<String> = (1..=MAX_CATCH_UP as u64 + 50).map(kept).collect();
        let shown = chat.read(&flood);
        assert_eq!(shown.len(), MAX_CATCH_UP as usize);
        let end = chat.read(&["HISTORYEND #lobby 550 0".to_owned()]);
        assert!(matches!(&end[..], [EntryKind::HistoryEnd(e)] if e.batch == Batch::Asked));
        assert!(chat.read(&[kept(7)]).is_empty(), "the answer ended");
        // A search: at most MAX_SEARCH_HITS hits, then its end.
        chat.lines.sent("/search привет");
        let hits: Vec<String> = (0..30)
            .map(|i| format!("FOUND #lobby {i} bob {WORLD}"))
            .collect();
        assert_eq!(chat.read(&hits).len(), MAX_SEARCH_HITS as usize);
        assert_eq!(chat.read(&["FOUNDEND #lobby 20 1".to_owned()]).len(), 1);
        assert!(chat.read(&hits).is_empty());
    }

    #[test]
    fn rooms_tracked_are_bounded() {
        let mut lines = ServerLines::with_history("alice", "#lobby");
        for i in 0..MAX_ROOMS as u64 + 20 {
            let room = format!("#r{i}");
            lines
                .read(&format!("JOIN {room} alice"))
                .unwrap()
                .for_each(drop);
            lines
                .read(&format!("HISTORYEND {room} 0 0"))
                .unwrap()
                .for_each(drop);
            lines
                .read(&format!("@{i} MSG {room} bob x"))
                .unwrap()
                .for_each(drop);
        }
        assert_eq!(lines.history.rooms.len(), MAX_ROOMS);
        assert_eq!(lines.cursor("#r0"), None, "the oldest is forgotten");
        let last = MAX_ROOMS as u64 + 19;
        assert_eq!(lines.cursor(&format!("#r{last}")), Some(last));
    }
}
