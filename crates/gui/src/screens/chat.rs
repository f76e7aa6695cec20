//! The chat screen: conversations on the left (rooms and private
//! conversations, with unread counts and a mention marker), the messages
//! of the one being viewed in the middle with the input line under them,
//! the current room's members on the right, a status bar at the bottom.
//!
//! The chat state is the client core's [`ChatState`]: it decides the room,
//! its members and the connection state. This screen only sorts the
//! entries it returns into conversations
//! ([`EntryKind::conversation`](tlschat_client_core::state::EntryKind::conversation))
//! and keeps what a window needs besides: what is being viewed, unread
//! counts, the input line and its history, the scroll position.
//!
//! The passwords typed in `/register` and `/password` are drawn as `•`
//! (and told to screen readers so), never kept in the input history, and
//! such a line is sent without leading spaces, so it is never a message.
//!
//! History (a server in history mode): kept lines the server sends back
//! are placed among a conversation's entries by their stamp
//! ([`position`]), drawn dimmed with the date and time they were said,
//! under the separator the core makes of each batch's end. Scrolled to the
//! top of the current room, the pane asks for the lines before the oldest
//! one shown ([`ChatState::older_history`]: once per batch) and shows
//! "loading older…" until the batch's end line; a batch that brought
//! nothing (the server's read budget spent, say) is asked again only
//! after a pause or a new scroll to the top. Lines inserted above what is
//! on screen leave it where it was. `/search` hits go to a panel of their
//! own, not into the conversation.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, Local};
use egui::text::{LayoutJob, TextWrapping};
use egui::{Align, Color32, FontId, Key, RichText, TextEdit, TextFormat};

use crate::app::Action;
use crate::colors;
use crate::notify::Notice;
use tlschat_client_core::render::{plain, sanitize, stamp};
use tlschat_client_core::state::{
    outdate_markers, position, Batch, ConnState, Conversation, Entry, EntryKind, HistoryEnd, Kept,
    MarkerChange, Member,
};
use tlschat_client_core::{
    classify, clean_typed, secret, secret_command, ChatState, ClientEvent, ClientHandle, History,
    UserLine, MAX_INPUT_BYTES,
};
use tlschat_protocol::{Command, ErrorCode, Mark, Nick};

/// Entries kept per conversation, and the memory all conversations'
/// entries may take together (counted as [`EntryKind::cost`]): the client
/// core bounds its own scrollback the same way; these bound the copies
/// sorted into conversations, whatever a server sends.
const CONVERSATION_ENTRIES: usize = 5_000;
const CONVERSATIONS_BYTES: usize = 64 << 20;
/// Bytes of entries laid out per frame to learn their height (see
/// [`Buffer::measure`]): thousands of ordinary lines, a few dozen of the
/// longest a server may send.
const MEASURED_PER_FRAME: usize = 256 * 1024;
/// Conversations kept; past it, the oldest with nothing unread makes room.
const MAX_CONVERSATIONS: usize = 200;
/// The longest conversation name kept: room names and nicknames are far
/// shorter (`names.rs` in the protocol), with room to spare.
const MAX_NAME_BYTES: usize = 256;
/// Rooms kept from a `ROOMS` answer for the side list (a server could
/// list a hundred thousand in one line).
const LISTED_ROOMS: usize = 500;
/// `/search` hits kept for the search panel: the server sends at most
/// [`MAX_SEARCH_HITS`](tlschat_protocol::history::MAX_SEARCH_HITS) per
/// answer; only a hostile one sends more.
const SHOWN_HITS: usize = 100;
/// How long the pane waits, left at the top, before asking again for
/// older lines the server answered with none (its read budget spent,
/// say); scrolling away and back asks sooner.
const OLDER_PAUSE: Duration = Duration::from_secs(5);

/// The window's own help, shown before the server's `/help` answer.
const GUI_HELP: &[&str] = &[
    "keys: Enter send · Up/Down history · PageUp/PageDown scroll, Esc newest · \
     Ctrl +/- zoom, Ctrl 0 reset",
    "click a room to join it, a name in the users list to talk privately",
    "commands (from the server):",
];

/// Which conversation: a room or a private one, named as first seen and
/// compared without regard to ASCII case (as the protocol compares).
#[derive(Debug, Clone)]
pub enum ConversationKey {
    Room(String),
    Private(String),
}

impl ConversationKey {
    fn name(&self) -> &str {
        match self {
            ConversationKey::Room(n) | ConversationKey::Private(n) => n,
        }
    }

    fn same(&self, other: &ConversationKey) -> bool {
        match (self, other) {
            (ConversationKey::Room(a), ConversationKey::Room(b))
            | (ConversationKey::Private(a), ConversationKey::Private(b)) => {
                a.eq_ignore_ascii_case(b)
            }
            _ => false,
        }
    }
}

/// One conversation's entries and what the user has not seen of them.
#[derive(Debug)]
pub struct Buffer {
    pub key: ConversationKey,
    entries: VecDeque<Entry>,
    /// Each entry's drawn height (with the spacing after it) and the
    /// layout it was measured for (`None`: a guess of one row, not laid
    /// out yet). The pane draws only the entries in sight and leaves room
    /// for the others by these heights.
    heights: VecDeque<(f32, Option<Layout>)>,
    pub unread: usize,
    pub mentioned: bool,
}

/// What an entry's height depends on besides its text.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Layout {
    width: f32,
    pixels_per_point: f32,
    dark: bool,
}

impl Buffer {
    fn new(key: ConversationKey) -> Buffer {
        Buffer {
            key,
            entries: VecDeque::new(),
            heights: VecDeque::new(),
            unread: 0,
            mentioned: false,
        }
    }

    fn pop_front(&mut self) -> Option<Entry> {
        let old = self.entries.pop_front()?;
        self.heights.pop_front();
        Some(old)
    }

    /// Older lines of the room landing with `end`: the core's
    /// [`outdate_markers`] on this conversation, with the heights kept in
    /// step. Returns the cost freed and how many of the removed entries
    /// stood before index `anchor`.
    fn outdate_markers(&mut self, end: &HistoryEnd, anchor: usize) -> (usize, usize) {
        let (mut freed, mut above) = (0, 0);
        // Descending, so each index still names its entry's height.
        for change in outdate_markers(&mut self.entries, end).into_iter().rev() {
            match change {
                MarkerChange::Removed(at, old) => {
                    freed += old.kind.cost();
                    above += usize::from(at < anchor);
                    if at < self.heights.len() {
                        self.heights.remove(at);
                    }
                }
                MarkerChange::Relabelled(at) => {
                    if let Some(h) = self.heights.get_mut(at) {
                        h.1 = None;
                    }
                }
            }
        }
        (freed, above)
    }

    /// Puts `entry` at index `at` (its height is measured when drawn).
    fn insert(&mut self, at: usize, entry: Entry) {
        if at <= self.heights.len() {
            self.heights.insert(at, (0.0, None));
        }
        self.entries.insert(at, entry);
    }

    /// Measures entries not measured for `layout` yet, laying each out
    /// as it is drawn: about [`MEASURED_PER_FRAME`] bytes of them (at
    /// least one), the newest first
    /// (where a reader usually is), the others keeping their last height
    /// until a later frame. A resize or a flood of long lines thus costs
    /// a bounded amount per frame. False while some are left.
    fn measure(
        &mut self,
        ui: &egui::Ui,
        layout: Layout,
        job: impl Fn(&Entry) -> LayoutJob,
    ) -> bool {
        let spacing = ui.spacing().item_spacing.y;
        let row = ui.text_style_height(&egui::TextStyle::Body) + spacing;
        self.heights.resize(self.entries.len(), (row, None));
        let mut spent = 0;
        for (entry, height) in self.entries.iter().zip(self.heights.iter_mut()).rev() {
            if height.1 == Some(layout) {
                continue;
            }
            let cost = entry.kind.cost();
            if spent > 0 && spent + cost > MEASURED_PER_FRAME {
                return false;
            }
            spent += cost;
            let mut job = job(entry);
            job.wrap = TextWrapping::wrap_at_width(layout.width);
            let galley = ui.fonts_mut(|f| f.layout_job(job));
            *height = (galley.size().y + spacing, Some(layout));
        }
        true
    }
}

pub struct ChatView {
    state: ChatState,
    /// `None` once the session is over.
    handle: Option<ClientHandle>,
    buffers: Vec<Buffer>,
    /// What the buffers' entries cost together.
    cost: usize,
    /// Index into `buffers`.
    viewing: usize,
    /// Rooms with people, from the last `ROOMS` answer.
    rooms: Vec<(String, usize)>,
    input: String,
    /// Sent lines for Up/Down (the terminal client's rules).
    history: History,
    reconnect_at: Option<Instant>,
    /// The message list was scrolled to its end at the last frame.
    at_bottom: bool,
    /// Something arrived in the viewed conversation while scrolled up.
    unseen_below: bool,
    jump_to_bottom: bool,
    /// A page to scroll at the next frame: up (1) or down (-1).
    page: Option<f32>,
    /// The window title last asked for.
    title: String,
    /// The entry at the top of the message list, kept in place when
    /// entries are inserted above it or dropped there.
    anchor: Anchor,
    /// `/history before` was sent for this room and its batch has not
    /// ended: the pane shows "loading older…".
    loading_older: Option<String>,
    /// A `/history before` the server answered with nothing (refused, its
    /// read budget spent): not asked again before [`Pause::until`] or a
    /// new scroll to the top.
    older_paused: Option<Pause>,
    /// The last `/search` answer, shown beside the messages until closed.
    search: Option<Search>,
    /// For the tests: a stand-in for the session that takes every line.
    #[cfg(test)]
    sent: Option<Vec<String>>,
}

/// The entry at the top of the message list: its index in the viewed
/// conversation and how far above the pane's top it starts.
#[derive(Debug, Default, Clone, Copy)]
struct Anchor {
    index: usize,
    above: f32,
    /// Entries were inserted or dropped before it since the last frame.
    moved: bool,
}

/// Older lines of `room` were asked for and none came.
#[derive(Debug)]
struct Pause {
    room: String,
    until: Instant,
    /// The pane was scrolled away from the top since.
    left_top: bool,
}

/// A `/search` answer: its words, the hits so far (newest first) and,
/// once it ended, the count and whether more were left out.
#[derive(Debug, Default)]
struct Search {
    room: String,
    words: String,
    hits: Vec<Kept>,
    end: Option<(u32, bool)>,
    /// The server refused it (`rate-limited`); its end is still to come.
    refused: bool,
}

