//! `ChatState`: what a client knows about the chat, built only from what
//! the server sent. Shared by the plain mode, the terminal UI and the GUI.
//!
//! The session task delivers [`ClientEvent`]s, each server line already
//! parsed into an [`EntryKind`]; [`ChatState::apply`] folds each into the
//! state (the room the session says we are in, its members, connection
//! status) and appends the [`Entry`] a front end shows. Front ends only
//! render; they never decide who is where.
//!
//! Everything here is built from what a possibly hostile server sent, so
//! all of it is bounded: the scrollback by [`SCROLLBACK`] entries and
//! `SCROLLBACK_BYTES`, the member list by `MAX_MEMBERS` (with
//! constant-time updates, keyed by the case-folded nickname).
//!
//! `RENAME <old> <new>` renames a member (keeping its role mark) and, when
//! `<old>` is us, our own nickname ([`renames_self`], the one rule the
//! session's reading shares); `USERS` entries carry an `@` for moderators,
//! which [`Members`] keeps beside the nickname for front ends.
//!
//! History (a server in history mode, see `replay.rs` for what the session
//! drops as already seen): live room lines carry the server's stamp
//! (`Message::at`); a kept line the server sends back is an
//! [`EntryKind::History`] whose [`Entry::time`] is when it was said, placed
//! among the entries by its stamp ([`position`]: before the live lines
//! that came meanwhile, never twice); [`EntryKind::HistoryEnd`] closes each
//! batch and becomes the separator between history and live lines; of the
//! markers of earlier kept lines only the topmost stays
//! ([`outdate_markers`]). A
//! `/search` answer ([`EntryKind::Found`], [`EntryKind::FoundEnd`]) is a
//! block appended as it came (newest first), not filed by stamp.
//! [`ChatState::older_history`] gives the command that loads the lines
//! before the oldest one shown, once per batch.

use std::collections::VecDeque;
use std::mem::size_of;

use chrono::{DateTime, Local};
use indexmap::IndexMap;

use crate::ClientEvent;
use tlschat_protocol::history::REPLAY_LINES;
use tlschat_protocol::names::split_mark;
use tlschat_protocol::{HistoryAsk, Mark, Nick, ServerLine};

/// How many entries the scrollback keeps at most.
pub const SCROLLBACK: usize = 10_000;

/// How much memory the scrollback's entries may take, counted as their
/// heap allocations (see [`EntryKind::cost`]): a server that sends 1 MiB
/// lines fills it with a few dozen entries instead of [`SCROLLBACK`] MiB.
pub(crate) const SCROLLBACK_BYTES: usize = 64 << 20;

/// How many members of the current room the client tracks. Far above the
/// server's default cap on clients; past it, further members are not
/// listed (the room still works) and [`Members::is_capped`] says so.
pub(crate) const MAX_MEMBERS: usize = 16_384;

/// How far back from the newest entry [`position`] looks for where a kept
/// line belongs: the whole scrollback, and no further whatever a server
/// sends.
const PLACE_SCAN: usize = SCROLLBACK;

/// Rooms whose oldest shown kept line [`ChatState`] remembers for
/// [`ChatState::older_history`].
const OLDER_ROOMS: usize = 64;

/// A kept room line the server sent from its history (`HISTORY`, or a
/// `/search` hit's `FOUND`), not yet sanitized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub room: String,
    /// The server's stamp: unix milliseconds, unique within the room.
    pub at: u64,
    pub nick: String,
    /// Said with `/me`.
    pub action: bool,
    pub text: String,
}

impl Kept {
    /// When it was said, in local time (the stamp's own time).
    pub fn time(&self) -> Option<DateTime<Local>> {
        stamp_time(self.at)
    }
}

/// A stamp (unix milliseconds) as local time; `None` past chrono's range.
pub(crate) fn stamp_time(at: u64) -> Option<DateTime<Local>> {
    let ms = i64::try_from(at).ok()?;
    DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&Local))
}

/// Which exchange a batch of kept lines answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// The replay after our `JOIN` of the room.
    Replay,
    /// The session's own `/history since <cursor>` after a reconnect: the
    /// lines missed while away that the replay did not reach.
    CatchUp,
    /// An answer to a `/history` sent by the user or a front end.
    Asked,
}

/// The end of a batch of kept lines (`HISTORYEND`), with what the session
/// passed on of it: a front end's separator between history and live lines,
/// and where to ask for older lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEnd {
    pub room: String,
    pub batch: Batch,
    /// Lines the server said it sent.
    pub sent: u32,
    /// Older kept lines of the asked range it left out (ask for them with
    /// `/history before <oldest>`).
    pub left: u32,
    /// Lines of the batch passed on as [`EntryKind::History`] (the others
    /// were already shown).
    pub shown: u32,
    /// The oldest stamp among the batch's lines, shown or not (where to
    /// ask for older ones).
    pub oldest: Option<u64>,
    /// The newest stamp among the lines shown (the separator goes after
    /// it).
    pub newest_shown: Option<u64>,
}

impl HistoryEnd {
    /// The separator's words: `— history —`, or with the count of earlier
    /// kept lines left out; `None` where no separator is shown (a replay
    /// that showed nothing, which would put it below everything; a
    /// catch-up or asked batch with nothing left out: the replay's
    /// separator already stands below all history).
    pub fn separator(&self) -> Option<String> {
        match (self.batch, self.left) {
            (Batch::Replay, _) if self.shown == 0 => None,
            (Batch::Replay, 0) => Some("— history —".to_owned()),
            (_, 0) => None,
            (_, 1) => Some("— 1 earlier line kept —".to_owned()),
            (_, n) => Some(format!("— {n} earlier lines kept —")),
        }
    }

    /// Whether this batch's separator is a marker of earlier kept lines
    /// at the top of its page (an asked page that left older lines out).
    fn marks_earlier(&self) -> bool {
        self.batch != Batch::Replay && self.left > 0
    }

