//! The store: accounts with their roles, invite codes, and the few settings
//! changed by command, behind one small interface so that another backend
//! (a cluster's) can replace the embedded database.
//!
//! ```text
//! hub / peer ─spawn_blocking─▶ Store ─▶ SqliteStore (sqlite.rs, <data-dir>/tlschat.db)
//!                                   └─▶ MemStore (tests)
//! ```
//!
//! Every method blocks (disk I/O, fsync, SQLite's locks): async callers run
//! it on the blocking pool, never on the broadcast path. A method returns
//! only after its change is durable, so a caller may confirm it to the user
//! and then change its in-memory view (the rule the bans file follows).
//! Times are whole seconds; expiry is decided by the `now` the caller passes
//! in, read from its [`Clock`](crate::clock::Clock).
//!
//! Invite codes never reach the store: only their SHA-256 (the lookup key)
//! and their public prefix. Nicknames are keyed by [`Nick::key`], so
//! `Alice` and `alice` are one account.

#[cfg(test)]
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
#[cfg(test)]
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use tlschat_protocol::names::Nick;

use crate::accounts::{AccountsError, Role};
use crate::clock::Clock;

/// Length of an invite's public prefix, in characters (ASCII base32).
pub(crate) const INVITE_PREFIX_LEN: usize = 6;

/// One account.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct AccountRow {
    pub(crate) nick: Nick,
    /// The argon2 PHC string.
    pub(crate) phc: String,
    pub(crate) role: Role,
    pub(crate) created: SystemTime,
    /// The address group it was registered from (the per-address cap);
    /// `None` for accounts made by the operator or imported.
    pub(crate) created_from: Option<IpAddr>,
}

impl fmt::Debug for AccountRow {
    // The hash is not a password, but it can be attacked offline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountRow")
            .field("nick", &self.nick.as_str())
            .field("role", &self.role)
            .field("created", &self.created)
            .field("created_from", &self.created_from)
            .finish_non_exhaustive()
    }
}

/// One invite code, as stored: its hash, never the code.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct InviteRow {
    /// SHA-256 of the code (lowercase), the lookup key.
    pub(crate) hash: [u8; 32],
    /// The code's first [`INVITE_PREFIX_LEN`] characters, shown in lists.
    pub(crate) prefix: String,
    /// How many more nicknames it admits.
    pub(crate) uses_left: u32,
    pub(crate) expires: SystemTime,
    pub(crate) created: SystemTime,
    /// The nickname of whoever made it, as spelt.
    pub(crate) by: String,
    /// The nickname keys it admitted; each may come back until it expires.
    pub(crate) bound: Vec<String>,
}

impl fmt::Debug for InviteRow {
    // The prefix only: logs name a code the way `/invites` does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteRow")
            .field("prefix", &self.prefix)
            .field("uses_left", &self.uses_left)
            .field("expires", &self.expires)
            .field("by", &self.by)
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

/// Why the store refused or failed. Strings, not a backend's error type,
/// so every backend reports alike.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The account (or the new name of a rename) is already taken.
    #[error("that nickname is already an account")]
    Exists,
    /// The account to change is not there (anymore).
    #[error("no such account")]
    NoSuchAccount,
    #[error("cannot open the database {}: {reason}; check that the data directory is writable", path.display())]
    Open { path: PathBuf, reason: String },
    #[error("the database {} is damaged or not tlschat's ({reason}); stop the server, keep the file for inspection and restore the last `tlschat-server backup` as {}", path.display(), path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("the database {} was written by a newer tlschat (schema {version}); run that version, or restore a backup made by this one", path.display())]
    Newer { path: PathBuf, version: i64 },
    #[error("cannot read the database {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("cannot write the database {}: {reason}; check the disk is not full", path.display())]
    Write { path: PathBuf, reason: String },
    /// A saved setting holds a value this version does not know.
    #[error("the saved setting `{key}` is `{value}`, which this version does not know; set it again (`/registration`)")]
    BadSetting { key: &'static str, value: String },
    /// The old accounts file could not be imported; nothing was.
    #[error("{source}; nothing was imported, the server starts once the file is fixed")]
    Import {
        #[source]
        source: AccountsError,
    },
    /// A store call on the blocking pool panicked or was cancelled at
    /// shutdown; its change may or may not be committed.
    #[error("the database call did not finish: {0}")]
    Task(String),
}

/// The store and the clock, as the hub and the peers reach them: one
/// handle, cheap to clone. Every store call goes through [`Storage::call`],
/// which runs it on the blocking pool, so no caller blocks a runtime
/// worker (nor the hub's state lock, which it must not hold meanwhile).
#[derive(Clone)]
pub(crate) struct Storage {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// "Now", for anything stored with a time or checked for expiry.
    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Runs `f` against the store on the blocking pool and waits for it.
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .unwrap_or_else(|e| Err(StoreError::Task(e.to_string())))
    }