impl ChatView {
    /// For a session logged in as `nick`; `handle` sends to it (`None`:
    /// a view with nothing behind it, for snapshots).
    pub fn new(server: &str, nick: &str, handle: Option<ClientHandle>) -> ChatView {
        ChatView {
            state: ChatState::new(server, nick),
            handle,
            buffers: vec![Buffer::new(ConversationKey::Room(
                tlschat_protocol::LOBBY.to_owned(),
            ))],
            cost: 0,
            viewing: 0,
            rooms: Vec::new(),
            input: String::new(),
            history: History::new(),
            reconnect_at: None,
            at_bottom: true,
            unseen_below: false,
            jump_to_bottom: false,
            page: None,
            title: String::new(),
            anchor: Anchor::default(),
            loading_older: None,
            older_paused: None,
            search: None,
            #[cfg(test)]
            sent: None,
        }
    }

    pub fn state(&self) -> &ChatState {
        &self.state
    }

    pub fn buffers(&self) -> &[Buffer] {
        &self.buffers
    }

    /// The conversation on screen.
    pub fn viewing(&self) -> &ConversationKey {
        &self.buffers[self.viewing].key
    }

    /// Folds one session event in; returns the notifications it calls
    /// for (a mention or a private message while the window is not
    /// focused).
    pub fn on_client_event(&mut self, event: ClientEvent, focused: bool) -> Vec<Notice> {
        self.on_client_event_at(event, focused, Local::now())
    }

    /// [`on_client_event`](Self::on_client_event) with the entry it makes
    /// stamped `time` (snapshots show the same clock on every run).
    pub fn on_client_event_at(
        &mut self,
        event: ClientEvent,
        focused: bool,
        time: DateTime<Local>,
    ) -> Vec<Notice> {
        match &event {
            ClientEvent::Reconnecting { delay, .. } => {
                self.reconnect_at = Some(Instant::now() + *delay);
                // What the connection owed is not coming.
                self.loading_older = None;
            }
            ClientEvent::Connected { .. } => {
                self.reconnect_at = None;
                self.loading_older = None;
            }
            ClientEvent::Closed(_) => {
                self.handle = None;
                self.loading_older = None;
            }
            ClientEvent::Line(kind) => self.history_line(kind),
            ClientEvent::Room(_) => {}
        }
        // A kept line's time is when it was said.
        let entry = self.state.apply(&event).map(|e| Entry {
            time: match e.kind {
                EntryKind::History(_) => e.time,
                _ => time,
            },
            kind: e.kind.clone(),
        });
        if let ClientEvent::Line(EntryKind::Found(_) | EntryKind::FoundEnd { .. }) = &event {
            // Search hits have their panel, not a place in the timeline.
            return Vec::new();
        }
        if let ClientEvent::Room(room) = &event {
            let i = self.buffer(ConversationKey::Room(room.clone()));
            self.view(i);
        }
        match entry.as_ref().map(|e| &e.kind) {
            Some(EntryKind::Rooms(rooms)) => {
                self.rooms = rooms.iter().take(LISTED_ROOMS).cloned().collect();
            }
            Some(EntryKind::Rename { old, new }) => self.renamed(old, new),
            _ => {}
        }
        match entry {
            Some(entry) => self.file(entry, focused),
            None => Vec::new(),
        }
    }

    /// What a line means for loading older lines and for the search panel.
    fn history_line(&mut self, kind: &EntryKind) {
        if let EntryKind::HistoryEnd(end) = kind {
            self.outdate(end);
        }
        match kind {
            // The asked page ends only here (an `ERROR` before it, about
            // it or anything else, ends nothing). One that brought
            // nothing was refused, or has nothing more to give: asked
            // again only after a pause or a new scroll to the top.
            EntryKind::HistoryEnd(end)
                if end.batch == Batch::Asked
                    && self
                        .loading_older
                        .as_ref()
                        .is_some_and(|r| r.eq_ignore_ascii_case(&end.room)) =>
            {
                self.loading_older = None;
                self.older_paused = (end.sent == 0).then(|| Pause {
                    room: end.room.clone(),
                    until: Instant::now() + OLDER_PAUSE,
                    left_top: false,
                });
            }
            // A search waiting for its first hit: a server without
            // history, or one that did not take the words, ends it with
            // this error alone (the panel closes); one over its read
            // budget ends it with an empty `FOUNDEND` next, which then
            // closes the panel instead of saying nothing was found. An
            // error about anything else leaves it waiting.
            EntryKind::Error { code, .. } => {
                let Some(search) = &mut self.search else {
                    return;
                };
                if search.end.is_some() || !search.hits.is_empty() {
                    return;
                }
                if [ErrorCode::UnknownCommand, ErrorCode::BadArgument]
                    .iter()
                    .any(|c| c.as_str() == code)
                {
                    self.search = None;
                } else if ErrorCode::RateLimited.as_str() == code {
                    search.refused = true;
                }
            }
            EntryKind::Found(hit) => {
                let search = match &mut self.search {
                    Some(s) if s.end.is_none() => s,
                    _ => self.search.insert(Search {
                        room: hit.room.clone(),
                        ..Search::default()
                    }),
                };
                if search.hits.len() < SHOWN_HITS {
                    search.hits.push(hit.clone());
                }
            }
            EntryKind::FoundEnd { .. }
                if self
                    .search
                    .as_ref()
                    .is_some_and(|s| s.refused && s.hits.is_empty()) =>
            {
                self.search = None;
            }
            EntryKind::FoundEnd { room, count, more } => {
                let search = match &mut self.search {
                    Some(s) if s.end.is_none() => s,
                    _ => self.search.insert(Search::default()),
                };
                room.clone_into(&mut search.room);
                search.end = Some((*count, *more));
            }
            _ => {}
        }
    }

    /// Older lines of a room landing (every batch end, also one that
    /// shows no marker of its own): its markers they reach past go, and
    /// the line at the top of the list moves up by those above it.
    fn outdate(&mut self, end: &HistoryEnd) {
        let key = ConversationKey::Room(end.room.clone());
        let Some(i) = self.buffers.iter().position(|b| b.key.same(&key)) else {
            return;
        };
        let anchor = self.anchor.index;
        let Some(b) = self.buffers.get_mut(i) else {
            return;
        };
        let (freed, above) = b.outdate_markers(end, anchor);
        self.cost = self.cost.saturating_sub(freed);
        if i == self.viewing && above > 0 {
            self.anchor.index -= above;
            self.anchor.moved = true;
        }
    }

    /// The index of the conversation `key`, made if it is new. With
    /// [`MAX_CONVERSATIONS`] open, the oldest one with nothing unread
    /// (not the lobby, the current room or the one in view) makes room;
    /// when none can, and for a name longer than the protocol allows
    /// (a hostile server's), the current room's conversation takes it:
    /// never a private one, where typed text would go to that peer.
    fn buffer(&mut self, key: ConversationKey) -> usize {
        if let Some(i) = self.buffers.iter().position(|b| b.key.same(&key)) {
            return i;
        }
        if key.name().len() > MAX_NAME_BYTES {
            return self.room_buffer();
        }
        if self.buffers.len() >= MAX_CONVERSATIONS {
            let room = ConversationKey::Room(self.state.room.clone());
            let spare = self
                .buffers
                .iter()
                .enumerate()
                .skip(1)
                .find(|(j, b)| *j != self.viewing && b.unread == 0 && !b.key.same(&room))
                .map(|(_, b)| b.key.clone());
            match spare {
                Some(spare) => self.close(&spare),
                None => return self.room_buffer(),
            }
        }
        self.buffers.push(Buffer::new(key));
        self.buffers.len() - 1
    }

    /// A private conversation with someone who took another nickname goes
    /// on under the new one (unless there is one with that name already).
    /// A name that is no nickname is the server's junk, which the users
    /// list ignores too.
    fn renamed(&mut self, old: &str, new: &str) {
        let new_key = ConversationKey::Private(new.to_owned());
        if Nick::parse(new).is_err() || self.buffers.iter().any(|b| b.key.same(&new_key)) {
            return;
        }
        let old_key = ConversationKey::Private(old.to_owned());
        if let Some(b) = self.buffers.iter_mut().find(|b| b.key.same(&old_key)) {
            b.key = new_key;
        }
    }

    /// The current room's conversation, or the lobby's (always the first).
    fn room_buffer(&self) -> usize {
        let room = ConversationKey::Room(self.state.room.clone());
        self.buffers
            .iter()
            .position(|b| b.key.same(&room))
            .unwrap_or(0)
    }

    fn view(&mut self, i: usize) {
        if i != self.viewing {
            self.viewing = i;
            self.at_bottom = true;
            self.unseen_below = false;
            self.jump_to_bottom = true;
            self.anchor = Anchor::default();
        }
        if let Some(b) = self.buffers.get_mut(i) {
            b.unread = 0;
            b.mentioned = false;
        }
    }

    /// Puts an entry into its conversation; counts it as unread there if
    /// someone else said it and it is not on screen.
    fn file(&mut self, entry: Entry, focused: bool) -> Vec<Notice> {
        let me = self.state.nick.clone();
        let (i, said) = match entry.kind.conversation(&me) {
            Conversation::Room(room) => {
                let said = match &entry.kind {
                    EntryKind::Message { nick, text, .. }
                    | EntryKind::Action { nick, text, .. }
                        if !nick.eq_ignore_ascii_case(&me) =>
                    {
                        Some((mentions(text, &me), nick.clone(), text.clone()))
                    }
                    _ => None,
                };
                (self.buffer(ConversationKey::Room(room.to_owned())), said)
            }
            Conversation::Private { peer, outgoing } => {
                let said = match &entry.kind {
                    EntryKind::Private { from, text, .. } if !outgoing => {
                        Some((true, from.clone(), text.clone()))
                    }
                    _ => None,
                };
                (self.buffer(ConversationKey::Private(peer.to_owned())), said)
            }
            Conversation::Server => (self.viewing, None),
        };
        let mut notices = Vec::new();
        if let Some((important, nick, text)) = said {
            if i != self.viewing {
                if let Some(b) = self.buffers.get_mut(i) {
                    b.unread += 1;
                    b.mentioned |= important;
                }
            }
            if important && !focused {
                let private = matches!(entry.kind, EntryKind::Private { .. });
                let conversation = match self.buffers.get(i) {
                    Some(b) => b.key.name().to_ascii_lowercase(),
                    None => String::new(),
                };
                notices.push(Notice {
                    conversation,
                    title: if private {
                        format!("{} (private)", name(&nick))
                    } else {
                        format!("{} mentioned you", name(&nick))
                    },
                    body: sanitize(&text).into_owned(),
                });
            }
        }
        if self.push(i, entry) && i == self.viewing && !self.at_bottom {
            self.unseen_below = true;
        }
        notices
    }