    /// Whether `self`, landing, makes `shown` (an end of the same room
    /// already shown) count earlier lines it no longer should: `self`
    /// reached as far back or further.
    pub fn outdates(&self, shown: &HistoryEnd) -> bool {
        shown.left > 0
            && shown.room.eq_ignore_ascii_case(&self.room)
            && matches!((self.oldest, shown.oldest), (Some(new), Some(old)) if new <= old)
    }
}

/// What [`outdate_markers`] did to one entry, by its index before any
/// removal.
#[derive(Debug, Clone)]
pub enum MarkerChange {
    /// A marker of earlier lines, dropped.
    Removed(usize, Entry),
    /// A replay's rule that no longer counts earlier lines.
    Relabelled(usize),
}

/// Brings the room's separators in `entries` up to date as `end` lands
/// (before it is placed): a marker of earlier lines it outdates
/// ([`HistoryEnd::outdates`]) is dropped, a replay's rule it outdates says
/// `— history —`; so one marker, at the top, stays. Returns what changed,
/// by ascending index, so a front end keeping its own copies of entries
/// (and whatever it keeps beside them) can follow; [`position`] leaves out
/// a new marker that would not stand at the top.
pub fn outdate_markers(entries: &mut VecDeque<Entry>, end: &HistoryEnd) -> Vec<MarkerChange> {
    let (mut changes, mut at, mut removed) = (Vec::new(), 0, 0);
    while let Some(entry) = entries.get_mut(at) {
        let index = at + removed;
        if let EntryKind::HistoryEnd(shown) = &mut entry.kind {
            if end.outdates(shown) {
                if shown.batch == Batch::Replay {
                    shown.left = 0;
                    changes.push(MarkerChange::Relabelled(index));
                } else if let Some(old) = entries.remove(at) {
                    removed += 1;
                    changes.push(MarkerChange::Removed(index, old));
                    continue;
                }
            }
        }
        at += 1;
    }
    changes
}

/// One thing to show, as the server said it (not yet sanitized).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A room line as it was said. `at`: the server's stamp (history
    /// mode only).
    Message {
        room: String,
        nick: String,
        text: String,
        at: Option<u64>,
    },
    Action {
        room: String,
        nick: String,
        text: String,
        at: Option<u64>,
    },
    Private {
        from: String,
        to: String,
        text: String,
    },
    Join {
        room: String,
        nick: String,
    },
    Part {
        room: String,
        nick: String,
        reason: String,
    },
    Kick {
        nick: String,
        by: String,
        reason: String,
    },
    /// The room's members, each as the server wrote it (`@nick` for a
    /// moderator: see [`split_mark`]).
    Users {
        room: String,
        nicks: Vec<String>,
    },
    /// `old` is now called `new`.
    Rename {
        old: String,
        new: String,
    },
    Rooms(Vec<(String, usize)>),
    Info(String),
    Error {
        code: String,
        text: String,
    },
    Pong(Option<String>),
    /// The client's own notices: connected, reconnecting, closed.
    Status(String),
    /// A kept line from the room's history, shown dimmed with its date;
    /// [`Entry::time`] is when it was said.
    History(Kept),
    /// The end of a batch of kept lines: the separator (see
    /// [`HistoryEnd::separator`]).
    HistoryEnd(HistoryEnd),
    /// One `/search` hit (hits come newest first).
    Found(Kept),
    /// The end of a `/search` answer: `count` hits, `more` when further
    /// ones were left out.
    FoundEnd {
        room: String,
        count: u32,
        more: bool,
    },
}

