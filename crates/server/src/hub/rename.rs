//! `/nick NEW`: a connected user takes another nickname in place, and its
//! room sees `RENAME <old> <new>`.
//!
//! ```text
//! reserve (state lock): checks, NEW's key into `nicks` → the store moves
//! the account (an account holder's) or the invite bindings (anyone
//! else's) on the blocking pool → commit (state lock): OLD's key freed,
//! User.nick = NEW, RENAME to the room
//! ```
//!
//! The reservation settles races: from the moment the checks pass, a login
//! or another rename to the same name (any case) finds it taken. Someone
//! else's account is refused in the same section, so an account's
//! nickname stays its holder's also while the holder is offline. A
//! reservation whose user leaves meanwhile goes with it
//! ([`State::forget_nicks`]); one whose move could not be saved is
//! released, and the user keeps the old name.

use tracing::{info, warn};

use super::*;

/// What a rename moves, once reserved.
struct Reserved {
    old: Nick,
    /// The old nickname is an account, so the account moves with it.
    account: bool,
}

impl Hub {
    /// `/nick NEW` by `id`.
    pub(crate) async fn rename(&self, id: ClientId, new: Nick) {
        let banned = lock(&self.shared.bans).find_nick(&new).is_some();
        let Some(reserved) = self.section(|st, lagging| {
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
        let moved = match reserved.account {
            true => self.move_account(&reserved.old, &new).await,
            false => self.move_bindings(&reserved.old, &new).await,
        };
        if let Err(why) = moved {
            warn!(old = %reserved.old, new = %new, error = %why, "rename not saved");
            return self.section(|st, lagging| {
                st.release(id, &new);
                let text = format!("rename NOT saved: {why}");
                st.send(id, ServerLine::Info(&text).encode(), lagging);
            });
        }
        self.section(|st, lagging| st.finish_rename(id, new, lagging));
    }

    /// The checks of a rename, under the state lock (the accounts' lock
    /// taken inside it); on success the new key is reserved for `id`.
    fn reserve(
        &self,
        st: &mut State,
        id: ClientId,
        new: &Nick,
        banned: bool,
    ) -> Result<Reserved, (ErrorCode, String)> {
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
        let (account, others) = {
            let accounts = lock(&self.shared.accounts);
            (
                accounts.is_registered(&old),
                // `admin` always is one on a real server; never a rename's
                // target even where it is not.
                !same && (accounts.is_registered(new) || Role::of(new).is_admin()),
            )
        };
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
        Ok(Reserved { old, account })
    }

    /// Moves the account at `old` to `new` in the store and the cache, on
    /// the blocking pool; the error says why not.
    async fn move_account(&self, old: &Nick, new: &Nick) -> Result<(), String> {
        let shared = self.shared.clone();
        let (old, new) = (old.clone(), new.clone());
        tokio::task::spawn_blocking(move || {
            lock(&shared.accounts)
                .rename(&old, &new)
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("the rename task failed: {e}")))
    }
}

impl Hub {
    /// Moves the invite bindings of `old` to `new`: a nickname that came in
    /// with an invite comes back with it under its new name. (The store
    /// moves no account here: `old` is none.)
    async fn move_bindings(&self, old: &Nick, new: &Nick) -> Result<(), String> {
        let (old, new) = (old.key().to_owned(), new.clone());
        self.storage()
            .call(move |store| store.rename(&old, &new))
            .await
            .map_err(|e| e.to_string())
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
    use super::super::tests::hub_with;
    use super::*;
    use crate::clock::ManualClock;

    fn nick(s: &str) -> Nick {
        Nick::parse(s).unwrap()
    }

    /// A hub whose accounts file (in its own directory, `accounts/`)
    /// holds `dave` and `admin`.
    fn with_accounts() -> (tempfile::TempDir, Hub) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("accounts")).unwrap();
        let mut accounts = Accounts::load(&dir.path().join("accounts/accounts.txt")).unwrap();
        accounts
            .set_password(&nick("dave"), "пароль-密码-🔑")
            .unwrap();
        accounts
            .set_password(&nick("admin"), "admin password")
            .unwrap();
        let clock = Arc::new(ManualClock::new(
            UNIX_EPOCH + Duration::from_secs(1_795_528_800),
        ));
        let hub = hub_with(dir.path(), clock, accounts);
        (dir, hub)
    }

    #[tokio::test]
    async fn a_rename_is_told_to_the_room_and_frees_the_old_name() {
        let (_dir, hub) = with_accounts();
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
        let (_dir, hub) = with_accounts();
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
        let (dir, hub) = with_accounts();
        let dave = log_in(&hub, "dave", Role::User, "10.0.0.1");
        dave.lines();
        hub.rename(dave.id, nick("David")).await;
        assert_eq!(dave.lines(), ["RENAME dave David"]);
        assert!(hub.password_hash(&nick("david")).is_some());
        assert!(hub.password_hash(&nick("dave")).is_none());
        let file = std::fs::read_to_string(dir.path().join("accounts/accounts.txt")).unwrap();
        assert!(file.contains("\nDavid $argon2id$"), "{file}");
        assert!(!file.contains("\ndave "), "{file}");

        // Not saved: the old name stays, the new one stays free.
        std::fs::remove_dir_all(dir.path().join("accounts")).unwrap();
        hub.rename(dave.id, nick("Davy")).await;
        let told = dave.lines();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(
            told[0].starts_with("INFO rename NOT saved: cannot write "),
            "{told:?}"
        );
        hub.who(dave.id);
        assert_eq!(dave.lines(), ["USERS #lobby David"]);
        let davy = log_in(&hub, "davy", Role::User, "10.0.0.2");
        assert_eq!(davy.lines()[0], "WELCOME davy #lobby");
    }

    /// Past [`QUIET_ROOM_THRESHOLD`] members, as joins and parts, a rename
    /// is told to the one renaming only.
    #[tokio::test]
    async fn a_big_room_hears_no_renames() {
        let (_dir, hub) = with_accounts();
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
        let (_dir, hub) = with_accounts();
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

    /// Two sessions renaming to one name at once: one gets it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_renames_to_one_name_give_it_to_one() {
        let (_dir, hub) = with_accounts();
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