    /// Puts an entry into conversation `i` where it belongs (at the end,
    /// or by its stamp: [`position`]; not at all when that line is there
    /// already), dropping the oldest entries while a bound would be passed
    /// (the newest entry always stays). True when it went at the end.
    fn push(&mut self, i: usize, entry: Entry) -> bool {
        let Some(b) = self.buffers.get_mut(i) else {
            return false;
        };
        let Some(at) = position(&b.entries, &entry.kind) else {
            return false;
        };
        let at_end = at == b.entries.len();
        self.cost += entry.kind.cost();
        b.insert(at, entry);
        if i == self.viewing && at <= self.anchor.index && !at_end {
            self.anchor.index += 1;
            self.anchor.moved = true;
        }
        if b.entries.len() > CONVERSATION_ENTRIES {
            if let Some(old) = b.pop_front() {
                self.cost = self.cost.saturating_sub(old.kind.cost());
                self.dropped_front(i);
            }
        }
        while self.cost > CONVERSATIONS_BYTES {
            // The conversation whose oldest entry is oldest, leaving the
            // one just added.
            let oldest = self
                .buffers
                .iter()
                .enumerate()
                .filter(|(j, b)| b.entries.len() > usize::from(*j == i))
                .filter_map(|(j, b)| b.entries.front().map(|e| (e.time, j)))
                .min();
            let Some((_, j)) = oldest else { break };
            if let Some(old) = self.buffers.get_mut(j).and_then(Buffer::pop_front) {
                self.cost = self.cost.saturating_sub(old.kind.cost());
                self.dropped_front(j);
            }
        }
        at_end
    }

    /// Conversation `i` lost its oldest entry: the one at the top of the
    /// list moved up by one.
    fn dropped_front(&mut self, i: usize) {
        if i == self.viewing && self.anchor.index > 0 {
            self.anchor.index -= 1;
            self.anchor.moved = true;
        }
    }

    /// A notice of the window's own, in the conversation on screen.
    fn notice(&mut self, text: &str) {
        let entry = self.state.status(text).clone();
        self.push(self.viewing, entry);
    }

    fn send(&mut self, line: String) -> bool {
        #[cfg(test)]
        if let Some(sent) = &mut self.sent {
            sent.push(line);
            return true;
        }
        self.handle.as_ref().is_some_and(|h| h.try_send(line))
    }

    /// Enter in the input line: every slash command goes to the server as
    /// typed (as in the terminal client); plain text in a private
    /// conversation becomes `/msg <peer> <text>`.
    pub fn submit(&mut self) {
        let typed = std::mem::take(&mut self.input);
        // History keeps no secret line; such a line goes without leading
        // spaces, as a command even in a private conversation.
        self.history.push(&typed);
        let line = secret_command(&typed).to_owned();
        let asked = classify(&line);
        if asked == UserLine::Blank {
            return;
        }
        self.jump_to_bottom = true;
        if asked == UserLine::Help {
            for text in GUI_HELP {
                self.notice(text);
            }
        }
        let searched = match Command::parse(line.trim_start()) {
            Ok(Command::Search(words)) => Some(words.join(" ")),
            _ => None,
        };
        let line = match &self.buffers[self.viewing].key {
            ConversationKey::Private(peer) if !line.starts_with('/') => {
                format!("/msg {peer} {line}")
            }
            _ => line,
        };
        if !self.send(line) {
            self.notice("not sent: the connection's queue is full or the session is over");
        } else if let Some(words) = searched {
            // The panel opens, waiting for its hits.
            self.search = Some(Search {
                room: self.state.room.clone(),
                words,
                ..Search::default()
            });
        }
    }

    /// Bytes a line typed here may take: in a private conversation, room
    /// is left for the `/msg <peer> ` that carries it.
    fn input_budget(&self) -> usize {
        match &self.buffers[self.viewing].key {
            ConversationKey::Private(peer) => {
                MAX_INPUT_BYTES.saturating_sub("/msg  ".len() + peer.len())
            }
            ConversationKey::Room(_) => MAX_INPUT_BYTES,
        }
    }

    /// Up (`older`) or Down: the previous or next line sent, then back to
    /// the line being typed before (as the terminal client does). True
    /// when the input changed.
    fn history_step(&mut self, older: bool) -> bool {
        let recalled = if older {
            self.history.older(&self.input)
        } else {
            self.history.newer()
        };
        recalled.map(|line| self.input = line).is_some()
    }

    /// A click on a conversation: a private one or the current room is
    /// shown; another room is joined (and shown once the server says so).
    fn open(&mut self, key: ConversationKey) {
        match &key {
            ConversationKey::Room(room) if !room.eq_ignore_ascii_case(&self.state.room) => {
                if !self.send(format!("/join {room}")) {
                    self.notice("not sent: the session is over");
                }
            }
            _ => {
                let i = self.buffer(key);
                self.view(i);
            }
        }
    }

    pub fn show(&mut self, ui: &mut egui::Ui, now: Instant) -> Option<Action> {
        // A steady cursor: a blinking one would redraw an idle window
        // twice a second.
        ui.visuals_mut().text_cursor.blink = false;
        self.scroll_keys(ui);
        self.window_title(ui);
        let mut action = None;
        egui::Panel::bottom("status").show(ui, |ui| {
            if let Some(a) = self.status_bar(ui, now) {
                action = Some(a);
            }
        });
        egui::Panel::left("conversations")
            .resizable(true)
            .default_size(180.0)
            .show(ui, |ui| self.side_list(ui));
        egui::Panel::right("users")
            .resizable(true)
            .default_size(150.0)
            .show(ui, |ui| self.users(ui));
        if self.search.is_some() {
            egui::Panel::right("search")
                .resizable(true)
                .default_size(260.0)
                .show(ui, |ui| self.search_panel(ui));
        }
        egui::CentralPanel::default().show(ui, |ui| {
            egui::Panel::bottom("input").show(ui, |ui| self.input_line(ui));
            egui::CentralPanel::default().show(ui, |ui| self.messages(ui, now));
        });
        action
    }