impl EntryKind {
    /// The entry a server line shows, if any, with the stamp that came
    /// before it (`@<at>`, history mode; only room lines keep it):
    /// handshake lines never reach a logged-in session (a `WELCOME` after
    /// the login ends it), unknown words are ignored, as the protocol asks,
    /// and a `HISTORYEND` becomes an entry only with what the session
    /// knows of its batch ([`HistoryEnd`]).
    pub(crate) fn from_server(line: ServerLine<'_>, at: Option<u64>) -> Option<EntryKind> {
        let own = |s: &str| s.to_owned();
        let kept = |k: tlschat_protocol::Kept<'_>| Kept {
            room: own(k.room),
            at: k.at,
            nick: own(k.nick),
            action: k.action,
            text: own(k.text),
        };
        Some(match line {
            ServerLine::Msg { room, nick, text } => EntryKind::Message {
                room: own(room),
                nick: own(nick),
                text: own(text),
                at,
            },
            ServerLine::Action { room, nick, text } => EntryKind::Action {
                room: own(room),
                nick: own(nick),
                text: own(text),
                at,
            },
            ServerLine::PrivMsg { from, to, text } => EntryKind::Private {
                from: own(from),
                to: own(to),
                text: own(text),
            },
            ServerLine::Join { room, nick } => EntryKind::Join {
                room: own(room),
                nick: own(nick),
            },
            ServerLine::Part { room, nick, reason } => EntryKind::Part {
                room: own(room),
                nick: own(nick),
                reason: own(reason),
            },
            ServerLine::Kick { nick, by, reason } => EntryKind::Kick {
                nick: own(nick),
                by: own(by),
                reason: own(reason),
            },
            ServerLine::Users { room, nicks } => EntryKind::Users {
                room: own(room),
                nicks: nicks.into_iter().map(own).collect(),
            },
            ServerLine::Rooms(rooms) => {
                EntryKind::Rooms(rooms.into_iter().map(|(r, n)| (own(r), n)).collect())
            }
            ServerLine::Info(text) => EntryKind::Info(own(text)),
            ServerLine::Error { code, text } => EntryKind::Error {
                code: code.to_string(),
                text: own(text),
            },
            ServerLine::Pong(token) => EntryKind::Pong(token.map(own)),
            ServerLine::Rename { old, new } => EntryKind::Rename {
                old: own(old),
                new: own(new),
            },
            ServerLine::History(k) => EntryKind::History(kept(k)),
            ServerLine::Found(k) => EntryKind::Found(kept(k)),
            ServerLine::FoundEnd { room, count, more } => EntryKind::FoundEnd {
                room: own(room),
                count,
                more,
            },
            ServerLine::Welcome { .. }
            | ServerLine::Nick
            | ServerLine::Pass(_)
            | ServerLine::Refuse(_)
            | ServerLine::Ban(_)
            | ServerLine::HistoryEnd { .. }
            | ServerLine::Unknown(_) => return None,
        })
    }

    /// The entry's room and where it sorts among the room's stamped
    /// entries, if it is one of them.
    pub(crate) fn stamp_key(&self) -> Option<(&str, (u64, u8))> {
        self.order().map(|(room, order)| (room, order.key()))
    }

    /// Where this entry sits in a timeline ordered by stamps, for
    /// [`position`]: its room and a key that sorts a batch's "earlier
    /// lines" marker before the batch's oldest line, a line at its stamp,
    /// and the "history" separator after the batch's newest line. `None`:
    /// the entry is not ordered by stamp (it goes at the end).
    fn order(&self) -> Option<(&str, Order)> {
        match self {
            EntryKind::Message {
                room, at: Some(at), ..
            }
            | EntryKind::Action {
                room, at: Some(at), ..
            } => Some((room, Order::Line(*at))),
            EntryKind::History(k) => Some((&k.room, Order::Line(k.at))),
            EntryKind::HistoryEnd(end) => match (end.batch, end.oldest, end.newest_shown) {
                (Batch::Replay, _, Some(newest)) => Some((&end.room, Order::After(newest))),
                (Batch::CatchUp | Batch::Asked, Some(oldest), _) => {
                    Some((&end.room, Order::Before(oldest)))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Which conversation this entry belongs to, as `me` sees it.
    pub fn conversation(&self, me: &str) -> Conversation<'_> {
        match self {
            EntryKind::Message { room, .. }
            | EntryKind::Action { room, .. }
            | EntryKind::Join { room, .. }
            | EntryKind::Part { room, .. }
            | EntryKind::Users { room, .. }
            | EntryKind::History(Kept { room, .. })
            | EntryKind::HistoryEnd(HistoryEnd { room, .. })
            | EntryKind::Found(Kept { room, .. })
            | EntryKind::FoundEnd { room, .. } => Conversation::Room(room),
            EntryKind::Private { from, to, .. } if from.eq_ignore_ascii_case(me) => {
                Conversation::Private {
                    peer: to,
                    outgoing: true,
                }
            }
            EntryKind::Private { from, .. } => Conversation::Private {
                peer: from,
                outgoing: false,
            },
            EntryKind::Kick { .. }
            | EntryKind::Rename { .. }
            | EntryKind::Rooms(_)
            | EntryKind::Info(_)
            | EntryKind::Error { .. }
            | EntryKind::Pong(_)
            | EntryKind::Status(_) => Conversation::Server,
        }
    }

    /// Roughly what this entry costs in memory: its own size plus each heap
    /// allocation it owns, with an allocator's per-block overhead.
    pub fn cost(&self) -> usize {
        /// What an allocator adds to each block, about.
        const BLOCK: usize = 16;
        let s = |x: &String| x.capacity() + BLOCK;
        let own = size_of::<Entry>();
        own + match self {
            EntryKind::Message {
                room, nick, text, ..
            }
            | EntryKind::Action {
                room, nick, text, ..
            }
            | EntryKind::History(Kept {
                room, nick, text, ..
            })
            | EntryKind::Found(Kept {
                room, nick, text, ..
            }) => s(room) + s(nick) + s(text),
            EntryKind::HistoryEnd(end) => s(&end.room),
            EntryKind::FoundEnd { room, .. } => s(room),
            EntryKind::Private { from, to, text } => s(from) + s(to) + s(text),
            EntryKind::Join { room, nick } => s(room) + s(nick),
            EntryKind::Part { room, nick, reason } => s(room) + s(nick) + s(reason),
            EntryKind::Kick { nick, by, reason } => s(nick) + s(by) + s(reason),
            EntryKind::Rename { old, new } => s(old) + s(new),
            EntryKind::Users { room, nicks } => {
                s(room)
                    + nicks.capacity() * size_of::<String>()
                    + BLOCK
                    + nicks.iter().map(s).sum::<usize>()
            }
            EntryKind::Rooms(rooms) => {
                rooms.capacity() * size_of::<(String, usize)>()
                    + BLOCK
                    + rooms.iter().map(|(r, _)| s(r)).sum::<usize>()
            }
            EntryKind::Info(text) | EntryKind::Status(text) => s(text),
            EntryKind::Error { code, text } => s(code) + s(text),
            EntryKind::Pong(token) => token.as_ref().map_or(0, s),
        }
    }
}

/// Where an entry belongs ([`EntryKind::conversation`]): a room, a
/// private conversation, or the connection as a whole (the server's
/// answers and notices, the client's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversation<'a> {
    Room(&'a str),
    /// With `peer`; `outgoing` when we wrote it (a message to ourselves
    /// is outgoing, with ourselves as the peer).
    Private {
        peer: &'a str,
        outgoing: bool,
    },
    Server,
}

/// One thing shown, with its time: when it arrived, or for a
/// [`EntryKind::History`] line, when it was said.
#[derive(Debug, Clone)]
pub struct Entry {
    pub time: DateTime<Local>,
    pub kind: EntryKind,
}

/// Where an entry sorts among a room's stamped entries (see
/// [`EntryKind::order`]).
#[derive(Debug, Clone, Copy)]
enum Order {
    /// A marker just before the line with this stamp.
    Before(u64),
    /// A line with this stamp.
    Line(u64),
    /// A separator just after the line with this stamp.
    After(u64),
}

impl Order {
    fn key(self) -> (u64, u8) {
        match self {
            Order::Before(at) => (at, 0),
            Order::Line(at) => (at, 1),
            Order::After(at) => (at, 2),
        }
    }
}

/// Where `kind` goes in `entries` (oldest first): the index to insert it
/// at, or `None` when it is a line already there (same room, same stamp).
///
/// A live line goes at the end, as it came (a stamp out of order or
/// repeated hides nothing). A kept line or a batch's separator goes just
/// before the oldest of the room's stamped
/// entries that sort after it, looking back from the newest entry until
/// one of the room's entries sorts before it (at most `PLACE_SCAN`
/// entries); everything else goes at the end. A marker of earlier lines
/// that would land below a kept line already shown is left out (`None`):
/// it would not stand at the top. So the lines a catch-up
/// brings land before the live lines that came meanwhile, and a batch of
/// older lines lands above what is shown. A front end that keeps its own
/// copies of entries (per conversation) places them with this too.
pub fn position(entries: &VecDeque<Entry>, kind: &EntryKind) -> Option<usize> {
    let end = entries.len();
    // A live line is shown as it comes, whatever its stamp says.
    if matches!(kind, EntryKind::Message { .. } | EntryKind::Action { .. }) {
        return Some(end);
    }
    let Some((room, order)) = kind.order() else {
        return Some(end);
    };
    let key = order.key();
    let mut at = end;
    for (i, entry) in entries.iter().enumerate().rev().take(PLACE_SCAN) {
        let Some((other_room, other)) = entry.kind.order() else {
            continue;
        };
        if !other_room.eq_ignore_ascii_case(room) {
            continue;
        }
        match other.key().cmp(&key) {
            std::cmp::Ordering::Greater => at = i,
            std::cmp::Ordering::Equal if matches!(order, Order::Line(_)) => return None,
            _ if marks_earlier(kind) && matches!(entry.kind, EntryKind::History(_)) => return None,
            _ => break,
        }
    }
    Some(at)
}

/// Whether `kind` is a marker of earlier kept lines at the top of a page.
fn marks_earlier(kind: &EntryKind) -> bool {
    matches!(kind, EntryKind::HistoryEnd(end) if end.marks_earlier())
}

/// Whether `RENAME <old> <new>` renames `me`: `old` is our nickname (any
/// case) and `new` a valid nickname (a server never sends another). The
/// session logs in with the new name from then on; front ends show it.
pub(crate) fn renames_self(me: &str, old: &str, new: &str) -> bool {
    old.eq_ignore_ascii_case(me) && Nick::parse(new).is_ok()
}

/// A member of the current room: the nickname as the server spelled it,
/// and its role mark from the last `USERS` (`@`: a moderator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub nick: String,
    pub mark: Option<Mark>,
}

/// The members of the current room: nicknames as the server spelled them,
/// keyed by the case-folded form the protocol compares (`Alice` and
/// `alice` are one user), with their marks. In no particular order: front
/// ends sort.
#[derive(Debug, Clone, Default)]
pub struct Members {
    by_key: IndexMap<String, Member>,
    capped: bool,
}

impl Members {
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The nicknames, without marks.
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.by_key.values().map(|m| &m.nick)
    }

    /// The members with their marks.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.by_key.values()
    }

    /// The mark of `nick` (any case), if it is a marked member.
    pub fn mark(&self, nick: &str) -> Option<Mark> {
        self.by_key
            .get(&nick.to_ascii_lowercase())
            .and_then(|m| m.mark)
    }

    #[cfg(test)]
    fn contains(&self, nick: &str) -> bool {
        self.by_key.contains_key(&nick.to_ascii_lowercase())
    }

    /// True once a member was left out because the list was full.
    pub fn is_capped(&self) -> bool {
        self.capped
    }

    /// Adds `nick` with `mark` unless it is there (any case), is not a
    /// valid nickname (a server never sends one) or the list is full.
    fn insert(&mut self, nick: &str, mark: Option<Mark>) {
        let Ok(valid) = Nick::parse(nick) else {
            return;
        };
        if self.by_key.contains_key(valid.key()) {
            return;
        }
        if self.by_key.len() >= MAX_MEMBERS {
            self.capped = true;
            return;
        }
        self.by_key.insert(
            valid.key().to_owned(),
            Member {
                nick: valid.as_str().to_owned(),
                mark,
            },
        );
    }

    fn remove(&mut self, nick: &str) -> Option<Member> {
        // Order is not kept, so the constant-time removal will do.
        self.by_key.swap_remove(&nick.to_ascii_lowercase())
    }

    /// `old` (a member) is now `new` (a valid nickname), mark kept. A new
    /// name already listed (another spelling of the same one included)
    /// keeps a single entry.
    fn rename(&mut self, old: &str, new: &str) {
        if Nick::parse(new).is_err() {
            return;
        }
        if let Some(member) = self.remove(old) {
            self.remove(new);
            self.insert(new, member.mark);
        }
    }

    fn clear(&mut self) {
        self.by_key.clear();
        self.capped = false;
    }
}