    /// An empty [`MemStore`] on the system clock, for tests.
    #[cfg(test)]
    pub(crate) fn in_memory() -> Storage {
        Storage {
            store: Arc::new(MemStore::default()),
            clock: Arc::new(crate::clock::SystemClock),
        }
    }
}

/// What a `/register` must still meet when its account is written. The
/// store checks it in the transaction that inserts the account, so
/// registrations running at once cannot pass a cap together, and a code's
/// use is taken only by a registration that is made.
#[derive(Debug, Clone)]
pub(crate) struct Terms {
    /// At most this many accounts in all (`0`: no cap).
    pub(crate) max_accounts: usize,
    /// At most this many accounts made from the new one's `created_from`
    /// at or after `since` (`0`: no cap).
    pub(crate) per_group: u32,
    pub(crate) since: SystemTime,
    /// The hash of an invite code to take a use of for the nickname,
    /// after every other check.
    pub(crate) code: Option<[u8; 32]>,
    pub(crate) now: SystemTime,
}

/// Why [`Store::register_account`] made no account.
#[derive(Debug, Error)]
pub(crate) enum Refusal {
    #[error("that nickname is already an account")]
    Exists,
    #[error("the server has all the accounts it takes")]
    Full,
    #[error("the address has made all the accounts it may")]
    AddressCap,
    /// No such code, expired, used up or revoked.
    #[error("that invite code is not valid")]
    BadCode,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Accounts, roles, invites and settings. All methods block; see the module
/// docs.
pub(crate) trait Store: Send + Sync + 'static {
    /// Every account, for the in-memory cache (start and reload).
    fn accounts(&self) -> Result<Vec<AccountRow>, StoreError>;
    /// [`StoreError::Exists`] if the nickname (any case) is an account.
    fn create_account(&self, row: &AccountRow) -> Result<(), StoreError>;
    /// Creates the account if `terms` allow it, in one transaction: the
    /// nickname free, the caps not reached, then the code (if any) taken.
    fn register_account(&self, row: &AccountRow, terms: &Terms) -> Result<(), Refusal>;
    fn set_password(&self, key: &str, phc: &str) -> Result<(), StoreError>;
    fn set_role(&self, key: &str, role: Role) -> Result<(), StoreError>;
    /// Whether there was such an account.
    fn delete_account(&self, key: &str) -> Result<bool, StoreError>;
    /// Moves the account at `old_key` (if any), every invite binding of
    /// `old_key` and the codes made by `old_key` to `new`, in one
    /// transaction. [`StoreError::Exists`] if
    /// `new` is someone else's account; a change of case only is allowed.
    fn rename(&self, old_key: &str, new: &Nick) -> Result<(), StoreError>;
    /// Accounts registered from `group` at or after `since`.
    fn registrations_since(&self, group: IpAddr, since: SystemTime) -> Result<u32, StoreError>;
    fn add_invite(&self, invite: &InviteRow) -> Result<(), StoreError>;
    /// Admits `nick_key` with the code hashed to `hash`, atomically: a live
    /// code already bound to `nick_key` admits it again for free; otherwise
    /// one use is taken and the nickname bound. `None`: no such code,
    /// expired, or used up. The row returned is the state after.
    fn take_invite(
        &self,
        hash: &[u8; 32],
        nick_key: &str,
        now: SystemTime,
    ) -> Result<Option<InviteRow>, StoreError>;
    /// The live (unexpired) codes, oldest first, with their bound nicknames.
    fn invites(&self, now: SystemTime) -> Result<Vec<InviteRow>, StoreError>;
    /// Deletes every code whose prefix is the first
    /// [`INVITE_PREFIX_LEN`] characters of `prefix` (case-insensitively) and,
    /// with `by`, was made by that nickname (key); returns them.
    fn revoke_invites(&self, prefix: &str, by: Option<&str>) -> Result<Vec<InviteRow>, StoreError>;
    /// Deletes the codes expired at `now`; returns how many.
    fn delete_expired_invites(&self, now: SystemTime) -> Result<usize, StoreError>;
    fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// `None` removes the setting.
    fn set_setting(&self, key: &str, value: Option<&str>) -> Result<(), StoreError>;
}

