//! A room's membership.
//!
//! The hub keeps one [`Room`] per room that has people; joining and leaving
//! are O(1) (an `IndexSet` with swap-removal), so a room of thousands costs
//! the same per member as a room of two. Members are listed roughly in join
//! order, which is what `USERS` shows.

use indexmap::IndexSet;

use crate::protocol::RoomName;

/// A connected client, as the hub names it (never its address or nickname,
/// which can repeat over time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

#[derive(Debug)]
pub struct Room {
    name: RoomName,
    members: IndexSet<ClientId>,
}

impl Room {
    pub fn new(name: RoomName) -> Room {
        Room {
            name,
            members: IndexSet::new(),
        }
    }

    pub fn name(&self) -> &RoomName {
        &self.name
    }

    pub fn insert(&mut self, id: ClientId) -> bool {
        self.members.insert(id)
    }

    pub fn remove(&mut self, id: ClientId) -> bool {
        self.members.swap_remove(&id)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn members(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.members.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership() {
        let mut r = Room::new(RoomName::lobby());
        assert!(r.insert(ClientId(1)));
        assert!(!r.insert(ClientId(1)));
        assert!(r.insert(ClientId(2)));
        assert!(r.insert(ClientId(3)));
        assert!(r.remove(ClientId(1)));
        assert!(!r.remove(ClientId(1)));
        let mut m: Vec<_> = r.members().collect();
        m.sort();
        assert_eq!(m, vec![ClientId(2), ClientId(3)]);
        assert_eq!(r.len(), 2);
    }
}