/// Where the connection stands, for the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    Connecting,
    Connected,
    Reconnecting { attempt: u32 },
    Closed,
}

#[derive(Debug)]
pub struct ChatState {
    /// `host:port` as the user gave it.
    pub server: String,
    /// Short fingerprint of the server certificate, once known.
    pub fingerprint: Option<String>,
    pub nick: String,
    /// The room the session says we are in ([`ClientEvent::Room`]).
    pub room: String,
    /// Members of `room`.
    pub users: Members,
    pub conn: ConnState,
    /// Newest last; bounded by [`SCROLLBACK`] and `SCROLLBACK_BYTES`.
    pub entries: VecDeque<Entry>,
    /// The sum of the entries' [`EntryKind::cost`].
    entries_cost: usize,
    /// Per room (case-folded), the oldest kept line shown and whether
    /// older ones are left: what [`ChatState::older_history`] asks for.
    older: IndexMap<String, Older>,
}

/// What is known of a room's kept lines before the oldest one shown.
#[derive(Debug, Clone, Copy)]
struct Older {
    oldest: u64,
    left: u32,
    /// `/history before` was asked and not answered yet.
    asked: bool,
}

impl ChatState {
    pub fn new(server: impl Into<String>, nick: impl Into<String>) -> ChatState {
        ChatState {
            server: server.into(),
            fingerprint: None,
            nick: nick.into(),
            room: String::new(),
            users: Members::default(),
            conn: ConnState::Connecting,
            entries: VecDeque::new(),
            entries_cost: 0,
            older: IndexMap::new(),
        }
    }

