//! A room's membership, and the stamp of its last line.
//!
//! The hub keeps one [`Room`] per room that has people; joining and leaving
//! are O(1) (an `IndexMap` with swap-removal), so a room of thousands costs
//! the same per member as a room of two. Members are listed roughly in join
//! order, which is what `USERS` shows.
//!
//! Each member is stored with its [`Outbox`], so a broadcast walks one
//! contiguous array of queues instead of looking every recipient up. Client
//! ids are handed out by the server, never chosen by a peer, so they are
//! hashed with the fast non-keyed Fx hash (nicknames and room names, which
//! peers choose, stay on the standard keyed hasher).
//!
//! Each member is marked with its [`Mode`]; the room counts its
//! history-mode members, so a line is encoded with its stamp only when
//! someone will read it. [`Room::stamp`] hands out the room's stamps:
//! unix milliseconds, strictly increasing within the room.

use std::sync::Arc;

use indexmap::IndexMap;
use rustc_hash::FxBuildHasher;

use super::outbound::Outbox;
use tlschat_protocol::RoomName;

/// A connected client, as the hub names it (never its address or nickname,
/// which can repeat over time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ClientId(pub u64);

/// What a session asked for at its TLS handshake: plain protocol v1, or
/// history mode (ALPN `tlschat/2`: stamped room lines and replays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    V1,
    History,
}

#[derive(Debug)]
struct Member {
    outbox: Outbox,
    mode: Mode,
}

#[derive(Debug)]
pub(crate) struct Room {
    name: RoomName,
    /// The folded name and the name, shared with every kept line's row.
    key: Arc<str>,
    shown: Arc<str>,
    members: IndexMap<ClientId, Member, FxBuildHasher>,
    /// Members in [`Mode::History`].
    history_members: usize,
    /// The stamp of the room's last line (or where its stamps start).
    last: u64,
}

impl Room {
    /// A room whose stamps start after `after` (the largest stamp the
    /// server ever issued, so a re-created room never repeats one).
    pub(crate) fn new(name: RoomName, after: u64) -> Room {
        Room {
            key: Arc::from(name.key()),
            shown: Arc::from(name.as_str()),
            name,
            members: IndexMap::default(),
            history_members: 0,
            last: after,
        }
    }

    pub(crate) fn name(&self) -> &RoomName {
        &self.name
    }

    /// The folded name, as history keeps it.
    pub(crate) fn key(&self) -> &Arc<str> {
        &self.key
    }

    /// The name as shown, as history keeps it.
    pub(crate) fn shown(&self) -> &Arc<str> {
        &self.shown
    }

    /// Adds `id` with its queue and mode; `false` (and no change) if
    /// already in.
    pub(crate) fn insert(&mut self, id: ClientId, outbox: Outbox, mode: Mode) -> bool {
        match self.members.entry(id) {
            indexmap::map::Entry::Occupied(_) => false,
            indexmap::map::Entry::Vacant(v) => {
                v.insert(Member { outbox, mode });
                self.history_members += usize::from(mode == Mode::History);
                true
            }
        }
    }

    pub(crate) fn remove(&mut self, id: ClientId) -> bool {
        match self.members.swap_remove(&id) {
            Some(m) => {
                self.history_members -= usize::from(m.mode == Mode::History);
                true
            }
            None => false,
        }
    }

    /// Whether any member reads stamps.
    pub(crate) fn has_history_members(&self) -> bool {
        self.history_members > 0
    }

    /// The next line's stamp: `now_ms`, or one past the last stamp when
    /// the clock has not moved past it (many lines in one millisecond, a
    /// clock stepped back).
    pub(crate) fn stamp(&mut self, now_ms: u64) -> u64 {
        let at = now_ms.max(self.last.saturating_add(1));
        self.last = at;
        at
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub(crate) fn members(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.members.keys().copied()
    }

    /// Every member with its queue and mode, for a broadcast.
    pub(crate) fn outboxes(&self) -> impl Iterator<Item = (ClientId, &Outbox, Mode)> + '_ {
        self.members.iter().map(|(id, m)| (*id, &m.outbox, m.mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership() {
        let mut r = Room::new(RoomName::lobby(), 0);
        let (out, _inbox) = crate::outbound::channel(0);
        assert!(r.insert(ClientId(1), out.clone(), Mode::History));
        assert!(!r.insert(ClientId(1), out.clone(), Mode::V1));
        assert!(r.insert(ClientId(2), out.clone(), Mode::V1));
        assert!(r.insert(ClientId(3), out.clone(), Mode::History));
        assert!(r.has_history_members());
        assert!(r.remove(ClientId(1)));
        assert!(!r.remove(ClientId(1)));
        assert!(r.has_history_members());
        let mut m: Vec<_> = r.members().collect();
        m.sort();
        assert_eq!(m, vec![ClientId(2), ClientId(3)]);
        assert_eq!(r.len(), 2);
        assert!(r.remove(ClientId(3)));
        assert!(!r.has_history_members(), "the count follows the members");
    }

    #[test]
    fn stamps_increase_within_a_room_whatever_the_clock_does() {
        let mut r = Room::new(RoomName::parse("#Test").unwrap(), 1_000);
        assert_eq!(r.stamp(5), 1_001, "a new room starts past the high water");
        assert_eq!(r.stamp(5_000), 5_000);
        assert_eq!(r.stamp(5_000), 5_001, "two lines in one millisecond");
        assert_eq!(r.stamp(4_000), 5_002, "a clock stepped back");
        assert_eq!(r.stamp(9_000), 9_000);
    }
}
