//! A room's membership.
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

use indexmap::IndexMap;
use rustc_hash::FxBuildHasher;

use super::outbound::Outbox;
use tlschat_protocol::RoomName;

/// A connected client, as the hub names it (never its address or nickname,
/// which can repeat over time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ClientId(pub u64);

#[derive(Debug)]
pub(crate) struct Room {
    name: RoomName,
    members: IndexMap<ClientId, Outbox, FxBuildHasher>,
}

impl Room {
    pub(crate) fn new(name: RoomName) -> Room {
        Room {
            name,
            members: IndexMap::default(),
        }
    }

    pub(crate) fn name(&self) -> &RoomName {
        &self.name
    }

    /// Adds `id` with its queue; `false` (and no change) if already in.
    pub(crate) fn insert(&mut self, id: ClientId, outbox: Outbox) -> bool {
        match self.members.entry(id) {
            indexmap::map::Entry::Occupied(_) => false,
            indexmap::map::Entry::Vacant(v) => {
                v.insert(outbox);
                true
            }
        }
    }

    pub(crate) fn remove(&mut self, id: ClientId) -> bool {
        self.members.swap_remove(&id).is_some()
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

    /// Every member with its queue, for a broadcast.
    pub(crate) fn outboxes(&self) -> impl Iterator<Item = (ClientId, &Outbox)> + '_ {
        self.members.iter().map(|(id, out)| (*id, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership() {
        let mut r = Room::new(RoomName::lobby());
        let (out, _inbox) = crate::outbound::channel(0);
        assert!(r.insert(ClientId(1), out.clone()));
        assert!(!r.insert(ClientId(1), out.clone()));
        assert!(r.insert(ClientId(2), out.clone()));
        assert!(r.insert(ClientId(3), out.clone()));
        assert!(r.remove(ClientId(1)));
        assert!(!r.remove(ClientId(1)));
        let mut m: Vec<_> = r.members().collect();
        m.sort();
        assert_eq!(m, vec![ClientId(2), ClientId(3)]);
        assert_eq!(r.len(), 2);
    }
}