    /// The window's title: what is unread, the conversation on screen,
    /// the server (asked of the window only when it changes).
    fn window_title(&mut self, ui: &egui::Ui) {
        let unread: usize = self.buffers.iter().map(|b| b.unread).sum();
        let mut title = if unread > 0 {
            format!("({unread}) ")
        } else {
            String::new()
        };
        title.push_str(&format!(
            "{} — {} — tlschat",
            name(self.viewing().name()),
            name(&self.state.server)
        ));
        if title != self.title {
            ui.ctx()
                .send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
    }

    /// PageUp and PageDown scroll the messages a page, Escape back to the
    /// newest, as in the terminal client (taken before the input line
    /// sees them: Escape would take its focus away).
    fn scroll_keys(&mut self, ui: &mut egui::Ui) {
        let none = egui::Modifiers::NONE;
        ui.input_mut(|i| {
            if i.consume_key(none, Key::PageUp) {
                self.page = Some(1.0);
            } else if i.consume_key(none, Key::PageDown) {
                self.page = Some(-1.0);
            }
            if i.consume_key(none, Key::Escape) {
                self.jump_to_bottom = true;
            }
        });
    }

    fn status_bar(&mut self, ui: &mut egui::Ui, now: Instant) -> Option<Action> {
        let mut action = None;
        ui.horizontal(|ui| {
            let (text, color) = match &self.state.conn {
                ConnState::Connected => {
                    ("connected".to_owned(), Color32::from_rgb(0x3c, 0xa0, 0x50))
                }
                ConnState::Connecting => ("connecting".to_owned(), colors::status(ui.visuals())),
                ConnState::Reconnecting { .. } => {
                    let left = self
                        .reconnect_at
                        .map(|at| at.saturating_duration_since(now))
                        .unwrap_or_default();
                    let text = if left.is_zero() {
                        // Trying now: the next event redraws.
                        "reconnecting…".to_owned()
                    } else {
                        // Count the seconds down: a repaint when the
                        // number shown changes, only while counting.
                        let to_next = Duration::from_nanos(u64::from(left.subsec_nanos()));
                        let to_next = if to_next.is_zero() {
                            Duration::from_secs(1)
                        } else {
                            to_next
                        };
                        ui.ctx().request_repaint_after(to_next);
                        format!("reconnecting in {} s", left.as_secs_f32().ceil())
                    };
                    (text, colors::status(ui.visuals()))
                }
                ConnState::Closed => ("disconnected".to_owned(), colors::error(ui.visuals())),
            };
            ui.colored_label(color, "●");
            ui.label(text);
            ui.separator();
            ui.label(name(&self.state.server));
            if let Some(fp) = &self.state.fingerprint {
                ui.separator();
                ui.label(
                    RichText::new(fp)
                        .monospace()
                        .color(colors::dim(ui.visuals())),
                );
            }
            ui.separator();
            ui.label(format!(
                "{} in {}",
                name(&self.state.nick),
                name(&self.state.room)
            ));
            if self.state.conn == ConnState::Closed {
                ui.with_layout(egui::Layout::right_to_left(Align::Center), |ui| {
                    if ui.button("Back to connect").clicked() {
                        action = Some(Action::Back);
                    }
                });
            }
        });
        action
    }

    fn side_list(&mut self, ui: &mut egui::Ui) {
        let mut open = None;
        let mut close = None;
        egui::ScrollArea::vertical().show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.strong("Rooms");
                let refresh = ui
                    .small_button("↻")
                    .on_hover_text("list the rooms with people (/rooms)");
                // A session that is over shows so in the status bar.
                if refresh.clicked() {
                    let _ = self.send("/rooms".to_owned());
                }
            });
            let mut rooms: Vec<(String, Option<usize>)> = self
                .buffers
                .iter()
                .filter_map(|b| match &b.key {
                    ConversationKey::Room(r) => Some((r.clone(), None)),
                    ConversationKey::Private(_) => None,
                })
                .collect();
            for (room, count) in &self.rooms {
                match rooms.iter_mut().find(|(r, _)| r.eq_ignore_ascii_case(room)) {
                    Some(known) => known.1 = Some(*count),
                    None => rooms.push((room.clone(), Some(*count))),
                }
            }
            rooms.sort_by_key(|(r, _)| r.to_ascii_lowercase());
            for (room, count) in rooms {
                let key = ConversationKey::Room(room.clone());
                let buffer = self.buffers.iter().find(|b| b.key.same(&key));
                let here = room.eq_ignore_ascii_case(&self.state.room);
                let mut label = name(&room).into_owned();
                if let Some(n) = count {
                    label.push_str(&format!("  ({n})"));
                }
                if self.row(
                    ui,
                    &label,
                    buffer,
                    here && self.buffers[self.viewing].key.same(&key),
                ) {
                    open = Some(key);
                }
            }
            let privates: Vec<ConversationKey> = self
                .buffers
                .iter()
                .filter(|b| matches!(b.key, ConversationKey::Private(_)))
                .map(|b| b.key.clone())
                .collect();
            if !privates.is_empty() {
                ui.add_space(12.0);
                ui.strong("Private");
                for key in privates {
                    let buffer = self.buffers.iter().find(|b| b.key.same(&key));
                    let selected = self.buffers[self.viewing].key.same(&key);
                    let label = name(key.name()).into_owned();
                    ui.horizontal(|ui| {
                        if self.row(ui, &label, buffer, selected) {
                            open = Some(key.clone());
                        }
                        let spoken = format!("close the conversation with {label}");
                        let cross = ui.small_button("×");
                        cross.widget_info(|| {
                            egui::WidgetInfo::labeled(egui::accesskit::Role::Button, true, &spoken)
                        });
                        if cross.on_hover_text("close").clicked() {
                            close = Some(key.clone());
                        }
                    });
                }
            }
        });
        if let Some(key) = open {
            self.open(key);
        }
        if let Some(key) = close {
            self.close(&key);
        }
    }

    /// Forgets a private conversation (a new message opens it again);
    /// the current room is shown if it was on screen.
    fn close(&mut self, key: &ConversationKey) {
        let Some(i) = self.buffers.iter().position(|b| b.key.same(key)) else {
            return;
        };
        let gone = self.buffers.remove(i);
        let cost: usize = gone.entries.iter().map(|e| e.kind.cost()).sum();
        self.cost = self.cost.saturating_sub(cost);
        if self.viewing > i {
            self.viewing -= 1;
        } else if self.viewing == i {
            self.viewing = self.room_buffer();
            self.at_bottom = true;
            self.unseen_below = false;
            self.jump_to_bottom = true;
            self.view(self.viewing);
        }
    }

    /// One row of the side list; true when clicked.
    fn row(&self, ui: &mut egui::Ui, label: &str, buffer: Option<&Buffer>, selected: bool) -> bool {
        let mut text = label.to_owned();
        let mut rich;
        match buffer {
            Some(b) if b.unread > 0 => {
                text.push_str(&format!("  {}", b.unread));
                if b.mentioned {
                    text.push_str(" @");
                }
                rich = RichText::new(text).strong();
                if b.mentioned {
                    rich = rich.color(colors::status(ui.visuals()));
                }
            }
            _ => rich = RichText::new(text),
        }
        ui.selectable_label(selected, rich).clicked()
    }

    /// The current room's members, sorted; only the rows in sight are
    /// drawn (a room can hold thousands).
    fn users(&mut self, ui: &mut egui::Ui) {
        let mut users: Vec<&Member> = self.state.users.members().collect();
        // Without regard to ASCII case, and without a copy of each name.
        users.sort_by(|a, b| {
            let (a, b) = (&a.nick, &b.nick);
            a.bytes()
                .map(|c| c.to_ascii_lowercase())
                .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
                .then_with(|| a.cmp(b))
        });
        // On one line: the panel grows to fit it rather than wrap it.
        let heading = format!("Users in {} ({})", name(&self.state.room), users.len());
        ui.add(egui::Label::new(RichText::new(heading).strong()).extend());
        let dark = ui.visuals().dark_mode;
        let capped = self.state.users.is_capped();
        let rows = users.len() + usize::from(capped);
        let row_height = ui.spacing().interact_size.y;
        let mut open = None;
        egui::ScrollArea::vertical().show_rows(ui, row_height, rows, |ui, range| {
            for i in range {
                let Some(member) = users.get(i) else {
                    ui.label(RichText::new("(more not listed)").color(colors::dim(ui.visuals())));
                    continue;
                };
                let nick = &member.nick;
                let (shown, hover) = member_row(ui, member, dark);
                let row = ui.selectable_label(false, shown).on_hover_text(hover);
                if row.clicked() && !nick.eq_ignore_ascii_case(&self.state.nick) {
                    open = Some(ConversationKey::Private(nick.clone()));
                }
            }
        });
        if let Some(key) = open {
            self.open(key);
        }
    }

    fn input_line(&mut self, ui: &mut egui::Ui) {
        ui.add_space(4.0);
        let hint = match &self.buffers[self.viewing].key {
            ConversationKey::Private(peer) => format!("message to {} (private)", name(peer)),
            ConversationKey::Room(_) => {
                format!("message to {}, or a /command", name(&self.state.room))
            }
        };
        let dim = colors::dim(ui.visuals());
        let label = ui.label(RichText::new("Message").color(dim));
        let id = ui.scope_id().with("message input");
        // Up and Down are taken before the field sees them (it would move
        // its cursor instead).
        if ui.memory(|m| m.has_focus(id)) {
            let recalled = if ui.input_mut(|i| i.consume_key(egui::Modifiers::NONE, Key::ArrowUp)) {
                self.history_step(true)
            } else if ui.input_mut(|i| i.consume_key(egui::Modifiers::NONE, Key::ArrowDown)) {
                self.history_step(false)
            } else {
                false
            };
            if recalled {
                cursor_to_end(ui.ctx(), id, &self.input);
            }
        }
        // The field is no password field (the command before the secret
        // is shown), so egui would copy the selected dots as the plain
        // password: Copy and Cut are dropped while the line holds one.
        if secret(&self.input).is_some() && ui.memory(|m| m.has_focus(id)) {
            ui.input_mut(|i| {
                i.events
                    .retain(|e| !matches!(e, egui::Event::Copy | egui::Event::Cut));
            });
        }
        // Masks as the text is laid out, so that no frame shows a pasted
        // password.
        let mut masked = masked_layouter;
        let field = ui
            .add(
                TextEdit::singleline(&mut self.input)
                    .id(id)
                    .hint_text(RichText::new(hint).color(dim))
                    .desired_width(f32::INFINITY)
                    .layouter(&mut masked),
            )
            .labelled_by(label.id);
        if let Some(hidden) = secret(&self.input) {
            // Screen readers get what the screen shows.
            let shown = hidden.mask(&self.input);
            ui.ctx()
                .accesskit_node_builder(id, |node| node.set_value(shown));
        }
        if field.changed() {
            // An edit ends browsing, as in the terminal client. The field
            // takes any paste or IME text; what the input rules refuse
            // (controls, bidi overrides, bytes past the protocol's limit)
            // is taken out again before it can be sent.
            self.history.stop();
            if let Some(clean) = clean_typed(&self.input, self.input_budget()) {
                self.input = clean;
                cursor_to_end(ui.ctx(), id, &self.input);
            }
        }
        if field.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter)) {
            self.submit();
            field.request_focus();
        }
        // Typing goes to the input unless something else has the keyboard.
        if ui.memory(|m| m.focused().is_none()) {
            field.request_focus();
        }
        ui.add_space(4.0);
    }

    fn messages(&mut self, ui: &mut egui::Ui, now: Instant) {
        let visuals = ui.visuals().clone();
        let jump = std::mem::take(&mut self.jump_to_bottom);
        let page = self.page.take();
        let me = self.state.nick.clone();
        let keep = std::mem::take(&mut self.anchor.moved) && !self.at_bottom && !jump;
        let kept = self.anchor;
        let buffer = &mut self.buffers[self.viewing];
        let mut anchor = None;
        let scroll = egui::ScrollArea::vertical()
            .auto_shrink(false)
            .stick_to_bottom(true);
        let out = scroll.show_viewport(ui, |ui, viewport| {
            let layout = Layout {
                width: ui.available_width(),
                pixels_per_point: ui.pixels_per_point(),
                dark: visuals.dark_mode,
            };
            let measured = buffer.measure(ui, layout, |e| {
                drawn_job(ui, e, &me, &visuals, layout.width)
            });
            if !measured {
                // The rest in the next frames (a few, then idle again).
                ui.ctx().request_repaint();
            }
            let total: f32 = buffer.heights.iter().map(|h| h.0).sum();
            // Entries came or went above the one at the top: it stays
            // where it was on screen. This frame draws what is then in
            // sight where the pane shows it; the scroll offset follows at
            // its end (set now, it would be checked against the height
            // the content had before).
            let shift = if keep {
                let above: f32 = buffer.heights.iter().take(kept.index).map(|h| h.0).sum();
                above + kept.above - viewport.min.y
            } else {
                0.0
            };
            let seen = viewport.translate(egui::vec2(0.0, shift));
            let mut top = 0.0;
            let mut drawn_to = 0.0;
            for (i, (entry, (height, _))) in buffer.entries.iter().zip(&buffer.heights).enumerate()
            {
                let bottom = top + height;
                if bottom >= seen.min.y && top <= seen.max.y {
                    if anchor.is_none() && bottom > seen.min.y {
                        anchor = Some((i, seen.min.y - top));
                    }
                    ui.add_space(top - shift - drawn_to);
                    draw_entry(ui, entry, &me, &visuals, layout.width);
                    drawn_to = bottom - shift;
                }
                top = bottom;
            }
            ui.add_space((total - drawn_to).max(0.0));
            if shift != 0.0 {
                ui.scroll_with_delta_animation(
                    egui::vec2(0.0, -shift),
                    egui::style::ScrollAnimation::none(),
                );
            }
            if let Some(direction) = page {
                ui.scroll_with_delta(egui::vec2(0.0, direction * viewport.height() * 0.9));
            }
            if jump {
                ui.scroll_to_cursor(Some(Align::BOTTOM));
            }
        });
        if let Some((index, above)) = anchor {
            self.anchor = Anchor {
                index,
                above,
                moved: false,
            };
        }
        let end = out.content_size.y - out.inner_rect.height();
        let offset = out.state.clamped_offset().y;
        self.at_bottom = jump || offset >= end - 4.0;
        if self.at_bottom {
            self.unseen_below = false;
        }
        // (Not while lines just came above: the offset moves to them at
        // the end of this frame.)
        if !jump && !keep {
            if offset <= 1.0 {
                self.load_older(ui.ctx(), now);
            } else if let Some(paused) = &mut self.older_paused {
                paused.left_top = true;
            }
        }
        if self.loading_older.is_some() {
            let at = out.inner_rect.center_top() + egui::vec2(-50.0, 4.0);
            egui::Area::new(egui::Id::unique("loading older"))
                .fixed_pos(at)
                .show(ui.ctx(), |ui| {
                    // Over the top line: on a backing of its own.
                    egui::Frame::popup(ui.style()).show(ui, |ui| {
                        ui.label(RichText::new("loading older…").color(colors::dim(ui.visuals())));
                    });
                });
        }
        if self.unseen_below {
            let at = out.inner_rect.center_bottom() - egui::vec2(70.0, 36.0);
            egui::Area::new(egui::Id::unique("new messages"))
                .fixed_pos(at)
                .show(ui.ctx(), |ui| {
                    if ui.button("↓ New messages").clicked() {
                        self.jump_to_bottom = true;
                        self.unseen_below = false;
                    }
                });
        }
    }
}