/// Who may make their nickname an account; one type with the
/// `/registration` command's argument, so the word means the same in the
/// config file, the command and the store.
pub use tlschat_protocol::Registration;

/// The setting under which `/registration` saves its choice.
const REGISTRATION_SETTING: &str = "registration";

/// The policy saved by `/registration`, which wins over the config; `None`
/// when none is saved (the config decides). A saved word this version does
/// not know is an error, not a silent `open`.
pub(crate) fn saved_registration(store: &dyn Store) -> Result<Option<Registration>, StoreError> {
    store
        .setting(REGISTRATION_SETTING)?
        .map(|word| {
            word.parse().map_err(|_| StoreError::BadSetting {
                key: REGISTRATION_SETTING,
                value: word,
            })
        })
        .transpose()
}

/// Saves `policy` for [`saved_registration`]; `None` goes back to the
/// config's.
pub(crate) fn save_registration(
    store: &dyn Store,
    policy: Option<Registration>,
) -> Result<(), StoreError> {
    store.set_setting(REGISTRATION_SETTING, policy.map(Registration::as_str))
}

/// The first [`INVITE_PREFIX_LEN`] characters of `prefix`, lowercased: how a
/// revocation matches stored prefixes.
pub(crate) fn prefix_key(prefix: &str) -> String {
    prefix
        .chars()
        .take(INVITE_PREFIX_LEN)
        .collect::<String>()
        .to_lowercase()
}

/// `t` as whole seconds since 1970, as the database holds it (clamped: a
/// time before 1970 is 0).
pub(crate) fn to_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The inverse of [`to_secs`]; a negative number (a hand-edited row) is 1970.
pub(crate) fn from_secs(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// A store in memory, with the semantics of the database: for tests of the
/// code above the store.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct MemStore {
    state: Mutex<MemState>,
    /// While a test keeps it set, `set_role` and `rename` wait, as on a
    /// slow disk or a busy database.
    pub(crate) gate_closed: std::sync::atomic::AtomicBool,
    /// How many `set_role` and `rename` calls reached the gate.
    pub(crate) at_gate: std::sync::atomic::AtomicUsize,
    /// While set, `set_role` and `rename` fail past the gate.
    pub(crate) failing: std::sync::atomic::AtomicBool,
}

#[cfg(test)]
#[derive(Debug, Default)]
struct MemState {
    accounts: BTreeMap<String, AccountRow>,
    /// In order of creation, as the database lists them.
    invites: Vec<InviteRow>,
    settings: BTreeMap<String, String>,
}

#[cfg(test)]
impl MemStore {
    fn with<T>(&self, f: impl FnOnce(&mut MemState) -> T) -> T {
        // A panic in another test thread must not hide this one's result.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }

    /// Waits while [`MemStore::gate_closed`], then fails if
    /// [`MemStore::failing`].
    fn pass_gate(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        self.at_gate.fetch_add(1, Ordering::SeqCst);
        while self.gate_closed.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        match self.failing.load(Ordering::SeqCst) {
            true => Err(StoreError::Task("the disk is gone".to_owned())),
            false => Ok(()),
        }
    }
}

#[cfg(test)]
impl Store for MemStore {
    fn accounts(&self) -> Result<Vec<AccountRow>, StoreError> {
        Ok(self.with(|s| s.accounts.values().cloned().collect()))
    }

    fn create_account(&self, row: &AccountRow) -> Result<(), StoreError> {
        self.with(|s| {
            if s.accounts.contains_key(row.nick.key()) {
                return Err(StoreError::Exists);
            }
            let mut row = row.clone();
            row.created = from_secs(to_secs(row.created));
            s.accounts.insert(row.nick.key().to_owned(), row);
            Ok(())
        })
    }

