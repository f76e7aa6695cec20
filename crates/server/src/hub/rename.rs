//! `/nick NEW`: a connected user takes another nickname in place, and its
//! room sees `RENAME <old> <new>`.
//!
//! ```text
//! reserve (state lock): checks, NEW's key into `nicks` → the store moves
//! the account (if OLD is one) and the invite bindings on the blocking
//! pool, no lock held → the accounts cache follows → commit (state lock):
//! OLD's key freed, User.nick = NEW, RENAME to the room
//! ```
//!
//! The reservation settles races: from the moment the checks pass, a login
//! or another rename to the same name (any case) finds it taken, also
//! while the store's write waits on the disk. Someone else's account is
//! refused in the same section, so an account's nickname stays its
//! holder's also while the holder is offline. A reservation whose user
//! leaves meanwhile goes with it ([`State::forget_nicks`]); one whose move
//! could not be saved is released, and the user keeps the old name.

use tracing::{info, warn};

use super::*;

impl Hub {
    /// `/nick NEW` by `id`.
    pub(crate) async fn rename(&self, id: ClientId, new: Nick) {
        let banned = lock(&self.shared.bans).find_nick(&new).is_some();
        let Some(old) = self.section(|st, lagging| {
            if st
                .users
                .get(&id)
                .is_some_and(|me| me.nick.as_str() == new.as_str())
            {
                let text = format!("you are already called {new}");
                st.send(id, ServerLine::Info(&text).encode(), lagging);
                return None;
            }
            let checked = self.reserve(st, id, &new, banned);
            checked
                .map_err(|(code, text)| st.send_error(id, code, &text, lagging))
                .ok()
        }) else {
            return;
        };
        if let Err(why) = self.move_name(&old, &new).await {
            warn!(old = %old, new = %new, error = %why, "rename not saved");
            return self.section(|st, lagging| {
                st.release(id, &new);
                let text = format!("rename NOT saved: {why}");
                st.send(id, ServerLine::Info(&text).encode(), lagging);
            });
        }
        self.section(|st, lagging| st.finish_rename(id, new, lagging));
    }

    /// The checks of a rename, under the state lock (the accounts' lock
    /// taken inside it, briefly); on success the new key is reserved for
    /// `id`, and the old name returned.
    fn reserve(
        &self,
        st: &mut State,
        id: ClientId,
        new: &Nick,
        banned: bool,
    ) -> Result<Nick, (ErrorCode, String)> {
        let Some(me) = st.users.get(&id) else {
            return Err((ErrorCode::NotPermitted, "you are leaving".to_owned()));
        };
        let old = me.nick.clone();
        if me.role.get().is_admin() {
            let text = "the admin account keeps its name".to_owned();
            return Err((ErrorCode::NotPermitted, text));
        }
        if me.reserved.is_some() {
            let text = "a rename of yours is still being saved".to_owned();
            return Err((ErrorCode::NotPermitted, text));
        }
        if banned {
            return Err((ErrorCode::NotPermitted, format!("{new} is banned")));
        }
        let same = new.key() == old.key();
        let taken = || (ErrorCode::NickTaken, format!("{new} is in use"));
        if !same && st.nicks.contains_key(new.key()) {
            return Err(taken());
        }
        // `admin` always is an account on a real server; never a rename's
        // target even where it is not.
        let others =
            !same && (lock(&self.shared.accounts).is_registered(new) || Role::of(new).is_admin());
        if others {
            let text = format!("{new} is someone's registered nickname");
            return Err((ErrorCode::NickTaken, text));
        }
        if !same {
            st.nicks.insert(new.key().into(), id);
            if let Some(me) = st.users.get_mut(&id) {
                me.reserved = Some(new.key().into());
            }
        }
        Ok(old)
    }