impl ChatView {
    /// Scrolled to the top of the current room: asks for the kept lines
    /// before the oldest one shown, unless a page is still coming, the
    /// server said nothing older is left, or it answered the last ask
    /// with nothing and neither the pause nor a new scroll to the top
    /// came since (then a frame is asked for when the pause is over).
    fn load_older(&mut self, ctx: &egui::Context, now: Instant) {
        let room = ConversationKey::Room(self.state.room.clone());
        if self.loading_older.is_some() || !self.buffers[self.viewing].key.same(&room) {
            return;
        }
        if let Some(paused) = &self.older_paused {
            let here = paused.room.eq_ignore_ascii_case(&self.state.room);
            if here && !paused.left_top && now < paused.until {
                ctx.request_repaint_after(paused.until - now);
                return;
            }
            self.older_paused = None;
        }
        let Some(ask) = self.state.older_history() else {
            return;
        };
        if self.send(ask) {
            self.loading_older = Some(self.state.room.clone());
        }
    }

    /// The last `/search` answer: its hits, newest first, each with the
    /// date and time it was said.
    fn search_panel(&mut self, ui: &mut egui::Ui) {
        let Some(search) = &self.search else {
            return;
        };
        let mut close = false;
        ui.horizontal(|ui| {
            let title = if search.words.is_empty() {
                format!("Found in {}", name(&search.room))
            } else {
                format!("“{}” in {}", name(&search.words), name(&search.room))
            };
            ui.add(egui::Label::new(RichText::new(title).strong()).truncate());
            ui.with_layout(egui::Layout::right_to_left(Align::Center), |ui| {
                let cross = ui.small_button("×");
                cross.widget_info(|| {
                    egui::WidgetInfo::labeled(
                        egui::accesskit::Role::Button,
                        true,
                        "close the search results",
                    )
                });
                close = cross.on_hover_text("close").clicked();
            });
        });
        let dim = colors::dim(ui.visuals());
        let summary = match search.end {
            None => "searching…".to_owned(),
            Some((0, _)) => "nothing found".to_owned(),
            Some((1, false)) => "1 line".to_owned(),
            Some((n, false)) => format!("{n} lines, newest first"),
            Some((n, true)) => format!("{n} lines, newest first; more: add words to narrow it"),
        };
        ui.label(RichText::new(summary).color(dim));
        ui.separator();
        let visuals = ui.visuals().clone();
        egui::ScrollArea::vertical()
            .auto_shrink(false)
            .show(ui, |ui| {
                for hit in &search.hits {
                    ui.label(kept_job(hit, &visuals));
                    ui.add_space(4.0);
                }
            });
        if close {
            self.search = None;
        }
    }
}

/// One entry as a label; screen readers (and the tests) read its text in
/// the order it was written, not the order it is drawn.
fn draw_entry(ui: &mut egui::Ui, entry: &Entry, me: &str, visuals: &egui::Visuals, width: f32) {
    let (written, _) = entry_job(entry, me, visuals);
    let drawn = drawn_job(ui, entry, me, visuals, width);
    let reordered = drawn.text != written.text;
    let line = ui.label(drawn);
    if reordered {
        line.widget_info(|| {
            egui::WidgetInfo::labeled(egui::accesskit::Role::Label, true, &written.text)
        });
    }
}

/// An entry as drawn `width` wide. A body with right-to-left text is
/// broken into rows here, in the order it was written (the words that
/// fit, measured as egui draws them), and each row is then put in drawn
/// order on its own, as the bidi algorithm orders each line (see
/// `bidi.rs`), the rows joined by line breaks: so a long Hebrew or
/// Arabic message starts on the first row. egui's own wrapping of
/// reordered text would start it on the last. Anything else is drawn as
/// written.
fn drawn_job(
    ui: &egui::Ui,
    entry: &Entry,
    me: &str,
    visuals: &egui::Visuals,
    width: f32,
) -> LayoutJob {
    let (written, body) = entry_job(entry, me, visuals);
    let text = written.text.as_str();
    let Some(body_text) = text.get(body..) else {
        return written;
    };
    if !body_text.chars().any(super::bidi::is_rtl) {
        return written;
    }
    let rtl = super::bidi::is_rtl_paragraph(body_text);
    let mut drawn = LayoutJob::default();
    for (n, row) in rows(ui, &written, width).into_iter().enumerate() {
        if n > 0 {
            drawn.append("\n", 0.0, format_at(&written, row.start));
        }
        // The part before the body reads left to right, the body in its
        // own direction.
        let parts = [
            (row.start..row.end.min(body), false),
            (row.start.max(body)..row.end, rtl),
        ];
        for (part, rtl) in parts {
            for (section, format) in sections_in(&written, part) {
                let Some(piece) = text.get(section) else {
                    continue;
                };
                for piece in super::bidi::visual_pieces(piece, rtl) {
                    drawn.append(&piece, 0.0, format.clone());
                }
            }
        }
    }
    drawn
}

/// The byte ranges of `job`'s rows `width` wide: words (a word keeps the
/// spaces after it) fill a row while they fit; a word wider than a row
/// is a row of its own (egui wraps it further).
fn rows(ui: &egui::Ui, job: &LayoutJob, width: f32) -> Vec<std::ops::Range<usize>> {
    let text = job.text.as_str();
    let mut rows = Vec::new();
    let (mut row_start, mut row_width) = (0, 0.0);
    let mut word_start = 0;
    let mut bytes = text.char_indices().peekable();
    while let Some((_, c)) = bytes.next() {
        let next = bytes.peek().map_or(text.len(), |(n, _)| *n);
        let word_ends = c.is_whitespace() && bytes.peek().is_none_or(|(_, n)| !n.is_whitespace());
        if !word_ends && next < text.len() {
            continue;
        }
        let word = word_start..next;
        let word_width: f32 = sections_in(job, word.clone())
            .filter_map(|(range, format)| {
                let piece = text.get(range)?.to_owned();
                Some(
                    ui.fonts_mut(|f| f.layout_job(LayoutJob::single_section(piece, format)))
                        .size()
                        .x,
                )
            })
            .sum();
        if row_width + word_width > width && word_start > row_start {
            rows.push(row_start..word_start);
            row_start = word_start;
            row_width = 0.0;
        }
        row_width += word_width;
        word_start = next;
    }
    if row_start < text.len() || rows.is_empty() {
        rows.push(row_start..text.len());
    }
    rows
}

/// The parts of `range` in each of `job`'s sections, with their formats.
fn sections_in(
    job: &LayoutJob,
    range: std::ops::Range<usize>,
) -> impl Iterator<Item = (std::ops::Range<usize>, TextFormat)> + '_ {
    job.sections.iter().filter_map(move |section| {
        let start = section.byte_range.start.0.max(range.start);
        let end = section.byte_range.end.0.min(range.end);
        (start < end).then(|| (start..end, section.format.clone()))
    })
}

/// The format of `job` at byte `at`.
fn format_at(job: &LayoutJob, at: usize) -> TextFormat {
    job.sections
        .iter()
        .find(|s| s.byte_range.start.0 <= at && at < s.byte_range.end.0)
        .map(|s| s.format.clone())
        .unwrap_or_default()
}

/// Whether `text` names `nick` as a word (nicknames compare without regard
/// to ASCII case; a nick inside a longer name does not count).
pub fn mentions(text: &str, nick: &str) -> bool {
    if nick.is_empty() {
        return false;
    }
    let is_nick_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.');
    let lower = text.to_ascii_lowercase();
    let nick = nick.to_ascii_lowercase();
    lower.match_indices(&nick).any(|(at, found)| {
        let before = lower.get(..at).and_then(|s| s.chars().next_back());
        let after = lower.get(at + found.len()..).and_then(|s| s.chars().next());
        // A trailing '.' ends a sentence rather than continuing a nick.
        !before.is_some_and(is_nick_char) && !after.is_some_and(|c| is_nick_char(c) && c != '.')
    })
}

/// Characters of a name shown (a nickname is at most
/// [`MAX_NICK_LEN`](tlschat_protocol::names::MAX_NICK_LEN), a room name
/// a few more; only a hostile server sends longer ones).
const SHOWN_NAME_CHARS: usize = 64;

/// A nickname, room or server name as shown: sanitised, cut at
/// [`SHOWN_NAME_CHARS`].
fn name(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(SHOWN_NAME_CHARS) {
        Some((at, _)) => Cow::Owned(format!("{}…", sanitize(s.get(..at).unwrap_or_default()))),
        None => sanitize(s),
    }
}

/// Characters of one text shown: a person's line is at most
/// [`MAX_CLIENT_LINE`](tlschat_protocol::MAX_CLIENT_LINE) bytes, so only a
/// hostile server sends more (up to a megabyte a line), which would slow
/// every frame down.
const SHOWN_CHARS: usize = tlschat_protocol::MAX_CLIENT_LINE;

/// Appends `text`, sanitised and cut at [`SHOWN_CHARS`]; returns where
/// it starts in the job's text.
fn append_text(job: &mut LayoutJob, text: &str, format: &TextFormat) -> usize {
    let start = job.text.len();
    let cut = text
        .char_indices()
        .nth(SHOWN_CHARS)
        .and_then(|(at, _)| text.get(..at));
    if let Some(shown) = cut {
        append_text(job, shown, format);
        let left = text.chars().count() - SHOWN_CHARS;
        job.append(&format!(" … ({left} more characters)"), 0.0, format.clone());
        return start;
    }
    job.append(&sanitize(text), 0.0, format.clone());
    start
}