    /// Not one atomic section like the database's transaction: the tests
    /// that use this store register from one thread.
    fn register_account(&self, row: &AccountRow, terms: &Terms) -> Result<(), Refusal> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.accounts.contains_key(row.nick.key()) {
            return Err(Refusal::Exists);
        }
        if terms.max_accounts > 0 && state.accounts.len() >= terms.max_accounts {
            return Err(Refusal::Full);
        }
        drop(state);
        if let (Some(group), true) = (row.created_from, terms.per_group > 0) {
            if self.registrations_since(group, terms.since)? >= terms.per_group {
                return Err(Refusal::AddressCap);
            }
        }
        if let Some(hash) = &terms.code {
            if self.take_invite(hash, row.nick.key(), terms.now)?.is_none() {
                return Err(Refusal::BadCode);
            }
        }
        Ok(self.create_account(row)?)
    }

    fn set_password(&self, key: &str, phc: &str) -> Result<(), StoreError> {
        self.with(|s| {
            let row = s.accounts.get_mut(key).ok_or(StoreError::NoSuchAccount)?;
            row.phc = phc.to_owned();
            Ok(())
        })
    }

    fn set_role(&self, key: &str, role: Role) -> Result<(), StoreError> {
        self.pass_gate()?;
        self.with(|s| {
            let row = s.accounts.get_mut(key).ok_or(StoreError::NoSuchAccount)?;
            row.role = role;
            Ok(())
        })
    }

    fn delete_account(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.accounts.remove(key).is_some()))
    }

    fn rename(&self, old_key: &str, new: &Nick) -> Result<(), StoreError> {
        self.pass_gate()?;
        self.with(|s| {
            if new.key() != old_key && s.accounts.contains_key(new.key()) {
                return Err(StoreError::Exists);
            }
            if let Some(mut row) = s.accounts.remove(old_key) {
                row.nick = new.clone();
                s.accounts.insert(new.key().to_owned(), row);
            }
            for invite in &mut s.invites {
                let mut bound: Vec<String> = invite
                    .bound
                    .iter()
                    .map(|k| if k == old_key { new.key() } else { k })
                    .map(str::to_owned)
                    .collect();
                bound.sort();
                bound.dedup();
                invite.bound = bound;
                if invite.by.to_ascii_lowercase() == old_key {
                    invite.by = new.as_str().to_owned();
                }
            }
            Ok(())
        })
    }

    fn registrations_since(&self, group: IpAddr, since: SystemTime) -> Result<u32, StoreError> {
        let since = to_secs(since);
        Ok(self.with(|s| {
            let n = s
                .accounts
                .values()
                .filter(|a| a.created_from == Some(group) && to_secs(a.created) >= since)
                .count();
            u32::try_from(n).unwrap_or(u32::MAX)
        }))
    }

    fn add_invite(&self, invite: &InviteRow) -> Result<(), StoreError> {
        self.with(|s| {
            if s.invites.iter().any(|i| i.hash == invite.hash) {
                return Err(StoreError::Exists);
            }
            let mut row = invite.clone();
            row.expires = from_secs(to_secs(row.expires));
            row.created = from_secs(to_secs(row.created));
            row.bound.sort();
            s.invites.push(row);
            Ok(())
        })
    }

    fn take_invite(
        &self,
        hash: &[u8; 32],
        nick_key: &str,
        now: SystemTime,
    ) -> Result<Option<InviteRow>, StoreError> {
        let now = to_secs(now);
        Ok(self.with(|s| {
            let invite = s
                .invites
                .iter_mut()
                .find(|i| &i.hash == hash && to_secs(i.expires) > now)?;
            if invite.bound.iter().any(|k| k == nick_key) {
                return Some(invite.clone());
            }
            invite.uses_left = invite.uses_left.checked_sub(1)?;
            invite.bound.push(nick_key.to_owned());
            invite.bound.sort();
            Some(invite.clone())
        }))
    }

    fn invites(&self, now: SystemTime) -> Result<Vec<InviteRow>, StoreError> {
        let now = to_secs(now);
        Ok(self.with(|s| {
            s.invites
                .iter()
                .filter(|i| to_secs(i.expires) > now)
                .cloned()
                .collect()
        }))
    }

    fn revoke_invites(&self, prefix: &str, by: Option<&str>) -> Result<Vec<InviteRow>, StoreError> {
        let prefix = prefix_key(prefix);
        Ok(self.with(|s| {
            let (gone, kept) = std::mem::take(&mut s.invites).into_iter().partition(|i| {
                i.prefix.to_lowercase() == prefix && by.is_none_or(|b| i.by.eq_ignore_ascii_case(b))
            });
            s.invites = kept;
            gone
        }))
    }

    fn delete_expired_invites(&self, now: SystemTime) -> Result<usize, StoreError> {
        let now = to_secs(now);
        Ok(self.with(|s| {
            let before = s.invites.len();
            s.invites.retain(|i| to_secs(i.expires) > now);
            before - s.invites.len()
        }))
    }

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.with(|s| s.settings.get(key).cloned()))
    }

    fn set_setting(&self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        self.with(|s| match value {
            Some(v) => {
                s.settings.insert(key.to_owned(), v.to_owned());
            }
            None => {
                s.settings.remove(key);
            }
        });
        Ok(())
    }
}