    /// The command that loads the kept lines before the oldest one shown
    /// in the current room (`/history before <at> 50`), for a front end
    /// scrolled to the top: once per batch, and `None` when the server
    /// said nothing older is left (or sent no history at all).
    pub fn older_history(&mut self) -> Option<String> {
        let older = self.older.get_mut(&self.room.to_ascii_lowercase())?;
        if older.left == 0 || older.asked {
            return None;
        }
        older.asked = true;
        Some(
            HistoryAsk::Before {
                at: older.oldest,
                n: REPLAY_LINES,
            }
            .to_command(),
        )
    }

    /// No `/history before` is waited for any more.
    fn older_unasked(&mut self) {
        for older in self.older.values_mut() {
            older.asked = false;
        }
    }

    /// Notes what a batch's end says about older lines in its room: the
    /// oldest stamp shown so far, and what is left before it (as the batch
    /// that reached furthest back said).
    fn note_older(&mut self, end: &HistoryEnd) {
        let key = end.room.to_ascii_lowercase();
        let known = self.older.shift_remove(&key);
        let older = match (known, end.oldest) {
            (Some(k), Some(oldest)) if oldest >= k.oldest => Older { asked: false, ..k },
            (_, Some(oldest)) => Older {
                oldest,
                left: end.left,
                asked: false,
            },
            (Some(k), None) => Older { asked: false, ..k },
            (None, None) => return,
        };
        if self.older.len() >= OLDER_ROOMS {
            self.older.shift_remove_index(0);
        }
        self.older.insert(key, older);
    }

    /// Folds one event in; returns the entry it added, if any.
    pub fn apply(&mut self, event: &ClientEvent) -> Option<&Entry> {
        let kind = match event {
            ClientEvent::Connected {
                nick,
                fingerprint,
                tls,
                ..
            } => {
                self.nick = nick.clone();
                self.fingerprint = Some(fingerprint.short());
                self.conn = ConnState::Connected;
                // What the old connection owed is not coming.
                self.older_unasked();
                EntryKind::Status(format!(
                    "connected to {} as {nick} (certificate {}, {})",
                    self.server,
                    fingerprint.short(),
                    crate::render::sanitize(tls)
                ))
            }
            ClientEvent::Line(kind) => {
                self.track_members(kind);
                match kind {
                    EntryKind::Rename { old, new } if renames_self(&self.nick, old, new) => {
                        new.clone_into(&mut self.nick);
                    }
                    EntryKind::HistoryEnd(end) => {
                        self.note_older(end);
                        for change in outdate_markers(&mut self.entries, end) {
                            if let MarkerChange::Removed(_, old) = change {
                                self.entries_cost =
                                    self.entries_cost.saturating_sub(old.kind.cost());
                            }
                        }
                        end.separator()?;
                    }
                    // A kept line or a search hit: dated when it was said.
                    EntryKind::History(k) | EntryKind::Found(k) => {
                        let time = k.time().unwrap_or_else(Local::now);
                        return self.place(kind.clone(), time);
                    }
                    _ => {}
                }
                kind.clone()
            }
            ClientEvent::Room(room) => {
                room.clone_into(&mut self.room);
                self.users.clear();
                return None;
            }
            ClientEvent::Reconnecting {
                reason,
                delay,
                attempt,
            } => {
                self.conn = ConnState::Reconnecting { attempt: *attempt };
                EntryKind::Status(format!(
                    "connection lost ({reason}); reconnecting in {:.0} s",
                    delay.as_secs_f32().round().max(1.0)
                ))
            }
            ClientEvent::Closed(reason) => {
                self.conn = ConnState::Closed;
                EntryKind::Status(reason.describe())
            }
        };
        self.place(kind, Local::now())
    }

    /// Appends a client-side notice (e.g. help text, a local error).
    pub fn status(&mut self, text: impl Into<String>) -> &Entry {
        self.push(EntryKind::Status(text.into()))
    }

    /// Appends an entry, dropping the oldest ones while either bound would
    /// be passed (the newest entry always stays).
    fn push(&mut self, kind: EntryKind) -> &Entry {
        self.make_room(kind.cost());
        self.entries_cost += kind.cost();
        self.entries.push_back(Entry {
            time: Local::now(),
            kind,
        });
        // Just pushed, so never empty.
        self.entries.back().expect("an entry was just pushed")
    }

    /// Inserts an entry where [`position`] puts it, after making room as
    /// [`ChatState::push`] does; `None` for a line already shown.
    fn place(&mut self, kind: EntryKind, time: DateTime<Local>) -> Option<&Entry> {
        position(&self.entries, &kind)?;
        self.make_room(kind.cost());
        let at = position(&self.entries, &kind)?;
        self.entries_cost += kind.cost();
        self.entries.insert(at, Entry { time, kind });
        self.entries.get(at)
    }

    /// Drops the oldest entries until one costing `cost` fits both bounds.
    fn make_room(&mut self, cost: usize) {
        while self.entries.len() >= SCROLLBACK
            || (!self.entries.is_empty() && self.entries_cost + cost > SCROLLBACK_BYTES)
        {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.entries_cost = self.entries_cost.saturating_sub(old.kind.cost());
        }
    }

    /// Room names compare without regard to ASCII case.
    fn is_my_room(&self, room: &str) -> bool {
        room.eq_ignore_ascii_case(&self.room)
    }

    /// What the scrollback's entries cost now (see [`EntryKind::cost`]).
    #[cfg(test)]
    fn scrollback_cost(&self) -> usize {
        self.entries_cost
    }