/// One entry as a line of coloured text, the time first, in the order it
/// was written ([`drawn_job`] puts right-to-left text in drawn order), and
/// where its body (what someone wrote, or the notice) starts: the body
/// runs to the end and is the part with a direction of its own.
fn entry_job(entry: &Entry, me: &str, visuals: &egui::Visuals) -> (LayoutJob, usize) {
    let body = FontId::proportional(14.0);
    let plain_fmt = TextFormat {
        font_id: body.clone(),
        color: visuals.text_color(),
        ..Default::default()
    };
    let colored = |color: Color32| TextFormat {
        color,
        ..plain_fmt.clone()
    };
    let italic = |color: Color32| TextFormat {
        italics: true,
        ..colored(color)
    };
    let dark = visuals.dark_mode;
    let mut job = LayoutJob::default();
    let mut body = usize::MAX;
    // A kept line shows the date and time it was said; a separator none.
    if !matches!(
        entry.kind,
        EntryKind::History(_) | EntryKind::Found(_) | EntryKind::HistoryEnd(_)
    ) {
        job.append(
            &entry.time.format("%H:%M  ").to_string(),
            0.0,
            colored(colors::dim(visuals)),
        );
    }
    match &entry.kind {
        EntryKind::History(kept) | EntryKind::Found(kept) => {
            body = append_kept(&mut job, kept, visuals, &plain_fmt, true);
        }
        EntryKind::HistoryEnd(end) => {
            if let Some(text) = end.separator() {
                body = append_text(&mut job, &text, &italic(colors::dim(visuals)));
            }
        }
        EntryKind::Message { nick, text, .. } => {
            job.append(&name(nick), 0.0, colored(colors::nick(nick, dark)));
            job.append("  ", 0.0, plain_fmt.clone());
            let fmt = if !nick.eq_ignore_ascii_case(me) && mentions(text, me) {
                TextFormat {
                    background: visuals.selection.bg_fill.gamma_multiply(0.5),
                    // The strongest text: it stays readable on the highlight.
                    color: visuals.strong_text_color(),
                    ..plain_fmt.clone()
                }
            } else {
                plain_fmt.clone()
            };
            body = append_text(&mut job, text, &fmt);
        }
        EntryKind::Action { nick, text, .. } => {
            job.append("* ", 0.0, italic(visuals.text_color()));
            job.append(&name(nick), 0.0, italic(colors::nick(nick, dark)));
            job.append(" ", 0.0, italic(visuals.text_color()));
            body = append_text(&mut job, text, &italic(visuals.text_color()));
        }
        EntryKind::Private { from, to, text } => {
            let color = colors::private(visuals);
            let (arrow, other) = match entry.kind.conversation(me) {
                Conversation::Private { outgoing: true, .. } => ("→ ", to),
                _ => ("← ", from),
            };
            job.append(arrow, 0.0, colored(color));
            job.append(&name(other), 0.0, colored(color));
            job.append("  ", 0.0, colored(color));
            body = append_text(&mut job, text, &colored(color));
        }
        EntryKind::Error { code, text } => {
            let color = colored(colors::error(visuals));
            job.append(&format!("⚠ {}: ", name(code)), 0.0, color.clone());
            body = append_text(&mut job, text, &color);
        }
        EntryKind::Status(text) => {
            let color = colored(colors::status(visuals));
            job.append("— ", 0.0, color.clone());
            body = append_text(&mut job, &text.replace('\n', " "), &color);
        }
        kind @ (EntryKind::Join { .. }
        | EntryKind::Part { .. }
        | EntryKind::Kick { .. }
        | EntryKind::Rename { .. }
        | EntryKind::FoundEnd { .. }) => {
            if let Some(text) = plain(kind) {
                body = append_text(&mut job, &text, &colored(colors::dim(visuals)));
            }
        }
        kind @ (EntryKind::Users { .. }
        | EntryKind::Rooms(_)
        | EntryKind::Info(_)
        | EntryKind::Pong(_)) => {
            if let Some(text) = plain(kind) {
                body = append_text(&mut job, &text, &plain_fmt);
            }
        }
    }
    let body = body.min(job.text.len());
    (job, body)
}

/// A kept line: the date and time it was said (dim), the nickname in its
/// colour, the text (`/me` in italics); `dimmed` (history in the
/// timeline) draws the nickname faded and the text dim. Returns where the
/// text starts.
fn append_kept(
    job: &mut LayoutJob,
    kept: &Kept,
    visuals: &egui::Visuals,
    plain: &TextFormat,
    dimmed: bool,
) -> usize {
    let dim = TextFormat {
        color: colors::dim(visuals),
        ..plain.clone()
    };
    let text = TextFormat {
        italics: kept.action,
        ..if dimmed { dim.clone() } else { plain.clone() }
    };
    let color = colors::nick(&kept.nick, visuals.dark_mode);
    let nick = TextFormat {
        color: if dimmed {
            colors::faded(color, visuals)
        } else {
            color
        },
        ..text.clone()
    };
    job.append(&format!("{}  ", stamp(kept.at)), 0.0, dim);
    if kept.action {
        job.append("* ", 0.0, text.clone());
        job.append(&name(&kept.nick), 0.0, nick);
        job.append(" ", 0.0, text.clone());
    } else {
        job.append(&name(&kept.nick), 0.0, nick);
        job.append("  ", 0.0, text.clone());
    }
    append_text(job, &kept.text, &text)
}

/// A search hit as the search panel shows it.
fn kept_job(kept: &Kept, visuals: &egui::Visuals) -> LayoutJob {
    let plain = TextFormat {
        font_id: FontId::proportional(14.0),
        color: visuals.text_color(),
        ..Default::default()
    };
    let mut job = LayoutJob::default();
    append_kept(&mut job, kept, visuals, &plain, false);
    job
}

/// A member's row in the users list: the nickname in its colour, after
/// the `@` badge of a moderator; and the row's hover text.
fn member_row(ui: &egui::Ui, member: &Member, dark: bool) -> (egui::WidgetText, &'static str) {
    let nick = RichText::new(name(&member.nick)).color(colors::nick(&member.nick, dark));
    let Some(mark) = member.mark else {
        return (nick.into(), "talk privately");
    };
    let mut job = LayoutJob::default();
    let style = ui.style();
    let badge = RichText::new(mark.as_char().to_string())
        .strong()
        .color(colors::status(ui.visuals()));
    badge.append_to(
        &mut job,
        style,
        egui::TextStyle::Button.into(),
        Align::Center,
    );
    nick.append_to(
        &mut job,
        style,
        egui::TextStyle::Button.into(),
        Align::Center,
    );
    let hover = match mark {
        Mark::Moderator => "moderator · talk privately",
    };
    (job.into(), hover)
}

/// The input line's layout: egui's own for a single line (the body font,
/// the colour of a text field), with the secrets of a `/register` or
/// `/password` line drawn as `•`, one for each character, so that the
/// cursor still moves character by character.
fn masked_layouter(
    ui: &egui::Ui,
    text: &dyn egui::TextBuffer,
    _wrap_width: f32,
) -> std::sync::Arc<egui::Galley> {
    let text = text.as_str();
    let shown = match secret(text) {
        Some(hidden) => hidden.mask(text),
        None => text.to_owned(),
    };
    let font = egui::TextStyle::Body.resolve(ui.style());
    let visuals = ui.visuals();
    let color = visuals
        .override_text_color
        .unwrap_or_else(|| visuals.widgets.inactive.text_color());
    let line_height = ui.fonts_mut(|f| f.row_height(&font)) + ui.spacing().extra_text_line_spacing;
    let mut job = LayoutJob::simple_singleline(shown, font, color);
    job.keep_trailing_whitespace = true;
    for section in &mut job.sections {
        section.format.line_height = Some(line_height);
    }
    ui.fonts_mut(|f| f.layout_job(job))
}