/// The behaviour every [`Store`] must have, run against each backend.
#[cfg(test)]
pub(crate) mod conformance {
    use super::*;
    use std::sync::{Arc, Barrier};

    pub(crate) const T0: u64 = 1_795_528_800; // 2026-11-24T14:00:00Z

    pub(crate) fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    pub(crate) fn nick(s: &str) -> Nick {
        Nick::parse(s).unwrap()
    }

    pub(crate) fn account(n: &str, role: Role, from: Option<&str>, created: u64) -> AccountRow {
        AccountRow {
            nick: nick(n),
            phc: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ${n}"),
            role,
            created: at(created),
            created_from: from.map(|a| a.parse().unwrap()),
        }
    }

    pub(crate) fn invite(seed: u8, prefix: &str, uses: u32, expires: u64, by: &str) -> InviteRow {
        InviteRow {
            hash: [seed; 32],
            prefix: prefix.to_owned(),
            uses_left: uses,
            expires: at(expires),
            created: at(T0),
            by: by.to_owned(),
            bound: Vec::new(),
        }
    }

    pub(crate) fn accounts_are_case_insensitive_and_keep_their_spelling(store: &dyn Store) {
        store
            .create_account(&account("Alice", Role::User, Some("203.0.113.7"), T0))
            .unwrap();
        store
            .create_account(&account("admin", Role::Admin, None, T0))
            .unwrap();
        let dup = store.create_account(&account("ALICE", Role::User, None, T0));
        assert!(matches!(dup, Err(StoreError::Exists)), "{dup:?}");
        let all = store.accounts().unwrap();
        let names: Vec<&str> = all.iter().map(|a| a.nick.as_str()).collect();
        assert_eq!(names, ["admin", "Alice"]);
        assert_eq!(
            all[1],
            account("Alice", Role::User, Some("203.0.113.7"), T0)
        );

        let phc = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$пароль-密码-🔑";
        store.set_password("alice", phc).unwrap();
        store.set_role("alice", Role::Moderator).unwrap();
        let alice = store.accounts().unwrap().remove(1);
        assert_eq!((alice.phc.as_str(), alice.role), (phc, Role::Moderator));
        assert!(matches!(
            store.set_password("bob", phc),
            Err(StoreError::NoSuchAccount)
        ));
        assert!(matches!(
            store.set_role("bob", Role::User),
            Err(StoreError::NoSuchAccount)
        ));
        assert!(store.delete_account("alice").unwrap());
        assert!(!store.delete_account("alice").unwrap());
        assert_eq!(store.accounts().unwrap().len(), 1);
    }