    /// Keeps the member list of the current room up to date.
    fn track_members(&mut self, kind: &EntryKind) {
        match kind {
            EntryKind::Join { room, nick } if self.is_my_room(room) => {
                self.users.insert(nick, None)
            }
            EntryKind::Part { room, nick, .. } if self.is_my_room(room) => {
                self.users.remove(nick);
            }
            EntryKind::Kick { nick, .. } => {
                self.users.remove(nick);
            }
            EntryKind::Rename { old, new } => self.users.rename(old, new),
            EntryKind::Users { room, nicks } if self.is_my_room(room) => {
                self.users.clear();
                for entry in nicks {
                    let (mark, nick) = split_mark(entry);
                    self.users.insert(nick, mark);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::KEEPALIVE_TOKEN;
    use crate::ServerLines;
    use tlschat_protocol::Fingerprint;

    /// One server line as the session passes it on.
    fn line(s: &mut ChatState, l: &str) -> Option<EntryKind> {
        let mut lines = ServerLines::new(s.nick.clone(), s.room.clone());
        let mut shown = None;
        for event in lines.read(l).ok()? {
            if let Some(entry) = s.apply(&event) {
                shown = Some(entry.kind.clone());
            }
        }
        shown
    }

    fn members(s: &ChatState) -> Vec<String> {
        let mut m: Vec<String> = s.users.iter().cloned().collect();
        m.sort();
        m
    }

    #[test]
    fn tracks_room_and_members() {
        let mut s = ChatState::new("host:55555", "alice");
        s.apply(&ClientEvent::Connected {
            server: "host:55555".into(),
            nick: "alice".into(),
            fingerprint: Fingerprint([7; 32]),
            tls: "TLS 1.3, X25519MLKEM768".into(),
        });
        assert_eq!(s.conn, ConnState::Connected);
        line(&mut s, "JOIN #lobby alice");
        line(&mut s, "USERS #lobby bob alice");
        assert_eq!(members(&s), ["alice", "bob"]);
        line(&mut s, "JOIN #lobby carol");
        assert_eq!(members(&s), ["alice", "bob", "carol"]);
        line(&mut s, "PART #lobby bob quit");
        line(&mut s, "KICK carol admin spam");
        assert_eq!(members(&s), ["alice"]);
        line(&mut s, "PART #lobby alice moved");
        line(&mut s, "JOIN #rust alice");
        assert_eq!(s.room, "#rust");
        assert!(s.users.is_empty());
        line(&mut s, "USERS #rust dave alice");
        assert_eq!(members(&s), ["alice", "dave"]);
        // A USERS for another room (not ours) does not replace the sidebar.
        line(&mut s, "USERS #other x");
        assert_eq!(members(&s), ["alice", "dave"]);
        // Room names compare without regard to case.
        line(&mut s, "JOIN #RUST erin");
        assert!(s.users.contains("Erin"));
    }

    #[test]
    fn a_rename_moves_the_member_and_its_mark_and_maybe_us() {
        let mut s = ChatState::new("h", "alice");
        line(&mut s, "JOIN #lobby alice");
        line(&mut s, "USERS #lobby alice @bob carol @Dave");
        assert_eq!(members(&s), ["Dave", "alice", "bob", "carol"]);
        assert_eq!(s.users.mark("BOB"), Some(Mark::Moderator));
        assert_eq!(s.users.mark("dave"), Some(Mark::Moderator));
        assert_eq!(s.users.mark("carol"), None);
        // Someone else: the member is renamed, mark kept; the entry shows it.
        assert_eq!(
            line(&mut s, "RENAME bob Robert"),
            Some(EntryKind::Rename {
                old: "bob".into(),
                new: "Robert".into()
            })
        );
        assert_eq!(members(&s), ["Dave", "Robert", "alice", "carol"]);
        assert_eq!(s.users.mark("robert"), Some(Mark::Moderator));
        assert_eq!(s.nick, "alice");
        // Us, in another case: our nickname changes.
        line(&mut s, "RENAME ALICE Alicia");
        assert_eq!(s.nick, "Alicia");
        assert!(s.users.contains("alicia") && !s.users.contains("alice"));
        // A change of case only is a rename too.
        line(&mut s, "RENAME alicia ALICIA");
        assert_eq!(s.nick, "ALICIA");
        assert_eq!(members(&s), ["ALICIA", "Dave", "Robert", "carol"]);
        // Not nicknames (non-ASCII, an escape): nobody is renamed, nothing
        // panics, the entry still shows what the server said.
        for bad in ["Алиса", "名前", "x\u{1b}[2J", "@mod"] {
            line(&mut s, &format!("RENAME carol {bad}"));
            line(&mut s, &format!("RENAME aliciA {bad}"));
        }
        assert_eq!(members(&s), ["ALICIA", "Dave", "Robert", "carol"]);
        assert_eq!(s.nick, "ALICIA");
        // Someone not in the room: nobody is added.
        line(&mut s, "RENAME zed zoe");
        assert!(!s.users.contains("zoe"));
        // A marked entry that is no nickname after its mark is left out,
        // and the mark is never part of the name.
        line(&mut s, "USERS #lobby @@x @ @Ωμέγα @erin");
        assert_eq!(members(&s), ["erin"]);
        let marked: Vec<_> = s
            .users
            .members()
            .map(|m| (m.nick.as_str(), m.mark))
            .collect();
        assert_eq!(marked, [("erin", Some(Mark::Moderator))]);
    }

    #[test]
    fn a_welcome_after_login_renames_nobody() {
        let mut s = ChatState::new("h", "alice");
        line(&mut s, "JOIN #lobby alice");
        assert_eq!(line(&mut s, "WELCOME mallory #elsewhere"), None);
        assert_eq!(s.nick, "alice");
        assert_eq!(s.room, "#lobby");
    }

    #[test]
    fn members_are_unique_by_folded_nick_and_valid() {
        let mut s = ChatState::new("h", "alice");
        line(&mut s, "JOIN #lobby alice");
        line(&mut s, "JOIN #lobby Bob");
        line(&mut s, "JOIN #lobby bob");
        line(&mut s, "JOIN #lobby BOB");
        assert_eq!(members(&s), ["Bob"]);
        // Not nicknames: a server never sends them, the list does not keep them.
        let long = "x".repeat(100);
        for bad in ["Ζωή", "名前", "a\u{1b}[2J", long.as_str()] {
            line(&mut s, &format!("JOIN #lobby {bad}"));
        }
        line(&mut s, "USERS #lobby Bob carol Боб");
        assert_eq!(members(&s), ["Bob", "carol"]);
        // The entries still show what the server said.
        assert!(s.entries.iter().any(|e| e.kind
            == EntryKind::Join {
                room: "#lobby".into(),
                nick: "Ζωή".into()
            }));
        line(&mut s, "PART #lobby CAROL bye");
        line(&mut s, "KICK bob admin spam");
        assert!(s.users.is_empty());
    }

    #[test]
    fn entries_belong_to_their_conversation() {
        let kind = |l: &str| EntryKind::from_server(ServerLine::parse(l), None).expect("an entry");
        let dm_in = kind("PRIVMSG Bob alice привет");
        assert_eq!(
            dm_in.conversation("Alice"),
            Conversation::Private {
                peer: "Bob",
                outgoing: false
            }
        );
        let dm_out = kind("PRIVMSG ALICE bob 你好");
        assert_eq!(
            dm_out.conversation("alice"),
            Conversation::Private {
                peer: "bob",
                outgoing: true
            }
        );
        assert_eq!(
            kind("MSG #rust bob hi").conversation("a"),
            Conversation::Room("#rust")
        );
        assert_eq!(
            kind("USERS #x a b").conversation("a"),
            Conversation::Room("#x")
        );
        assert_eq!(
            kind("ERROR bad-text no").conversation("a"),
            Conversation::Server
        );
    }

    #[test]
    fn members_are_bounded() {
        let mut s = ChatState::new("h", "alice");
        line(&mut s, "JOIN #lobby alice");
        for i in 0..MAX_MEMBERS + 50 {
            line(&mut s, &format!("JOIN #lobby u{i}"));
        }
        assert_eq!(s.users.len(), MAX_MEMBERS);
        assert!(s.users.is_capped());
        // Room for one again after someone leaves.
        line(&mut s, "PART #lobby u0 bye");
        line(&mut s, "JOIN #lobby latecomer");
        assert!(s.users.contains("latecomer"));
        assert_eq!(s.users.len(), MAX_MEMBERS);
        // A USERS line longer than the cap is cut to it as well.
        let many: Vec<String> = (0..MAX_MEMBERS + 10).map(|i| format!("v{i}")).collect();
        line(&mut s, &format!("USERS #lobby {}", many.join(" ")));
        assert_eq!(s.users.len(), MAX_MEMBERS);
        // A new room starts afresh.
        line(&mut s, "JOIN #rust alice");
        assert!(s.users.is_empty() && !s.users.is_capped());
    }

    #[test]
    fn scrollback_is_bounded_in_bytes() {
        let mut s = ChatState::new("h", "a");
        let text = "ж".repeat(512 * 1024); // 1 MiB of text
        for i in 0..200 {
            line(&mut s, &format!("MSG #lobby bob {i} {text}"));
        }
        assert!(
            s.scrollback_cost() <= SCROLLBACK_BYTES,
            "{}",
            s.scrollback_cost()
        );
        let kept = s.entries.len();
        assert!((50..64).contains(&kept), "{kept} entries kept");
        // The newest are the ones kept.
        let EntryKind::Message { text: last, .. } = &s.entries.back().unwrap().kind else {
            panic!("not a message");
        };
        assert!(last.starts_with("199 "));
        // The running total is the sum of what is kept.
        let sum: usize = s.entries.iter().map(|e| e.kind.cost()).sum();
        assert_eq!(sum, s.scrollback_cost());
        // An entry larger than the whole budget is still shown, alone.
        let huge = EntryKind::Info("ü".repeat(SCROLLBACK_BYTES / 2 + 1));
        s.push(huge.clone());
        assert_eq!(s.entries.len(), 1);
        assert_eq!(s.entries[0].kind, huge);
        // Small entries after it push it out once the budget needs the room.
        s.status("small 🙂");
        assert_eq!(s.entries.len(), 1);
    }

    #[test]
    fn keepalive_pongs_are_hidden_and_unknown_words_ignored() {
        let mut s = ChatState::new("h", "a");
        assert_eq!(line(&mut s, &format!("PONG {KEEPALIVE_TOKEN}-1")), None);
        assert_eq!(
            line(&mut s, "PONG x"),
            Some(EntryKind::Pong(Some("x".into())))
        );
        assert_eq!(line(&mut s, "FUTURE thing"), None);
    }

    #[test]
    fn scrollback_is_bounded() {
        let mut s = ChatState::new("h", "a");
        for i in 0..SCROLLBACK + 5 {
            s.status(format!("{i}"));
        }
        assert_eq!(s.entries.len(), SCROLLBACK);
        assert_eq!(
            s.entries.front().unwrap().kind,
            EntryKind::Status("5".into())
        );
        let sum: usize = s.entries.iter().map(|e| e.kind.cost()).sum();
        assert_eq!(sum, s.scrollback_cost());
    }

    /// One server line read as the session does, folded into `s`.
    fn feed(lines: &mut ServerLines, s: &mut ChatState, l: &str) {
        for event in lines.read(l).unwrap() {
            s.apply(&event);
        }
    }

    #[test]
    fn live_lines_are_shown_as_they_come_whatever_their_stamps() {
        let mut s = ChatState::new("h", "alice");
        let lines = &mut ServerLines::with_history("alice", "#lobby");
        for l in [
            "@300 MSG #lobby bob שלום",
            "@200 MSG #lobby bob Привет",
            "@300 ACTION #lobby bob 你好",
        ] {
            feed(lines, &mut s, l);
        }
        let texts: Vec<&str> = s
            .entries
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::Message { text, .. } | EntryKind::Action { text, .. } => {
                    Some(text.as_str())
                }
                _ => None,
            })
            .collect();
        assert_eq!(texts, ["שלום", "Привет", "你好"]);
    }

    #[test]
    fn kept_lines_are_placed_by_stamp_once_and_older_ones_asked_once() {
        let mut s = ChatState::new("h", "alice");
        let lines = &mut ServerLines::with_history("alice", "#lobby");
        for l in [
            "JOIN #lobby alice",
            "@300 MSG #lobby bob שלום",
            "@5 MSG #other bob 你好",
            "HISTORY #lobby 200 bob Привет 👩‍👩‍👧",
            "HISTORY #lobby 250 *bob e\u{301}",
            "HISTORYEND #lobby 2 9",
        ] {
            feed(lines, &mut s, l);
        }
        /// The entries, each as its debug text, and where `needle` is first.
        fn entries(s: &ChatState) -> (Vec<String>, impl Fn(&str) -> usize) {
            let order: Vec<String> = s.entries.iter().map(|e| format!("{:?}", e.kind)).collect();
            let copy = order.clone();
            let at = move |needle: &str| copy.iter().position(|e| e.contains(needle)).unwrap();
            (order, at)
        }
        let (order, at) = entries(&s);
        assert!(at("at: 200") < at("at: 250"), "{order:#?}");
        assert!(at("at: 250") < at("HistoryEnd"), "{order:#?}");
        assert!(at("HistoryEnd") < at("Some(300)"), "{order:#?}");
        // A kept line's time is when it was said.
        let kept = s
            .entries
            .iter()
            .find(|e| matches!(e.kind, EntryKind::History(_)))
            .unwrap();
        assert_eq!(kept.time.timestamp_millis(), 200);
        // A search hit too is dated when it was said.
        lines.sent("/search привет");
        feed(lines, &mut s, "FOUND #lobby 150 bob Привет");
        let hit = s.entries.back().unwrap();
        assert!(matches!(hit.kind, EntryKind::Found(_)), "{:?}", hit.kind);
        assert_eq!(hit.time.timestamp_millis(), 150);
        feed(lines, &mut s, "FOUNDEND #lobby 1 0");
        // Older lines: asked once per batch, from the oldest shown.
        let ask = s.older_history().expect("older lines are left");
        assert_eq!(ask, "/history before 200 50");
        assert_eq!(s.older_history(), None);
        lines.sent(&ask);
        for l in [
            "HISTORY #lobby 100 carol مرحبا",
            "HISTORY #lobby 250 *bob e\u{301}",
            "HISTORYEND #lobby 2 0",
        ] {
            feed(lines, &mut s, l);
        }
        // The answer lands above; a line already there is not shown twice.
        let (order, at) = entries(&s);
        assert!(at("at: 100") < at("at: 200"), "{order:#?}");
        assert_eq!(order.iter().filter(|e| e.contains("at: 250")).count(), 1);
        assert_eq!(s.older_history(), None, "nothing older is left");
        // An asked page refused, or a new connection: it may be asked again.
        lines.sent("/history before 100 50");
        feed(lines, &mut s, "HISTORY #lobby 50 carol مرحبا");
        feed(lines, &mut s, "HISTORYEND #lobby 1 3");
        let ask = s.older_history().expect("older lines are left");
        assert_eq!(ask, "/history before 50 50");
        lines.sent(&ask);
        // An unrelated error ends nothing: the page is still waited for.
        feed(
            lines,
            &mut s,
            "ERROR unknown-command /hlep: no such command",
        );
        assert_eq!(s.older_history(), None);
        // Refused: its error, then its empty end.
        feed(lines, &mut s, "ERROR rate-limited 3 too many history reads");
        feed(lines, &mut s, "HISTORYEND #lobby 0 0");
        assert_eq!(s.older_history().as_deref(), Some("/history before 50 50"));
        s.apply(&ClientEvent::Connected {
            server: "h".into(),
            nick: "alice".into(),
            fingerprint: Fingerprint([7; 32]),
            tls: "TLS 1.3".into(),
        });
        assert_eq!(s.older_history().as_deref(), Some("/history before 50 50"));
    }

    #[test]
    fn only_the_topmost_marker_of_earlier_lines_stays() {
        let mut s = ChatState::new("h", "alice");
        let lines = &mut ServerLines::with_history("alice", "#lobby");
        let separators = |s: &ChatState| -> Vec<String> {
            s.entries
                .iter()
                .filter_map(|e| match &e.kind {
                    EntryKind::HistoryEnd(end) => end.separator(),
                    EntryKind::History(k) => Some(k.at.to_string()),
                    _ => None,
                })
                .collect()
        };
        for l in [
            "JOIN #lobby alice",
            "HISTORY #lobby 200 bob Привет 👩‍👩‍👧",
            "HISTORY #lobby 250 *bob שלום e\u{301}",
            "HISTORYEND #lobby 2 9",
            "@300 MSG #lobby bob 你好",
        ] {
            feed(lines, &mut s, l);
        }
        assert_eq!(separators(&s), ["200", "250", "— 9 earlier lines kept —"]);
        // An older page: its marker on top, the replay's rule says history.
        lines.sent("/history before 200 50");
        for l in [
            "HISTORY #lobby 100 carol مرحبا",
            "HISTORY #lobby 150 carol 你好",
            "HISTORYEND #lobby 2 7",
        ] {
            feed(lines, &mut s, l);
        }
        let paged = [
            "— 7 earlier lines kept —",
            "100",
            "150",
            "200",
            "250",
            "— history —",
        ];
        assert_eq!(separators(&s), paged);
        // The newest lines again: no marker below older lines shown.
        lines.sent("/history 2");
        for l in [
            "HISTORY #lobby 200 bob Привет 👩‍👩‍👧",
            "HISTORY #lobby 250 *bob שלום e\u{301}",
            "HISTORYEND #lobby 2 11",
        ] {
            feed(lines, &mut s, l);
        }
        assert_eq!(separators(&s), paged);
        // The oldest page: nothing earlier is left, no marker stays.
        lines.sent("/history before 100 50");
        for l in ["HISTORY #lobby 50 dave Ωμέγα", "HISTORYEND #lobby 1 0"] {
            feed(lines, &mut s, l);
        }
        assert_eq!(
            separators(&s),
            ["50", "100", "150", "200", "250", "— history —"]
        );
        let sum: usize = s.entries.iter().map(|e| e.kind.cost()).sum();
        assert_eq!(sum, s.scrollback_cost());
    }
}