    /// Moves the account of `old` (if it is one) and its invite bindings
    /// to `new`: the store on the blocking pool with no lock held (a slow
    /// disk holds up this rename only), then the accounts cache. A
    /// nickname that came in with an invite comes back with it under its
    /// new name. The error says why not.
    async fn move_name(&self, old: &Nick, new: &Nick) -> Result<(), String> {
        let (key, to) = (old.key().to_owned(), new.clone());
        self.storage()
            .call(move |store| store.rename(&key, &to))
            .await
            .map_err(|e| e.to_string())?;
        lock(&self.shared.accounts).cache_rename(old, new);
        Ok(())
    }
}

impl State {
    /// Gives up `id`'s reservation of `new` (its move was not saved).
    fn release(&mut self, id: ClientId, new: &Nick) {
        let Some(me) = self.users.get_mut(&id) else {
            return;
        };
        if me.reserved.take().is_some() && self.nicks.get(new.key()) == Some(&id) {
            self.nicks.remove(new.key());
        }
    }

    /// Makes `new` the name of `id` (whose reservation holds it) and tells
    /// its room; nothing if `id` left meanwhile (its reservation went with
    /// it).
    fn finish_rename(&mut self, id: ClientId, new: Nick, lagging: &mut Vec<ClientId>) {
        let Some(me) = self.users.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut me.nick, new);
        me.reserved = None;
        let (new, room) = (me.nick.clone(), me.room.clone());
        if old.key() != new.key() {
            self.nicks.remove(old.key());
            self.nicks.insert(new.key().into(), id);
        }
        info!(old = %old, new = %new, "rename");
        let line = ServerLine::Rename {
            old: old.as_str(),
            new: new.as_str(),
        }
        .encode();
        let quiet = self
            .rooms
            .get(&room)
            .is_none_or(|r| r.len() > QUIET_ROOM_THRESHOLD);
        if quiet {
            self.send(id, line, lagging);
        } else {
            self.to_room(&room, &line, lagging);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::routing::log_in;
    use std::sync::atomic::Ordering;

    use super::super::tests::hub_on_store;
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::{MemStore, Store};

    fn nick(s: &str) -> Nick {
        Nick::parse(s).unwrap()
    }

    /// A hub whose store holds the accounts `dave` and `admin`.
    fn with_accounts() -> (tempfile::TempDir, Arc<MemStore>, Hub) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(
            UNIX_EPOCH + Duration::from_secs(1_795_528_800),
        ));
        let store = Arc::new(MemStore::default());
        let hub = hub_on_store(dir.path(), clock, store.clone());
        hub.with_accounts(|accounts| {
            accounts
                .set_password(&nick("dave"), "пароль-密码-🔑")
                .unwrap();
            accounts
                .set_password(&nick("admin"), "admin password")
                .unwrap();
        });
        (dir, store, hub)
    }

    #[tokio::test]
    async fn a_rename_is_told_to_the_room_and_frees_the_old_name() {
        let (_dir, _store, hub) = with_accounts();
        let alice = log_in(&hub, "alice", Role::User, "10.0.0.1");
        let bob = log_in(&hub, "bob", Role::User, "10.0.0.2");
        let carol = log_in(&hub, "carol", Role::User, "10.0.0.3");
        hub.join(carol.id, RoomName::parse("#rust").unwrap());
        for c in [&alice, &bob, &carol] {
            c.lines();
        }
        hub.rename(alice.id, nick("Alicia")).await;
        assert_eq!(alice.lines(), ["RENAME alice Alicia"]);
        assert_eq!(bob.lines(), ["RENAME alice Alicia"]);
        assert!(carol.lines().is_empty());
        hub.private(bob.id, "alicia", "привет");
        assert_eq!(alice.lines(), ["PRIVMSG bob Alicia привет"]);
        // Only the case: still a rename.
        hub.rename(alice.id, nick("ALICIA")).await;
        assert_eq!(
            bob.lines(),
            ["PRIVMSG bob Alicia привет", "RENAME Alicia ALICIA"]
        );
        // The very same name: nothing to tell the room.
        hub.rename(alice.id, nick("ALICIA")).await;
        assert_eq!(
            alice.lines().last().unwrap(),
            "INFO you are already called ALICIA"
        );
        assert!(bob.lines().is_empty());
        // The old name is free again.
        let again = log_in(&hub, "alice", Role::User, "10.0.0.4");
        assert_eq!(again.lines()[0], "WELCOME alice #lobby");
        hub.who(bob.id);
        assert_eq!(bob.lines().last().unwrap(), "USERS #lobby ALICIA bob alice");
    }

    #[tokio::test]
    async fn a_rename_is_refused_for_names_of_others_bans_and_the_admin() {
        let (_dir, _store, hub) = with_accounts();
        let admin = log_in(&hub, "admin", Role::Admin, "10.0.0.9");
        let alice = log_in(&hub, "alice", Role::User, "10.0.0.1");
        let bob = log_in(&hub, "bob", Role::User, "10.0.0.2");
        hub.ban(admin.id, "mallory", None, None).await;
        for c in [&admin, &alice, &bob] {
            c.lines();
        }
        for taken in ["BOB", "Dave", "ADMIN"] {
            hub.rename(alice.id, nick(taken)).await;
        }
        hub.rename(alice.id, nick("Mallory")).await;
        hub.rename(admin.id, nick("root")).await;
        assert_eq!(
            alice.lines(),
            [
                "ERROR nick-taken BOB is in use",
                "ERROR nick-taken Dave is someone's registered nickname",
                "ERROR nick-taken ADMIN is in use",
                "ERROR not-permitted Mallory is banned",
            ]
        );
        assert_eq!(
            admin.lines(),
            ["ERROR not-permitted the admin account keeps its name"]
        );
        assert!(bob.lines().is_empty());
    }

    #[tokio::test]
    async fn an_account_moves_with_its_holders_name() {
        let (_dir, store, hub) = with_accounts();
        let dave = log_in(&hub, "dave", Role::User, "10.0.0.1");
        dave.lines();
        hub.rename(dave.id, nick("David")).await;
        assert_eq!(dave.lines(), ["RENAME dave David"]);
        assert!(hub.password_hash(&nick("david")).is_some());
        assert!(hub.password_hash(&nick("dave")).is_none());
        let stored: Vec<String> = store
            .accounts()
            .unwrap()
            .iter()
            .map(|a| a.nick.to_string())
            .collect();
        assert_eq!(stored, ["admin", "David"]);

        // Not saved: the old name stays, the new one stays free.
        store.failing.store(true, Ordering::SeqCst);
        hub.rename(dave.id, nick("Davy")).await;
        let told = dave.lines();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].starts_with("INFO rename NOT saved: "), "{told:?}");
        hub.who(dave.id);
        assert_eq!(dave.lines(), ["USERS #lobby David"]);
        let davy = log_in(&hub, "davy", Role::User, "10.0.0.2");
        assert_eq!(davy.lines()[0], "WELCOME davy #lobby");
    }

    /// Past [`QUIET_ROOM_THRESHOLD`] members, as joins and parts, a rename
    /// is told to the one renaming only.
    #[tokio::test]
    async fn a_big_room_hears_no_renames() {
        let (_dir, _store, hub) = with_accounts();
        let observer = log_in(&hub, "observer", Role::User, "10.0.0.1");
        for i in 0..QUIET_ROOM_THRESHOLD {
            log_in(&hub, &format!("u{i}"), Role::User, "10.0.1.1");
        }
        let last = log_in(&hub, "last", Role::User, "10.0.2.1");
        observer.lines();
        last.lines();
        hub.rename(last.id, nick("Zuletzt")).await;
        assert_eq!(last.lines(), ["RENAME last Zuletzt"]);
        assert!(observer.lines().is_empty());
    }

    /// A nickname that came in with an invite keeps it under its new name.
    #[tokio::test]
    async fn an_invited_nicknames_binding_moves_with_it() {
        use crate::store::conformance::{at, invite, T0};
        let (_dir, _store, hub) = with_accounts();
        let store = hub.storage().store.clone();
        store
            .add_invite(&invite(7, "abcdef", 2, T0 + 86_400, "admin"))
            .unwrap();
        assert!(store
            .take_invite(&[7; 32], "erin", at(T0))
            .unwrap()
            .is_some());
        let erin = log_in(&hub, "Erin", Role::User, "10.0.0.1");
        erin.lines();
        hub.rename(erin.id, nick("Erika")).await;
        assert_eq!(erin.lines(), ["RENAME Erin Erika"]);
        let live = store.invites(at(T0)).unwrap();
        assert_eq!(live[0].bound, ["erika"]);
        assert_eq!(live[0].uses_left, 1, "a move takes no use");
    }

    /// An account's rename and an `/op` waiting for a slow store hold no
    /// lock anyone else needs: a login and a message go through meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_account_write_holds_up_no_one_else() {
        let (_dir, store, hub) = with_accounts();
        hub.with_accounts(|a| a.set_password(&nick("erin"), "erin's password"))
            .unwrap();
        let admin = log_in(&hub, "admin", Role::Admin, "10.0.0.9");
        let dave = log_in(&hub, "dave", Role::User, "10.0.0.1");
        admin.lines();
        dave.lines();
        store.gate_closed.store(true, Ordering::SeqCst);
        let (h1, h2) = (hub.clone(), hub.clone());
        let (dave_id, admin_id) = (dave.id, admin.id);
        let renaming = tokio::spawn(async move { h1.rename(dave_id, nick("David")).await });
        let opping =
            tokio::spawn(async move { h2.set_role(admin_id, "erin", Role::Moderator).await });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while store.at_gate.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(store.at_gate.load(Ordering::SeqCst), 2);

        let (tx, rx) = std::sync::mpsc::channel();
        let h3 = hub.clone();
        std::thread::spawn(move || {
            let frank = log_in(&h3, "frank", Role::User, "10.0.0.3");
            h3.private(frank.id, "admin", "привет 你好");
            let _ = tx.send(frank.lines());
        });
        let meanwhile = rx.recv_timeout(Duration::from_secs(2));
        store.gate_closed.store(false, Ordering::SeqCst);
        renaming.await.unwrap();
        opping.await.unwrap();
        let frank = meanwhile.expect("the login waited for the store");
        assert_eq!(frank[0], "WELCOME frank #lobby");
        let mut told = admin.lines();
        // The two writes finish in either order.
        told[2..].sort();
        assert_eq!(
            told,
            [
                "JOIN #lobby frank",
                "PRIVMSG frank admin привет 你好",
                "INFO erin is now a moderator",
                "RENAME dave David",
            ]
        );
        assert_eq!(
            hub.with_accounts(|a| a.role_of(&nick("ERIN"))),
            Some(Role::Moderator)
        );
        assert!(hub.password_hash(&nick("david")).is_some());
    }

    /// Two sessions renaming to one name at once: one gets it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_renames_to_one_name_give_it_to_one() {
        let (_dir, _store, hub) = with_accounts();
        let a = log_in(&hub, "a1", Role::User, "10.0.0.1");
        let b = log_in(&hub, "b1", Role::User, "10.0.0.2");
        a.lines();
        b.lines();
        let (h1, h2) = (hub.clone(), hub.clone());
        let (ida, idb) = (a.id, b.id);
        let one = tokio::spawn(async move { h1.rename(ida, nick("Same")).await });
        let two = tokio::spawn(async move { h2.rename(idb, nick("SAME")).await });
        one.await.unwrap();
        two.await.unwrap();
        let (la, lb) = (a.lines(), b.lines());
        let renames = la.iter().filter(|l| l.starts_with("RENAME ")).count();
        let taken: Vec<_> = la
            .iter()
            .chain(&lb)
            .filter(|l| l.starts_with("ERROR nick-taken "))
            .collect();
        assert_eq!((renames, taken.len()), (1, 1), "{la:?} {lb:?}");
    }
}