    pub(crate) fn rename_moves_the_account_and_its_bindings(store: &dyn Store) {
        store
            .create_account(&account("bob", Role::Moderator, None, T0))
            .unwrap();
        store
            .create_account(&account("carol", Role::User, None, T0))
            .unwrap();
        store
            .add_invite(&invite(1, "abcdef", 2, T0 + 3600, "admin"))
            .unwrap();
        store.take_invite(&[1; 32], "bob", at(T0)).unwrap().unwrap();
        // Bob, a moderator, made a code: it stays his under his new name.
        store
            .add_invite(&invite(2, "bobbed", 1, T0 + 3600, "Bob"))
            .unwrap();

        let taken = store.rename("bob", &nick("carol"));
        assert!(matches!(taken, Err(StoreError::Exists)), "{taken:?}");
        store.rename("bob", &nick("Robert")).unwrap();
        let names: Vec<(String, Role)> = store
            .accounts()
            .unwrap()
            .into_iter()
            .map(|a| (a.nick.as_str().to_owned(), a.role))
            .collect();
        assert_eq!(
            names,
            [
                ("carol".to_owned(), Role::User),
                ("Robert".to_owned(), Role::Moderator)
            ]
        );
        let live = store.invites(at(T0)).unwrap();
        assert_eq!(live[0].bound, ["robert"]);
        let made: Vec<&str> = live.iter().map(|r| r.by.as_str()).collect();
        assert_eq!(made, ["admin", "Robert"]);
        // The binding moved: the new name comes back for free, the old
        // one would take a use.
        let again = store.take_invite(&[1; 32], "robert", at(T0)).unwrap();
        assert_eq!(again.unwrap().uses_left, 1);
        // A change of case only is a rename too.
        store.rename("robert", &nick("ROBERT")).unwrap();
        assert!(store
            .accounts()
            .unwrap()
            .iter()
            .any(|a| a.nick.as_str() == "ROBERT"));
        let revoked = store.revoke_invites("bobbed", Some("robert")).unwrap();
        let by: Vec<&str> = revoked.iter().map(|r| r.by.as_str()).collect();
        assert_eq!(by, ["ROBERT"]);
        // A session without an account (invite-bound only) renames too.
        store.rename("nobody", &nick("somebody")).unwrap();
    }

