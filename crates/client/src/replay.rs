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
            received: 0,
            shown: 0,
            oldest: None,
            newest_shown: None,
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

    /// A `HISTORYEND`: the entry that ends the batch, if one was expected.
    /// After the replay of the room rejoined after a reconnect, when lines
    /// were left out and the oldest one sent is newer than the cursor, the
    /// catch-up `/history since <cursor>` is queued (once).
    pub(crate) fn history_end(&mut self, room: &str, sent: u32, left: u32) -> Option<HistoryEnd> {
        let history_mode = self.history_mode;
        let asked = self.asks > 0;
        let r = self.room(room);
        let open = match r.batch.take() {
            Some(open) => open,
            None if asked => Open::new(Batch::Asked, None),
            None => return None,
        };
        let catch_up = open
            .floor
            .filter(|_| open.kind == Batch::Replay && open.may_catch_up && history_mode)
            .filter(|_| open.left_a_gap(left));
        match (open.kind, catch_up) {
            (_, Some(floor)) => {
                r.batch = Some(Open {
                    ceiling: open.oldest,
                    ..Open::new(Batch::CatchUp, Some(floor))
                });
            }
            (Batch::Asked, None) => {}
            (Batch::Replay | Batch::CatchUp, None) => {
                r.unsettled = false;
                r.cursor = r.cursor.max(r.newest);
            }
        }
        if let Some(floor) = catch_up {
            let ask = HistoryAsk::Since {
                at: floor,
                n: MAX_CATCH_UP,
            };
            self.requests.push(ask.to_command());
        }
        if open.kind == Batch::Asked {
            self.asks = self.asks.saturating_sub(1);
        }
        Some(HistoryEnd {
            room: room.to_owned(),
            batch: open.kind,
            sent,
            left,
            shown: open.shown,
            oldest: open.oldest,
            newest_shown: open.newest_shown,
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
        assert_eq!(stamps(&shown), [300, 350]);
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
        assert_eq!(stamps(&shown), [120, 250], "only the missed lines");
        assert!(matches!(
            shown.last(),
            Some(EntryKind::HistoryEnd(e)) if e.batch == Batch::CatchUp
        ));
        assert_eq!(chat.lines.cursor("#lobby"), Some(401));
        assert_eq!(
            chat.timeline(),
            ["l100", "l110", "h120", "h250", "h300", "h350", "--", "l400", "l401"]
        );
        assert!(chat.lines.take_requests().is_empty());
    }

    #[test]
    fn a_second_drop_during_the_catch_up_loses_nothing() {
        let mut chat = Chat::new();
        chat.read(&[join(), "HISTORYEND #lobby 0 0".to_owned(), live(100)]);
        chat.reconnect();
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
        assert_eq!(stamps(&shown), [150]);
        assert_eq!(chat.lines.cursor("#lobby"), Some(320));
    }

    #[test]
    fn no_catch_up_without_a_gap_a_cursor_or_history_mode() {
        // Nothing left out past the cursor: the replay covered the gap.
        let mut chat = Chat::new();
        chat.read(&[join(), "HISTORYEND #lobby 0 0".to_owned(), live(100)]);
        chat.reconnect();
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