/// Puts the text field's cursor after its last character (a recalled or
/// cleaned line is edited from its end).
fn cursor_to_end(ctx: &egui::Context, id: egui::Id, text: &str) {
    if let Some(mut state) = egui::TextEdit::load_state(ctx, id) {
        let end = egui::text::CCursor::new(text.chars().count());
        state
            .cursor
            .set_char_range(Some(egui::text::CCursorRange::one(end)));
        egui::TextEdit::store_state(ctx, id, state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(room: &str, nick: &str, text: &str) -> ClientEvent {
        ClientEvent::Line(EntryKind::Message {
            room: room.into(),
            nick: nick.into(),
            text: text.into(),
            at: None,
        })
    }

    fn private(from: &str, text: &str) -> ClientEvent {
        ClientEvent::Line(EntryKind::Private {
            from: from.into(),
            to: "alice".into(),
            text: text.into(),
        })
    }

    #[test]
    fn a_full_side_list_makes_room_and_never_files_into_a_private_conversation() {
        let mut chat = ChatView::new("h:1", "alice", None);
        for i in 1..MAX_CONVERSATIONS {
            chat.on_client_event(private(&format!("друг{i}"), "привет"), true);
        }
        assert_eq!(chat.buffers.len(), MAX_CONVERSATIONS);
        chat.view(5);
        // Everything unread: nothing can make room. A room joined now is
        // shown in a room's conversation, where typed text goes to the
        // room, not to the private peer in view.
        chat.on_client_event(ClientEvent::Room("#новая".into()), true);
        assert!(matches!(
            chat.buffers[chat.viewing].key,
            ConversationKey::Room(_)
        ));
        // Once read, the oldest makes room for a newcomer.
        for b in &mut chat.buffers {
            b.unread = 0;
        }
        chat.on_client_event(private("新人", "你好"), true);
        assert_eq!(chat.buffers.len(), MAX_CONVERSATIONS);
        assert!(chat
            .buffers
            .iter()
            .any(|b| matches!(&b.key, ConversationKey::Private(p) if p == "新人")));
        assert!(!chat
            .buffers
            .iter()
            .any(|b| matches!(&b.key, ConversationKey::Private(p) if p == "друг1")));
    }

    #[test]
    fn a_private_conversation_follows_only_a_rename_to_a_valid_nickname() {
        let rename = |old: &str, new: &str| {
            ClientEvent::Line(EntryKind::Rename {
                old: old.into(),
                new: new.into(),
            })
        };
        let peers = |chat: &ChatView| -> Vec<String> {
            chat.buffers
                .iter()
                .filter_map(|b| match &b.key {
                    ConversationKey::Private(p) => Some(p.clone()),
                    ConversationKey::Room(_) => None,
                })
                .collect()
        };
        let mut chat = ChatView::new("h:1", "alice", None);
        chat.on_client_event(private("bob", "hi"), true);
        for junk in ["", "bo b", "#room", "bob\u{202e}", "x\ty", "роберт"] {
            chat.on_client_event(rename("bob", junk), true);
            assert_eq!(peers(&chat), ["bob"], "renamed to {junk:?}");
        }
        chat.on_client_event(rename("bob", "Robert"), true);
        assert_eq!(peers(&chat), ["Robert"]);
    }

    #[test]
    fn a_private_line_leaves_room_for_the_msg_that_carries_it() {
        let mut chat = ChatView::new("h:1", "alice", None);
        chat.on_client_event(private("боб", "hi"), true);
        let i = chat.buffer(ConversationKey::Private("боб".into()));
        chat.view(i);
        let carried = "/msg боб ".len();
        assert_eq!(chat.input_budget() + carried, MAX_INPUT_BYTES);
    }

    #[test]
    fn conversations_are_bounded_in_bytes_whatever_the_server_sends() {
        let mut chat = ChatView::new("h:1", "alice", None);
        let big = "ж".repeat(512 * 1024); // 1 MiB
        for i in 0..150 {
            let room = if i % 2 == 0 { "#lobby" } else { "#other" };
            chat.on_client_event(msg(room, "bob", &format!("{i} {big}")), true);
        }
        assert!(chat.cost <= CONVERSATIONS_BYTES, "{}", chat.cost);
        let sum: usize = chat
            .buffers
            .iter()
            .flat_map(|b| &b.entries)
            .map(|e| e.kind.cost())
            .sum();
        assert_eq!(sum, chat.cost);
        // The newest of each conversation are the ones kept.
        let newest = |b: &Buffer| match &b.entries.back().expect("kept").kind {
            EntryKind::Message { text, .. } => text.split(' ').next().map(str::to_owned),
            _ => None,
        };
        assert_eq!(newest(&chat.buffers[0]).as_deref(), Some("148"));
        assert_eq!(newest(&chat.buffers[1]).as_deref(), Some("149"));
        assert_eq!(chat.buffers[1].unread, 75);
    }

    #[test]
    fn private_messages_get_their_own_conversation() {
        let mut chat = ChatView::new("h:1", "alice", None);
        let dm = |from: &str, to: &str, text: &str| {
            ClientEvent::Line(EntryKind::Private {
                from: from.into(),
                to: to.into(),
                text: text.into(),
            })
        };
        let notices = chat.on_client_event(dm("Bob", "alice", "привет"), false);
        assert_eq!(notices.len(), 1);
        chat.on_client_event(dm("alice", "bob", "hi"), false);
        chat.on_client_event(msg("#lobby", "carol", "hey ALICE, look"), false);
        let keys: Vec<(String, usize, bool)> = chat
            .buffers
            .iter()
            .map(|b| (b.key.name().to_owned(), b.unread, b.mentioned))
            .collect();
        assert_eq!(
            keys,
            [("#lobby".into(), 0, false), ("Bob".into(), 1, true)],
            "the room is on screen, so nothing is unread there"
        );
        assert_eq!(chat.buffers[1].entries.len(), 2);
    }

    #[test]
    fn a_private_conversation_follows_a_rename() {
        let mut chat = ChatView::new("h:1", "alice", None);
        chat.on_client_event(private("bob", "hi"), true);
        let rename = |old: &str, new: &str| {
            ClientEvent::Line(EntryKind::Rename {
                old: old.into(),
                new: new.into(),
            })
        };
        chat.on_client_event(rename("BOB", "robert"), true);
        chat.on_client_event(private("robert", "it is me"), true);
        let keys: Vec<&str> = chat.buffers.iter().map(|b| b.key.name()).collect();
        assert_eq!(keys, ["#lobby", "robert"]);
        assert_eq!(chat.buffers[1].entries.len(), 2);
        // Into a name that has a conversation already: both stay.
        chat.on_client_event(private("carol", "hey"), true);
        chat.on_client_event(rename("robert", "carol"), true);
        let keys: Vec<&str> = chat.buffers.iter().map(|b| b.key.name()).collect();
        assert_eq!(keys, ["#lobby", "robert", "carol"]);
    }

    #[test]
    fn the_side_list_keeps_a_bounded_number_of_listed_rooms() {
        let mut chat = ChatView::new("h:1", "alice", None);
        let rooms = (0..100_000).map(|i| (format!("#r{i}"), 1)).collect();
        chat.on_client_event(ClientEvent::Line(EntryKind::Rooms(rooms)), true);
        assert_eq!(chat.rooms.len(), LISTED_ROOMS);
    }

    #[test]
    fn a_name_no_real_server_sends_gets_no_conversation_of_its_own() {
        let mut chat = ChatView::new("h:1", "alice", None);
        let huge = format!("#{}", "r".repeat(1 << 20));
        chat.on_client_event(msg(&huge, "bob", "hi"), true);
        assert_eq!(chat.buffers.len(), 1);
        assert_eq!(chat.buffers[0].entries.len(), 1, "shown where the user is");
    }

    #[test]
    fn a_long_right_to_left_message_starts_on_the_first_row() {
        let ctx = egui::Context::default();
        crate::fonts::install(&ctx);
        let entry = Entry {
            time: Local::now(),
            kind: EntryKind::Message {
                room: "#lobby".into(),
                nick: "noor".into(),
                text: format!("אבג {}דהו", "זזז ".repeat(60)),
                at: None,
            },
        };
        let mut rows = Vec::new();
        let mut out = ctx.run_ui(Default::default(), |ui| {
            let job = drawn_job(ui, &entry, "alice", ui.visuals(), 300.0);
            rows = job.text.split('\n').map(str::to_owned).collect();
        });
        out.textures_delta.clear();
        assert!(rows.len() > 2, "{rows:?}");
        assert!(
            rows[0].contains("noor") && rows[0].contains("אבג"),
            "{rows:?}"
        );
        assert!(rows.last().is_some_and(|r| r.contains("דהו")), "{rows:?}");
    }

    #[test]
    fn a_resize_lays_out_a_bounded_amount_per_frame_newest_first() {
        let ctx = egui::Context::default();
        let mut buffer = Buffer::new(ConversationKey::Room("#lobby".into()));
        let long = "слово ".repeat(680); // the longest a server line holds
        for i in 0..2000 {
            buffer.entries.push_back(Entry {
                time: Local::now(),
                kind: EntryKind::Message {
                    room: "#lobby".into(),
                    nick: "mallory".into(),
                    text: format!("{i} {long}"),
                    at: None,
                },
            });
        }
        let fresh =
            |b: &Buffer, layout: Layout| b.heights.iter().filter(|h| h.1 == Some(layout)).count();
        let mut frames = 0;
        for width in [600.0, 900.0] {
            let layout = Layout {
                width,
                pixels_per_point: 1.0,
                dark: true,
            };
            loop {
                let before = fresh(&buffer, layout);
                let mut done = false;
                let mut out = ctx.run_ui(Default::default(), |ui| {
                    done = buffer.measure(ui, layout, |e| {
                        drawn_job(ui, e, "alice", ui.visuals(), width)
                    });
                });
                out.textures_delta.clear();
                frames += 1;
                let laid_out = fresh(&buffer, layout) - before;
                let bytes: usize = buffer.entries.iter().take(1).map(|e| e.kind.cost()).sum();
                assert!(
                    laid_out * bytes <= MEASURED_PER_FRAME + bytes,
                    "{laid_out} in one frame"
                );
                // The newest are measured first.
                assert_eq!(buffer.heights.back().and_then(|h| h.1), Some(layout));
                if done {
                    break;
                }
            }
            assert_eq!(fresh(&buffer, layout), buffer.entries.len());
        }
        assert!(frames > 2, "{frames} frames");
    }

    /// A kept line of #lobby said at `at`, by a few people in a few
    /// scripts.
    fn kept(at: u64) -> ClientEvent {
        let (nick, text) = match at % 4 {
            0 => ("dmitri", format!("строка {at} привет")),
            1 => ("noor", format!("سطر {at} مرحبا")),
            2 => ("yuki", format!("行 {at} こんにちは 👩‍👩‍👧")),
            _ => ("zoe", format!("ligne {at} e\u{301}té")),
        };
        ClientEvent::Line(EntryKind::History(Kept {
            room: "#lobby".into(),
            at,
            nick: nick.into(),
            action: at.is_multiple_of(7),
            text,
        }))
    }

    fn history_end(batch: Batch, oldest: u64, newest: u64, left: u32) -> ClientEvent {
        let sent = u32::try_from(newest - oldest + 1).unwrap_or(u32::MAX);
        ClientEvent::Line(EntryKind::HistoryEnd(
            tlschat_client_core::state::HistoryEnd {
                room: "#lobby".into(),
                batch,
                sent,
                left,
                shown: sent,
                oldest: Some(oldest),
                newest_shown: Some(newest),
            },
        ))
    }

    /// The window drawing `chat`.
    fn harness_of(chat: ChatView) -> egui_kittest::Harness<'static, ChatView> {
        egui_kittest::Harness::builder()
            .with_size([1024.0, 640.0])
            // A wheel past the top springs back over a few dozen frames.
            .with_max_steps(64)
            .with_context_setup(crate::fonts::install)
            .allow_missing_glyphs()
            .build_ui_state(
                |ui, chat: &mut ChatView| {
                    chat.show(ui, std::time::Instant::now());
                },
                chat,
            )
    }

    /// The top of the drawn line whose text contains `text`.
    fn top_of(h: &egui_kittest::Harness<'static, ChatView>, text: &str) -> f32 {
        use egui_kittest::kittest::Queryable;
        h.get_by_label_contains(text).rect().min.y
    }

    fn wheel_up(h: &mut egui_kittest::Harness<'static, ChatView>) {
        h.hover_at(egui::pos2(500.0, 300.0));
        h.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: egui::vec2(0.0, 100_000.0),
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Unknown,
            modifiers: egui::Modifiers::NONE,
        });
        h.run();
    }

    fn wheel_down(h: &mut egui_kittest::Harness<'static, ChatView>) {
        h.hover_at(egui::pos2(500.0, 300.0));
        h.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: egui::vec2(0.0, -300.0),
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Unknown,
            modifiers: egui::Modifiers::NONE,
        });
        h.run();
    }

    fn error(code: &str, text: &str) -> ClientEvent {
        ClientEvent::Line(EntryKind::Error {
            code: code.into(),
            text: text.into(),
        })
    }

    /// The end of an asked batch that brought nothing.
    fn empty_end() -> ClientEvent {
        ClientEvent::Line(EntryKind::HistoryEnd(
            tlschat_client_core::state::HistoryEnd {
                room: "#lobby".into(),
                batch: Batch::Asked,
                sent: 0,
                left: 0,
                shown: 0,
                oldest: None,
                newest_shown: None,
            },
        ))
    }

    /// The lobby in a window, its replay having brought kept lines
    /// `base + 1060..=1099` (1000 more are kept), then live lines came;
    /// every line it sends is kept in `sent`.
    fn lobby_with_older_lines(base: u64) -> egui_kittest::Harness<'static, ChatView> {
        let mut chat = ChatView::new("h:1", "alice", None);
        chat.sent = Some(Vec::new());
        chat.on_client_event(ClientEvent::Room("#lobby".into()), true);
        for at in base + 1060..base + 1100 {
            chat.on_client_event(kept(at), true);
        }
        chat.on_client_event(
            history_end(Batch::Replay, base + 1060, base + 1099, 1000),
            true,
        );
        for i in 0..20u64 {
            chat.on_client_event(
                ClientEvent::Line(EntryKind::Message {
                    room: "#lobby".into(),
                    nick: "bob".into(),
                    text: format!("живая строка {i} 🙂"),
                    at: Some(base + 2000 + i),
                }),
                true,
            );
        }
        let mut h = harness_of(chat);
        h.run();
        h
    }

    /// [`lobby_with_older_lines`] scrolled to the top (so the older lines
    /// were asked for).
    fn lobby_scrolled_to_the_top(base: u64) -> egui_kittest::Harness<'static, ChatView> {
        let mut h = lobby_with_older_lines(base);
        wheel_up(&mut h);
        wheel_up(&mut h);
        h
    }

    #[test]
    fn scrolled_to_the_top_it_asks_once_for_the_older_lines_and_keeps_its_place() {
        use egui_kittest::kittest::Queryable;
        // Stamps in 2026.
        let base = 1_780_000_000_000;
        let mut h = lobby_with_older_lines(base);
        assert!(
            h.state().sent == Some(Vec::new()),
            "nothing asked at the bottom"
        );
        assert!(h.query_by_label("loading older…").is_none());

        wheel_up(&mut h);
        wheel_up(&mut h);
        h.run();
        let asked = format!("/history before {} 50", base + 1060);
        assert_eq!(h.state().sent, Some(vec![asked.clone()]));
        assert!(h.query_by_label("loading older…").is_some());
        let before = top_of(&h, &format!("строка {} привет", base + 1060));

        // The batch comes (its lines above the oldest shown, oldest
        // first): what was on screen stays where it was.
        for at in base + 1010..base + 1060 {
            h.state_mut().on_client_event(kept(at), true);
        }
        h.state_mut().on_client_event(
            history_end(Batch::Asked, base + 1010, base + 1059, 950),
            true,
        );
        h.run();
        assert!(h.query_by_label("loading older…").is_none());
        let after = top_of(&h, &format!("строка {} привет", base + 1060));
        assert!(
            (after - before).abs() < 1.0,
            "moved from {before} to {after}"
        );
        assert_eq!(h.state().sent, Some(vec![asked]), "asked once per batch");

        // Up again: the next batch, before the oldest line now shown.
        wheel_up(&mut h);
        h.run();
        let sent = h.state().sent.clone().unwrap_or_default();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(sent[1], format!("/history before {} 50", base + 1010));
        // Its answer leaves nothing older: the top asks no more.
        for at in base + 960..base + 1010 {
            h.state_mut().on_client_event(kept(at), true);
        }
        h.state_mut()
            .on_client_event(history_end(Batch::Asked, base + 960, base + 1009, 0), true);
        h.run();
        wheel_up(&mut h);
        wheel_up(&mut h);
        assert_eq!(h.state().sent.as_ref().map(Vec::len), Some(2));
        assert!(h.query_by_label("loading older…").is_none());
        // Every kept line once, in stamp order, above the live ones.
        let lobby = &h.state().buffers[0];
        let stamps: Vec<u64> = lobby
            .entries
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::History(k) => Some(k.at),
                _ => None,
            })
            .collect();
        assert_eq!(stamps, (base + 960..base + 1100).collect::<Vec<_>>());
        // The pages reached back past every "earlier lines" marker: none
        // is left counting lines now shown.
        let counts: Vec<u32> = lobby
            .entries
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::HistoryEnd(end) => Some(end.left),
                _ => None,
            })
            .collect();
        assert!(counts.iter().all(|&left| left == 0), "{counts:?}");
    }

    #[test]
    fn a_refused_page_is_asked_again_only_after_a_new_scroll_to_the_top_or_a_pause() {
        use egui_kittest::kittest::Queryable;
        let base = 1_780_000_000_000;
        let mut h = lobby_scrolled_to_the_top(base);
        let asked = format!("/history before {} 50", base + 1060);
        assert_eq!(h.state().sent, Some(vec![asked.clone()]));
        // An error about something else: the page is still coming.
        h.state_mut()
            .on_client_event(error("no-such-nick", "дмитрий: no such nick"), true);
        h.run();
        assert!(h.query_by_label("loading older…").is_some());
        // The read budget is spent: the server says so, then ends the
        // answer empty. Until that end, nothing more is asked.
        h.state_mut().on_client_event(
            error("rate-limited", "3 too many history reads; try again in 3 s"),
            true,
        );
        for _ in 0..3 {
            wheel_up(&mut h);
        }
        assert_eq!(h.state().sent, Some(vec![asked.clone()]), "one at a time");
        assert!(h.query_by_label("loading older…").is_some());
        h.state_mut().on_client_event(empty_end(), true);
        for _ in 0..3 {
            wheel_up(&mut h);
        }
        assert_eq!(h.state().sent, Some(vec![asked.clone()]), "refused: waits");
        assert!(h.query_by_label("loading older…").is_none());

        // Scrolled away and back to the top: asked again.
        wheel_down(&mut h);
        assert_eq!(h.state().sent.as_ref().map(Vec::len), Some(1));
        wheel_up(&mut h);
        assert_eq!(h.state().sent, Some(vec![asked.clone(); 2]));
        h.state_mut().on_client_event(empty_end(), true);
        h.run();
        assert_eq!(h.state().sent.as_ref().map(Vec::len), Some(2));
        // Left at the top: asked again once the pause is over.
        let paused = h.state_mut().older_paused.as_mut().map(|p| {
            p.until = Instant::now();
        });
        assert!(paused.is_some(), "a refused page pauses the asking");
        h.run();
        assert_eq!(h.state().sent, Some(vec![asked; 3]));
    }

    #[test]
    fn loading_older_lines_ends_with_the_connection_and_may_be_asked_after_it() {
        use egui_kittest::kittest::Queryable;
        let base = 1_780_000_000_000;
        let mut h = lobby_scrolled_to_the_top(base);
        assert!(h.query_by_label("loading older…").is_some());
        h.state_mut().on_client_event(
            ClientEvent::Reconnecting {
                reason: "соединение потеряно".into(),
                delay: Duration::from_secs(3),
                attempt: 1,
            },
            true,
        );
        h.run();
        assert!(h.query_by_label("loading older…").is_none());
        h.state_mut().on_client_event(
            ClientEvent::Connected {
                server: "h:1".into(),
                nick: "alice".into(),
                fingerprint: tlschat_protocol::Fingerprint([0x5a; 32]),
                tls: "TLS 1.3".into(),
            },
            true,
        );
        h.run();
        // Still at the top: what the old connection owed is asked anew.
        let asked = format!("/history before {} 50", base + 1060);
        assert_eq!(h.state().sent, Some(vec![asked.clone(); 2]));
        assert!(h.query_by_label("loading older…").is_some());
        h.state_mut().on_client_event(
            ClientEvent::Closed(tlschat_client_core::CloseReason::Quit),
            true,
        );
        h.run();
        assert!(h.query_by_label("loading older…").is_none());
        assert_eq!(h.state().sent, Some(vec![asked; 2]));
    }

    #[test]
    fn search_hits_go_to_their_panel_and_a_refused_search_closes_it() {
        use egui_kittest::kittest::Queryable;
        let mut chat = ChatView::new("h:1", "alice", None);
        chat.sent = Some(Vec::new());
        chat.on_client_event(ClientEvent::Room("#lobby".into()), true);
        chat.input = "/search привет мир*".into();
        chat.submit();
        assert_eq!(chat.sent, Some(vec!["/search привет мир*".to_owned()]));
        let base = 1_780_000_000_000;
        for at in [base + 1008, base + 1004] {
            let ClientEvent::Line(EntryKind::History(hit)) = kept(at) else {
                unreachable!("kept() makes history lines");
            };
            chat.on_client_event(ClientEvent::Line(EntryKind::Found(hit)), true);
        }
        chat.on_client_event(
            ClientEvent::Line(EntryKind::FoundEnd {
                room: "#lobby".into(),
                count: 2,
                more: true,
            }),
            true,
        );
        assert!(
            chat.buffers[0]
                .entries
                .iter()
                .all(|e| !matches!(e.kind, EntryKind::Found(_) | EntryKind::FoundEnd { .. })),
            "hits are not filed into the timeline"
        );
        let mut h = harness_of(chat);
        h.run();
        assert!(h.query_by_label("“привет мир*” in #lobby").is_some());
        assert!(h
            .query_by_label("2 lines, newest first; more: add words to narrow it")
            .is_some());
        let newest = top_of(&h, &format!("строка {} привет", base + 1008));
        let older = top_of(&h, &format!("строка {} привет", base + 1004));
        assert!(newest < older, "newest first");
        h.get_by_label("close the search results").click();
        h.run();
        assert!(h.query_by_label("“привет мир*” in #lobby").is_none());
        assert!(h.state().search.is_none());

        // A server without history refuses the command: nothing to wait for.
        let chat = h.state_mut();
        chat.input = "/search שלום".into();
        chat.submit();
        assert!(chat.search.is_some());
        chat.on_client_event(error("unknown-command", "/search"), true);
        assert!(chat.search.is_none());

        // An error about something else: the search goes on. Refused for
        // the read budget: its (empty) end closes the panel rather than
        // saying nothing was found.
        chat.input = "/search 你好".into();
        chat.submit();
        chat.on_client_event(error("no-such-nick", "دانا: no such nick"), true);
        assert!(chat.search.is_some());
        chat.on_client_event(
            error("rate-limited", "3 too many history reads; try again in 3 s"),
            true,
        );
        assert!(chat.search.is_some(), "its end is still coming");
        chat.on_client_event(
            ClientEvent::Line(EntryKind::FoundEnd {
                room: "#lobby".into(),
                count: 0,
                more: false,
            }),
            true,
        );
        assert!(chat.search.is_none());
    }

    #[test]
    fn mentions_are_whole_nicks_in_any_case() {
        assert!(mentions("hi Alice!", "alice"));
        assert!(mentions("ALICE: привет", "alice"));
        assert!(mentions("ask alice.", "alice"));
        assert!(mentions("مرحبا alice", "alice"));
        assert!(!mentions("malice aforethought", "alice"));
        assert!(!mentions("alice_2 is here", "alice"));
        assert!(!mentions("anything", ""));
        assert!(!mentions("ålice", "lice"));
    }
}