    pub(crate) fn invites_are_used_up_expire_and_revoke(store: &dyn Store) {
        store
            .add_invite(&invite(1, "abcdef", 1, T0 + 60, "admin"))
            .unwrap();
        store
            .add_invite(&invite(2, "abcxyz", 5, T0 + 7200, "Mod1"))
            .unwrap();
        store
            .add_invite(&invite(3, "abcdeg", 5, T0 + 7200, "admin"))
            .unwrap();
        let dup = store.add_invite(&invite(1, "abcdef", 1, T0 + 60, "admin"));
        assert!(matches!(dup, Err(StoreError::Exists)), "{dup:?}");

        let got = store
            .take_invite(&[1; 32], "alice", at(T0))
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.uses_left, got.bound.as_slice()),
            (0, &["alice".to_owned()][..])
        );
        assert!(store
            .take_invite(&[1; 32], "bob", at(T0))
            .unwrap()
            .is_none());
        // The bound nickname comes back while the code lives...
        assert!(store
            .take_invite(&[1; 32], "alice", at(T0 + 59))
            .unwrap()
            .is_some());
        // ...and not at its expiry.
        assert!(store
            .take_invite(&[1; 32], "alice", at(T0 + 60))
            .unwrap()
            .is_none());
        assert!(store
            .take_invite(&[9; 32], "alice", at(T0))
            .unwrap()
            .is_none());

        let live: Vec<String> = store
            .invites(at(T0 + 60))
            .unwrap()
            .into_iter()
            .map(|i| i.prefix)
            .collect();
        assert_eq!(live, ["abcxyz", "abcdeg"]);

        // A moderator revokes its own codes only; the prefix is compared on
        // its first six characters, in any case.
        let none = store
            .revoke_invites("ABCDEG-and-more", Some("mod1"))
            .unwrap();
        assert!(none.is_empty());
        let gone = store.revoke_invites("ABCXYZQQ", Some("mod1")).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].by, "Mod1");
        let gone = store.revoke_invites("abcdeg", None).unwrap();
        assert_eq!(gone.len(), 1);
        assert!(store
            .take_invite(&[3; 32], "carol", at(T0))
            .unwrap()
            .is_none());

        assert_eq!(store.delete_expired_invites(at(T0 + 60)).unwrap(), 1);
        assert_eq!(store.delete_expired_invites(at(T0 + 60)).unwrap(), 0);
        assert!(store.invites(at(T0)).unwrap().is_empty());
    }

    pub(crate) fn registrations_are_counted_per_group_and_window(store: &dyn Store) {
        let a = "198.51.100.0";
        store
            .create_account(&account("one", Role::User, Some(a), T0 - 86_401))
            .unwrap();
        store
            .create_account(&account("two", Role::User, Some(a), T0 - 86_400))
            .unwrap();
        store
            .create_account(&account("three", Role::User, Some(a), T0))
            .unwrap();
        store
            .create_account(&account("four", Role::User, Some("2001:db8::"), T0))
            .unwrap();
        store
            .create_account(&account("five", Role::User, None, T0))
            .unwrap();
        let count = |g: &str| {
            store
                .registrations_since(g.parse().unwrap(), at(T0 - 86_400))
                .unwrap()
        };
        assert_eq!(count(a), 2);
        assert_eq!(count("2001:db8::"), 1);
        assert_eq!(count("192.0.2.0"), 0);
    }

    /// `register_account` refuses what its terms refuse, in order, and
    /// takes a code's use only for an account it makes.
    pub(crate) fn registration_terms_are_checked_with_the_insert(store: &dyn Store) {
        let a = "198.51.100.0";
        let open = Terms {
            max_accounts: 0,
            per_group: 0,
            since: at(T0 - 86_400),
            code: None,
            now: at(T0),
        };
        store
            .register_account(&account("one", Role::User, Some(a), T0), &open)
            .unwrap();
        let again = store.register_account(&account("ONE", Role::User, Some(a), T0), &open);
        assert!(matches!(again, Err(Refusal::Exists)), "{again:?}");
        store
            .add_invite(&invite(9, "abcdef", 1, T0 + 60, "admin"))
            .unwrap();
        let with_code = |max_accounts, per_group, seed| Terms {
            max_accounts,
            per_group,
            code: Some([seed; 32]),
            ..open.clone()
        };
        let two = account("two", Role::User, Some(a), T0);
        let full = store.register_account(&two, &with_code(1, 0, 9));
        assert!(matches!(full, Err(Refusal::Full)), "{full:?}");
        let capped = store.register_account(&two, &with_code(0, 1, 9));
        assert!(matches!(capped, Err(Refusal::AddressCap)), "{capped:?}");
        let bad = store.register_account(&two, &with_code(0, 0, 8));
        assert!(matches!(bad, Err(Refusal::BadCode)), "{bad:?}");
        assert_eq!(store.accounts().unwrap().len(), 1);
        assert_eq!(
            store.invites(at(T0)).unwrap()[0].uses_left,
            1,
            "no use spent"
        );
        store.register_account(&two, &with_code(2, 2, 9)).unwrap();
        let used = &store.invites(at(T0)).unwrap()[0];
        assert_eq!(
            (used.uses_left, used.bound.as_slice()),
            (0, &["two".to_owned()][..])
        );
    }

    pub(crate) fn settings_are_set_and_cleared(store: &dyn Store) {
        assert_eq!(store.setting("registration").unwrap(), None);
        store
            .set_setting("registration", Some("invite-only"))
            .unwrap();
        store.set_setting("note", Some("заметка 笔记 📝")).unwrap();
        assert_eq!(
            store.setting("registration").unwrap().as_deref(),
            Some("invite-only")
        );
        assert_eq!(
            store.setting("note").unwrap().as_deref(),
            Some("заметка 笔记 📝")
        );
        store.set_setting("registration", None).unwrap();
        store.set_setting("registration", None).unwrap();
        assert_eq!(store.setting("registration").unwrap(), None);
    }

    /// Two threads, one per store handle, race for the last use with
    /// different nicknames: exactly one gets in.
    pub(crate) fn the_last_use_goes_to_exactly_one(a: Arc<dyn Store>, b: Arc<dyn Store>) {
        a.add_invite(&invite(7, "lastuz", 1, T0 + 60, "admin"))
            .unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = [(a, "alice"), (b, "bob")]
            .into_iter()
            .map(|(store, nick)| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    store.take_invite(&[7; 32], nick, at(T0)).unwrap()
                })
            })
            .collect();
        let won: Vec<InviteRow> = racers
            .into_iter()
            .filter_map(|r| r.join().unwrap())
            .collect();
        assert_eq!(won.len(), 1, "{won:?}");
        assert_eq!(won[0].uses_left, 0);
        assert_eq!(won[0].bound.len(), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::conformance::*;
    use super::*;

    /// The handle the hub and the peers share: a call runs on the blocking
    /// pool and hands back the store's answer, its error included.
    #[tokio::test]
    async fn storage_calls_reach_the_store_off_the_runtime_thread() {
        let storage = Storage::in_memory();
        let caller = std::thread::current().id();
        let other_thread = storage
            .call(move |store| {
                store.set_setting("k", Some("пароль-密码-🔑"))?;
                Ok(std::thread::current().id() != caller)
            })
            .await
            .unwrap();
        assert!(other_thread, "the call ran on the caller's thread");
        let value = storage.call(|store| store.setting("k")).await.unwrap();
        assert_eq!(value.as_deref(), Some("пароль-密码-🔑"));
        let err = storage
            .call(|store| store.set_password("nobody", "$argon2id$x"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NoSuchAccount), "{err:?}");
        assert!(storage.now() <= SystemTime::now());
    }
    use std::sync::Arc;

    #[test]
    fn mem_accounts() {
        accounts_are_case_insensitive_and_keep_their_spelling(&MemStore::default());
    }

    #[test]
    fn mem_rename() {
        rename_moves_the_account_and_its_bindings(&MemStore::default());
    }

    #[test]
    fn mem_invites() {
        invites_are_used_up_expire_and_revoke(&MemStore::default());
    }

    #[test]
    fn mem_registrations() {
        registrations_are_counted_per_group_and_window(&MemStore::default());
    }

    #[test]
    fn mem_registration_terms() {
        registration_terms_are_checked_with_the_insert(&MemStore::default());
    }

    #[test]
    fn mem_settings() {
        settings_are_set_and_cleared(&MemStore::default());
    }

    #[test]
    fn mem_last_use_race() {
        let store: Arc<dyn Store> = Arc::new(MemStore::default());
        the_last_use_goes_to_exactly_one(store.clone(), store);
    }

    #[test]
    fn the_registration_policy_is_saved_cleared_and_checked() {
        let store = MemStore::default();
        assert_eq!(saved_registration(&store).unwrap(), None);
        for policy in [
            Registration::Off,
            Registration::InviteOnly,
            Registration::Open,
        ] {
            save_registration(&store, Some(policy)).unwrap();
            assert_eq!(saved_registration(&store).unwrap(), Some(policy));
            assert_eq!(policy.to_string().parse(), Ok(policy));
        }
        save_registration(&store, None).unwrap();
        assert_eq!(saved_registration(&store).unwrap(), None);
        assert_eq!(Registration::default(), Registration::Open);
        for bad in ["", "invite_only", "закрыто", "off "] {
            assert!(bad.parse::<Registration>().is_err(), "{bad}");
        }
        store
            .set_setting("registration", Some("закрыто 🔒"))
            .unwrap();
        let err = saved_registration(&store).unwrap_err();
        assert!(err.to_string().contains("закрыто 🔒"), "{err}");
    }

    #[test]
    fn rows_keep_hashes_out_of_debug() {
        let row = account("alice", Role::User, None, T0);
        let text = format!("{row:?}");
        assert!(text.contains("alice") && !text.contains("argon2"), "{text}");
        let inv = invite(0xab, "abcdef", 1, T0, "admin");
        let text = format!("{inv:?}");
        assert!(text.contains("abcdef") && !text.contains("171"), "{text}");
    }

    #[test]
    fn times_round_trip_in_whole_seconds_and_clamp() {
        assert_eq!(to_secs(at(T0) + Duration::from_millis(999)), T0 as i64);
        assert_eq!(from_secs(to_secs(at(T0))), at(T0));
        assert_eq!(to_secs(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(from_secs(-5), UNIX_EPOCH);
        assert_eq!(prefix_key("ABCDEFGH"), "abcdef");
        assert_eq!(prefix_key("пароль-密码"), "пароль");
    }
}
