//! The [`Store`] in an embedded SQLite database, `<data-dir>/tlschat.db`.
//!
//! ```text
//! open_store ─▶ create tlschat.db owner-only (tlschat-fs) ─▶ user_version, quick_check
//!            ─▶ WAL, synchronous=FULL ─▶ schema ─▶ import of accounts.txt (once)
//! Store calls (blocking pool) ─▶ one Mutex<Connection> ─▶ one transaction each
//! ```
//!
//! The file is created `0600` before SQLite opens it (one found with a
//! looser mode is made `0600` again, with its `-wal` and `-shm`); SQLite
//! gives its `-wal` and `-shm` files the main file's mode. On Windows,
//! which has no modes, all three inherit the data directory's ACLs like
//! every other file there. `synchronous=FULL` makes a committed change survive power loss,
//! the promise the bans file makes with its fsync.
//!
//! A database that is damaged, not SQLite, not tlschat's, or written by a
//! newer schema is refused with its path, never recreated: an empty
//! accounts table would free every protected nickname. The opening and
//! these checks ([`open_checked`]) are shared with the history database,
//! which sets such a file aside instead.
//!
//! # Import
//!
//! On the first start with a database, an `accounts.txt` (read by the same
//! parser as ever) is copied into `accounts` in one transaction together
//! with the `accounts_imported` setting; only then is the file renamed
//! `accounts.txt.imported`. Killed before the commit, nothing was imported
//! and the next start imports again; killed between commit and rename, the
//! next start sees the setting and only renames. A malformed file stops the
//! start with nothing imported. An `accounts.txt` appearing after the import
//! is left alone with a warning.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};
use tracing::{info, warn};

use tlschat_protocol::names::Nick;

use crate::accounts::{Accounts, Role, ADMIN};
use crate::clock::Clock;
use crate::store::{
    from_secs, prefix_key, to_secs, AccountRow, InviteRow, Refusal, Store, StoreError, Terms,
};

/// The database's name in the data directory.
pub(crate) const DB_FILE: &str = "tlschat.db";
/// What `accounts.txt` is renamed to once imported.
const IMPORTED_SUFFIX: &str = ".imported";
/// The schema this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;
/// Set, to the time of the import, in the transaction that imports
/// `accounts.txt`.
const IMPORTED_SETTING: &str = "accounts_imported";
/// Set in the same transaction to the SHA-256 (hex) of the file imported:
/// a start that finds the file again tells the one it imported (killed
/// before the rename) from a new one written later.
const IMPORTED_DIGEST_SETTING: &str = "accounts_imported_sha256";
/// How long a write waits for another connection's (a `backup`, a `passwd`
/// from the command line) before it fails.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE accounts (nick_key TEXT PRIMARY KEY, nick TEXT NOT NULL, phc TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('user','moderator','admin')),
  created INTEGER NOT NULL, created_from TEXT);
CREATE TABLE invites (hash BLOB PRIMARY KEY, prefix TEXT NOT NULL, uses_left INTEGER NOT NULL,
  expires INTEGER NOT NULL, created INTEGER NOT NULL, by TEXT NOT NULL);
CREATE TABLE invite_nicks (hash BLOB NOT NULL REFERENCES invites(hash) ON DELETE CASCADE,
  nick_key TEXT NOT NULL, PRIMARY KEY (hash, nick_key));
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX accounts_from ON accounts(created_from, created);
";

/// The accounts, roles, invites and settings in `<data-dir>/tlschat.db`.
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What [`open_store`] did with an old `accounts.txt`, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// How many accounts this start imported; `None` when an earlier start
    /// imported them and was stopped before it could rename the file.
    pub accounts: Option<usize>,
    /// Where the old file is now.
    pub kept_as: PathBuf,
}

/// Opens (creating if needed) `<data_dir>/tlschat.db` and imports an old
/// `accounts.txt` into it once (see the module docs). The data directory
/// must exist and have passed [`tlschat_fs::check_private_dir`].
pub fn open_store(
    data_dir: &Path,
    clock: Arc<dyn Clock>,
) -> Result<(SqliteStore, Option<Imported>), StoreError> {
    let store = SqliteStore::open(&data_dir.join(DB_FILE))?;
    let imported = store.import_accounts(&crate::config::accounts_file(data_dir), clock.now())?;
    Ok((store, imported))
}

/// Copies `<data_dir>/tlschat.db` into the new file `dest`, consistent even
/// while a server writes to it (SQLite's online backup over a connection of
/// its own). `dest` is written beside itself and renamed into place, owner
/// only, and never replaces an existing file. The copy is in rollback
/// journal mode, a single file; a server started on it returns to WAL.
pub fn backup(data_dir: &Path, dest: &Path) -> Result<(), StoreError> {
    let path = data_dir.join(DB_FILE);
    if !path.try_exists().unwrap_or(false) {
        return Err(StoreError::Open {
            path,
            reason: "there is no database to back up".to_owned(),
        });
    }
    let store = SqliteStore::open(&path)?;
    let conn = store.conn.lock().unwrap_or_else(PoisonError::into_inner);
    tlschat_fs::write_new_via(dest, tlschat_fs::Mode::Private, |tmp| {
        let copy = || -> rusqlite::Result<()> {
            let mut to = Connection::open(tmp)?;
            rusqlite::backup::Backup::new(&conn, &mut to)?.run_to_completion(
                64,
                Duration::from_millis(10),
                None,
            )?;
            let _: String =
                to.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))?;
            to.close().map_err(|(_, e)| e)
        };
        copy().map_err(io::Error::other)
    })
    .map_err(|e| StoreError::Write {
        path: dest.to_owned(),
        reason: e.to_string(),
    })
}

/// A database file opened by [`open_checked`], in WAL mode.
pub(crate) struct Checked {
    pub(crate) conn: Connection,
    /// Its `user_version`: 0 for a new, empty file.
    pub(crate) version: i64,
}

/// Why [`open_checked`] gave no connection.
pub(crate) enum Unchecked {
    /// Opening failed for a reason that says nothing about the file's
    /// content (permissions, the disk, a lock held elsewhere).
    Open(String),
    /// The file is damaged, not SQLite or not tlschat's.
    Unusable(String),
    /// Written by a newer schema than `schema_version`.
    Newer(i64),
}

/// Creates `path` owner-only if needed (an existing file with a loose mode
/// is made owner-only again, with its `-wal` and `-shm`), connects with
/// [`BUSY_TIMEOUT`], checks that it is a sound database of tlschat's
/// (`user_version`, `quick_check`, no foreign tables) and turns WAL on.
pub(crate) fn open_checked(path: &Path, schema_version: i64) -> Result<Checked, Unchecked> {
    let open = |e: &dyn fmt::Display| Unchecked::Open(e.to_string());
    // Only an answer about the content makes the file unusable.
    let reading = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            Unchecked::Unusable(e.to_string())
        }
        _ => open(&e),
    };
    let created = tlschat_fs::create_private_file(path).map_err(|e| open(&e))?;
    if !created {
        owner_only(path).map_err(|e| open(&e))?;
    }
    let conn = connect(path).map_err(|e| open(&e))?;
    // The first read of the file: garbage fails here ("not a database").
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(reading)?;
    if version > schema_version {
        return Err(Unchecked::Newer(version));
    }
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(reading)?;
    if check != "ok" {
        return Err(Unchecked::Unusable(format!("integrity check: {check}")));
    }
    if version == 0 {
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(reading)?;
        if objects > 0 {
            return Err(Unchecked::Unusable(
                "an SQLite database without tlschat's schema version".to_owned(),
            ));
        }
    }
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| open(&e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Unchecked::Open(format!(
            "journal mode WAL refused (got {mode})"
        )));
    }
    Ok(Checked { conn, version })
}

/// A connection to an existing file (never creating one: the file was made
/// owner-only before), waiting up to [`BUSY_TIMEOUT`] for another's lock.
pub(crate) fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Makes a file made before (perhaps by hand, or copied with a loose
/// mode) owner-only again, with its `-wal` and `-shm`.
fn owner_only(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        let meta = match std::fs::metadata(&file) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

impl SqliteStore {
    fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let open = |reason: String| StoreError::Open {
            path: path.to_owned(),
            reason,
        };
        let Checked { conn, version } =
            open_checked(path, SCHEMA_VERSION).map_err(|e| match e {
                Unchecked::Open(reason) => open(reason),
                Unchecked::Unusable(reason) => StoreError::Corrupt {
                    path: path.to_owned(),
                    reason,
                },
                Unchecked::Newer(version) => StoreError::Newer {
                    path: path.to_owned(),
                    version,
                },
            })?;
        for (pragma, value) in [("synchronous", "FULL"), ("foreign_keys", "ON")] {
            conn.pragma_update(None, pragma, value)
                .map_err(|e| open(e.to_string()))?;
        }
        let store = SqliteStore {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        };
        if version == 0 {
            store.write(|tx| {
                tx.execute_batch(SCHEMA)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            })?;
        }
        Ok(store)
    }

    /// Runs `f` in one immediate transaction (the write lock taken at
    /// once, so two writers never deadlock upgrading) and commits it.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let run = || {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        };
        run().map_err(|e: rusqlite::Error| self.write_error(e.to_string()))
    }

    /// Runs the reads of `f` on one consistent snapshot.
    fn read<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let run = || {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            f(&tx)
        };
        run().map_err(|e: rusqlite::Error| StoreError::Read {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    fn write_error(&self, reason: String) -> StoreError {
        StoreError::Write {
            path: self.path.clone(),
            reason,
        }
    }

    fn corrupt(&self, reason: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }

    fn import_accounts(
        &self,
        file: &Path,
        now: SystemTime,
    ) -> Result<Option<Imported>, StoreError> {
        let exists = file.try_exists().map_err(|e| StoreError::Import {
            source: crate::accounts::AccountsError::Read {
                path: file.to_owned(),
                source: e,
            },
        })?;
        if !exists {
            return Ok(None);
        }
        let mut kept_as = file.as_os_str().to_owned();
        kept_as.push(IMPORTED_SUFFIX);
        let kept_as = PathBuf::from(kept_as);
        if self.setting(IMPORTED_SETTING)?.is_some() {
            if kept_as.exists() {
                warn!(
                    "{} is ignored: accounts live in {} since they were imported (the old file \
                     is {}); delete it, and change passwords with `tlschat-server passwd`",
                    file.display(),
                    self.path.display(),
                    kept_as.display()
                );
                return Ok(None);
            }
            let digest = file_digest(file)?;
            if self.setting(IMPORTED_DIGEST_SETTING)?.as_deref() != Some(digest.as_str()) {
                warn!(
                    "{} appeared after the accounts were imported into {}: its accounts were \
                     NOT imported and it is left in place; add them with `tlschat-server passwd \
                     --nick NICK`, then delete the file",
                    file.display(),
                    self.path.display()
                );
                return Ok(None);
            }
            self.rename_imported(file, &kept_as)?;
            info!(
                "the accounts of {} were imported into {} by an earlier start; the old file is \
                 now kept as {}",
                file.display(),
                self.path.display(),
                kept_as.display()
            );
            return Ok(Some(Imported {
                accounts: None,
                kept_as,
            }));
        }
        let digest = file_digest(file)?;
        let accounts = Accounts::load(file).map_err(|source| StoreError::Import { source })?;
        let created = to_secs(now);
        let count = self.write(|tx| {
            let mut count = 0;
            for (nick, phc) in accounts.iter() {
                let role = if nick.key() == ADMIN {
                    Role::Admin
                } else {
                    Role::User
                };
                count += tx.execute(
                    "INSERT INTO accounts (nick_key, nick, phc, role, created) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (nick_key) DO NOTHING",
                    params![nick.key(), nick.as_str(), phc, role_name(role), created],
                )?;
            }
            set_setting(
                tx,
                IMPORTED_SETTING,
                Some(&humantime::format_rfc3339_seconds(from_secs(created)).to_string()),
            )?;
            set_setting(tx, IMPORTED_DIGEST_SETTING, Some(&digest))?;
            Ok(count)
        })?;
        self.rename_imported(file, &kept_as)?;
        info!(
            "imported {count} accounts from {} into {}; the old file is kept as {}",
            file.display(),
            self.path.display(),
            kept_as.display()
        );
        Ok(Some(Imported {
            accounts: Some(count),
            kept_as,
        }))
    }

    fn rename_imported(&self, file: &Path, kept_as: &Path) -> Result<(), StoreError> {
        std::fs::rename(file, kept_as).map_err(|e: io::Error| StoreError::Write {
            path: file.to_owned(),
            reason: format!(
                "cannot rename it to {} after the import: {e}",
                kept_as.display()
            ),
        })
    }

    /// The invites matching `filter` (an SQL condition on `invites`), each
    /// with its bound nicknames, oldest first.
    fn select_invites(
        &self,
        tx: &Transaction<'_>,
        filter: &str,
        params: impl rusqlite::Params,
    ) -> rusqlite::Result<Vec<RawInvite>> {
        let mut stmt = tx.prepare(&format!(
            "SELECT hash, prefix, uses_left, expires, created, by FROM invites \
             WHERE {filter} ORDER BY created, rowid"
        ))?;
        let rows = stmt
            .query_map(params, |r| {
                Ok(RawInvite {
                    hash: r.get(0)?,
                    prefix: r.get(1)?,
                    uses_left: r.get(2)?,
                    expires: r.get(3)?,
                    created: r.get(4)?,
                    by: r.get(5)?,
                    bound: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<Vec<RawInvite>>>()?;
        let mut bound =
            tx.prepare("SELECT nick_key FROM invite_nicks WHERE hash = ?1 ORDER BY nick_key")?;
        rows.into_iter()
            .map(|mut raw| {
                raw.bound = bound
                    .query_map([&raw.hash], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                Ok(raw)
            })
            .collect()
    }

    fn invite_rows(&self, raw: Vec<RawInvite>) -> Result<Vec<InviteRow>, StoreError> {
        raw.into_iter()
            .map(|r| {
                let hash: [u8; 32] = r.hash.as_slice().try_into().map_err(|_| {
                    self.corrupt(format!("an invite hash of {} bytes", r.hash.len()))
                })?;
                Ok(InviteRow {
                    hash,
                    prefix: r.prefix,
                    uses_left: u32::try_from(r.uses_left).unwrap_or(0),
                    expires: from_secs(r.expires),
                    created: from_secs(r.created),
                    by: r.by,
                    bound: r.bound,
                })
            })
            .collect()
    }
}

/// An `invites` row as SQLite gives it, checked by [`SqliteStore::invite_rows`].
struct RawInvite {
    hash: Vec<u8>,
    prefix: String,
    uses_left: i64,
    expires: i64,
    created: i64,
    by: String,
    bound: Vec<String>,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Moderator => "moderator",
        Role::Admin => "admin",
    }
}

fn role_of(name: &str) -> Option<Role> {
    match name {
        "user" => Some(Role::User),
        "moderator" => Some(Role::Moderator),
        "admin" => Some(Role::Admin),
        _ => None,
    }
}

fn set_setting(tx: &Transaction<'_>, key: &str, value: Option<&str>) -> rusqlite::Result<()> {
    match value {
        Some(v) => tx.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, v],
        )?,
        None => tx.execute("DELETE FROM settings WHERE key = ?1", [key])?,
    };
    Ok(())
}

/// Admits `nick_key` with the code hashed to `hash` inside `tx` (see
/// [`Store::take_invite`]); whether it did.
fn take_invite(
    tx: &Transaction<'_>,
    hash: &[u8; 32],
    nick_key: &str,
    now: SystemTime,
) -> rusqlite::Result<bool> {
    let now = to_secs(now);
    let bound: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM invite_nicks JOIN invites USING (hash) \
             WHERE hash = ?1 AND nick_key = ?2 AND expires > ?3",
            params![&hash[..], nick_key, now],
            |r| r.get(0),
        )
        .optional()?;
    if bound.is_some() {
        return Ok(true);
    }
    let taken = tx.execute(
        "UPDATE invites SET uses_left = uses_left - 1 \
         WHERE hash = ?1 AND expires > ?2 AND uses_left > 0",
        params![&hash[..], now],
    )?;
    if taken == 0 {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO invite_nicks (hash, nick_key) VALUES (?1, ?2)",
        params![&hash[..], nick_key],
    )?;
    Ok(true)
}

fn insert_account(tx: &Transaction<'_>, row: &AccountRow) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO accounts (nick_key, nick, phc, role, created, created_from) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (nick_key) DO NOTHING",
        params![
            row.nick.key(),
            row.nick.as_str(),
            row.phc,
            role_name(row.role),
            to_secs(row.created),
            row.created_from.map(|a| a.to_string()),
        ],
    )
}

/// The first check of `terms` (and the nickname) that `row` fails, inside
/// the transaction that then inserts it.
fn refusal(
    tx: &Transaction<'_>,
    row: &AccountRow,
    terms: &Terms,
) -> rusqlite::Result<Option<Refusal>> {
    let count = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<u64> {
        let n: i64 = tx.query_row(sql, p, |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    if count(
        "SELECT count(*) FROM accounts WHERE nick_key = ?1",
        &[&row.nick.key()],
    )? > 0
    {
        return Ok(Some(Refusal::Exists));
    }
    let max = u64::try_from(terms.max_accounts).unwrap_or(u64::MAX);
    if max > 0 && count("SELECT count(*) FROM accounts", &[])? >= max {
        return Ok(Some(Refusal::Full));
    }
    if let (Some(group), true) = (row.created_from, terms.per_group > 0) {
        let made = count(
            "SELECT count(*) FROM accounts WHERE created_from = ?1 AND created >= ?2",
            &[&group.to_string(), &to_secs(terms.since)],
        )?;
        if made >= u64::from(terms.per_group) {
            return Ok(Some(Refusal::AddressCap));
        }
    }
    if let Some(hash) = &terms.code {
        if !take_invite(tx, hash, row.nick.key(), terms.now)? {
            return Ok(Some(Refusal::BadCode));
        }
    }
    Ok(None)
}

/// The SHA-256 of `file`'s bytes, in hex.
fn file_digest(file: &Path) -> Result<String, StoreError> {
    let bytes = std::fs::read(file).map_err(|e| StoreError::Import {
        source: crate::accounts::AccountsError::Read {
            path: file.to_owned(),
            source: e,
        },
    })?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    Ok(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

impl Store for SqliteStore {
    fn accounts(&self) -> Result<Vec<AccountRow>, StoreError> {
        type Raw = (String, String, String, i64, Option<String>);
        let raw: Vec<Raw> = self.read(|tx| {
            tx.prepare(
                "SELECT nick, phc, role, created, created_from FROM accounts ORDER BY nick_key",
            )?
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect()
        })?;
        raw.into_iter()
            .map(|(nick, phc, role, created, from)| {
                let bad = |what: &str| self.corrupt(format!("account `{nick}`: {what}"));
                Ok(AccountRow {
                    nick: Nick::parse(&nick).map_err(|e| bad(&e.to_string()))?,
                    phc,
                    role: role_of(&role).ok_or_else(|| bad("unknown role"))?,
                    created: from_secs(created),
                    created_from: from
                        .map(|a| a.parse::<IpAddr>())
                        .transpose()
                        .map_err(|_| bad("bad address"))?,
                })
            })
            .collect()
    }

    fn create_account(&self, row: &AccountRow) -> Result<(), StoreError> {
        let added = self.write(|tx| insert_account(tx, row))?;
        if added == 0 {
            return Err(StoreError::Exists);
        }
        Ok(())
    }

    fn register_account(&self, row: &AccountRow, terms: &Terms) -> Result<(), Refusal> {
        // A refusal found before anything was written commits nothing.
        let refused = self.write(|tx| match refusal(tx, row, terms)? {
            Some(refused) => Ok(Some(refused)),
            None => insert_account(tx, row).map(|_| None),
        })?;
        refused.map_or(Ok(()), Err)
    }

    fn set_password(&self, key: &str, phc: &str) -> Result<(), StoreError> {
        let changed = self.write(|tx| {
            tx.execute(
                "UPDATE accounts SET phc = ?2 WHERE nick_key = ?1",
                params![key, phc],
            )
        })?;
        if changed == 0 {
            return Err(StoreError::NoSuchAccount);
        }
        Ok(())
    }

    fn set_role(&self, key: &str, role: Role) -> Result<(), StoreError> {
        let changed = self.write(|tx| {
            tx.execute(
                "UPDATE accounts SET role = ?2 WHERE nick_key = ?1",
                params![key, role_name(role)],
            )
        })?;
        if changed == 0 {
            return Err(StoreError::NoSuchAccount);
        }
        Ok(())
    }

    fn delete_account(&self, key: &str) -> Result<bool, StoreError> {
        let n = self.write(|tx| tx.execute("DELETE FROM accounts WHERE nick_key = ?1", [key]))?;
        Ok(n > 0)
    }

    fn rename(&self, old_key: &str, new: &Nick) -> Result<(), StoreError> {
        let renamed = self.write(|tx| {
            let new_key = new.key();
            if new_key != old_key {
                let taken: Option<i64> = tx
                    .query_row(
                        "SELECT 1 FROM accounts WHERE nick_key = ?1",
                        [new_key],
                        |r| r.get(0),
                    )
                    .optional()?;
                if taken.is_some() {
                    return Ok(false);
                }
                // A code bound to both names keeps one binding.
                tx.execute(
                    "DELETE FROM invite_nicks WHERE nick_key = ?2 AND hash IN \
                     (SELECT hash FROM invite_nicks WHERE nick_key = ?1)",
                    params![old_key, new_key],
                )?;
                tx.execute(
                    "UPDATE invite_nicks SET nick_key = ?2 WHERE nick_key = ?1",
                    params![old_key, new_key],
                )?;
            }
            tx.execute(
                "UPDATE accounts SET nick_key = ?2, nick = ?3 WHERE nick_key = ?1",
                params![old_key, new_key, new.as_str()],
            )?;
            // The codes a moderator made stay its own: `/invites`,
            // `/uninvite` and its cap of live codes find them by `by`.
            tx.execute(
                "UPDATE invites SET by = ?2 WHERE lower(by) = ?1",
                params![old_key, new.as_str()],
            )?;
            Ok(true)
        })?;
        if !renamed {
            return Err(StoreError::Exists);
        }
        Ok(())
    }

    fn registrations_since(&self, group: IpAddr, since: SystemTime) -> Result<u32, StoreError> {
        let n: i64 = self.read(|tx| {
            tx.query_row(
                "SELECT count(*) FROM accounts WHERE created_from = ?1 AND created >= ?2",
                params![group.to_string(), to_secs(since)],
                |r| r.get(0),
            )
        })?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn add_invite(&self, invite: &InviteRow) -> Result<(), StoreError> {
        let added = self.write(|tx| {
            let added = tx.execute(
                "INSERT INTO invites (hash, prefix, uses_left, expires, created, by) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (hash) DO NOTHING",
                params![
                    &invite.hash[..],
                    invite.prefix,
                    invite.uses_left,
                    to_secs(invite.expires),
                    to_secs(invite.created),
                    invite.by,
                ],
            )?;
            if added > 0 {
                for key in &invite.bound {
                    tx.execute(
                        "INSERT INTO invite_nicks (hash, nick_key) VALUES (?1, ?2) \
                         ON CONFLICT DO NOTHING",
                        params![&invite.hash[..], key],
                    )?;
                }
            }
            Ok(added)
        })?;
        if added == 0 {
            return Err(StoreError::Exists);
        }
        Ok(())
    }

    fn take_invite(
        &self,
        hash: &[u8; 32],
        nick_key: &str,
        now: SystemTime,
    ) -> Result<Option<InviteRow>, StoreError> {
        let raw = self.write(|tx| {
            if !take_invite(tx, hash, nick_key, now)? {
                return Ok(Vec::new());
            }
            self.select_invites(tx, "hash = ?1", [&hash[..]])
        })?;
        Ok(self.invite_rows(raw)?.pop())
    }

    fn invites(&self, now: SystemTime) -> Result<Vec<InviteRow>, StoreError> {
        let raw = self.read(|tx| self.select_invites(tx, "expires > ?1", [to_secs(now)]))?;
        self.invite_rows(raw)
    }

    fn revoke_invites(&self, prefix: &str, by: Option<&str>) -> Result<Vec<InviteRow>, StoreError> {
        // Nicknames and prefixes are ASCII, where SQLite's lower() is exact.
        const FILTER: &str = "lower(prefix) = ?1 AND (?2 IS NULL OR lower(by) = lower(?2))";
        let prefix = prefix_key(prefix);
        let raw = self.write(|tx| {
            let gone = self.select_invites(tx, FILTER, params![prefix, by])?;
            tx.execute(
                &format!("DELETE FROM invites WHERE {FILTER}"),
                params![prefix, by],
            )?;
            Ok(gone)
        })?;
        self.invite_rows(raw)
    }

    fn delete_expired_invites(&self, now: SystemTime) -> Result<usize, StoreError> {
        self.write(|tx| tx.execute("DELETE FROM invites WHERE expires <= ?1", [to_secs(now)]))
    }

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|tx| {
            tx.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    fn set_setting(&self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        self.write(|tx| set_setting(tx, key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::conformance::*;

    fn temp() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join(DB_FILE)).unwrap();
        (dir, store)
    }

    fn clock() -> Arc<dyn Clock> {
        Arc::new(ManualClock::new(at(T0)))
    }

    #[test]
    fn sqlite_accounts() {
        let (dir, store) = temp();
        accounts_are_case_insensitive_and_keep_their_spelling(&store);
        drop(store);
        // Committed means on disk: a second open sees the same.
        let again = SqliteStore::open(&dir.path().join(DB_FILE)).unwrap();
        let names: Vec<String> = again
            .accounts()
            .unwrap()
            .into_iter()
            .map(|a| a.nick.as_str().to_owned())
            .collect();
        assert_eq!(names, ["admin"]);
    }

    #[test]
    fn sqlite_rename() {
        rename_moves_the_account_and_its_bindings(&temp().1);
    }

    #[test]
    fn sqlite_invites() {
        invites_are_used_up_expire_and_revoke(&temp().1);
    }

    #[test]
    fn sqlite_registrations() {
        registrations_are_counted_per_group_and_window(&temp().1);
    }

    #[test]
    fn sqlite_registration_terms() {
        registration_terms_are_checked_with_the_insert(&temp().1);
    }

    #[test]
    fn sqlite_settings() {
        settings_are_set_and_cleared(&temp().1);
    }

    /// Two connections to one file (as two processes would have), so the
    /// race is settled by SQLite's transaction, not by our mutex.
    #[test]
    fn sqlite_last_use_race_between_two_connections() {
        for _ in 0..8 {
            let (dir, a) = temp();
            let b = SqliteStore::open(&dir.path().join(DB_FILE)).unwrap();
            the_last_use_goes_to_exactly_one(Arc::new(a), Arc::new(b));
        }
    }

    #[test]
    fn a_new_database_is_owner_only_wal_and_versioned() {
        let (dir, store) = temp();
        let path = dir.path().join(DB_FILE);
        store.set_setting("x", Some("y")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for name in [DB_FILE.to_owned(), format!("{DB_FILE}-wal")] {
                let mode = std::fs::metadata(dir.path().join(&name))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{name}");
            }
        }
        let conn = store.conn.lock().unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), version, sync), ("wal", SCHEMA_VERSION, 2));
        assert!(path.exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_database_with_a_loose_mode_is_made_owner_only_again() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, store) = temp();
        store.set_setting("ключ", Some("значение")).unwrap();
        drop(store);
        let path = dir.path().join(DB_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = SqliteStore::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(store.setting("ключ").unwrap().as_deref(), Some("значение"));
    }

    fn refused(setup: impl FnOnce(&Path)) -> StoreError {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        let err = open_store(dir.path(), clock()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&dir.path().join(DB_FILE).display().to_string()),
            "{text}"
        );
        err
    }

    #[test]
    fn garbage_a_foreign_database_and_a_newer_schema_are_refused_naming_the_file() {
        let err = refused(|d| {
            std::fs::write(d.join(DB_FILE), "не база данных 不是数据库 🗑️".repeat(200)).unwrap();
        });
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("restore the last"), "{err}");

        let err = refused(|d| {
            let conn = Connection::open(d.join(DB_FILE)).unwrap();
            conn.execute_batch("CREATE TABLE notes (x TEXT)").unwrap();
        });
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");

        let err = refused(|d| {
            drop(SqliteStore::open(&d.join(DB_FILE)).unwrap());
            let conn = Connection::open(d.join(DB_FILE)).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        });
        assert!(
            matches!(err, StoreError::Newer { version, .. } if version == SCHEMA_VERSION + 1),
            "{err}"
        );
    }

    #[test]
    fn a_damaged_row_is_reported_not_skipped() {
        let (dir, store) = temp();
        drop(store);
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute(
            "INSERT INTO accounts VALUES ('алиса', 'Алиса', 'x', 'user', 0, NULL)",
            [],
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(&dir.path().join(DB_FILE)).unwrap();
        let err = store.accounts().unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("Алиса"), "{err}");
    }

    /// A valid argon2id PHC string (of "x"), for files that need no hashing.
    const SAMPLE_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$W0Vq7XhCqXwVn4yGJ5bP+0ShT1QmI9QmcmSlC9C2sfc";

    fn old_accounts_file(dir: &Path) -> PathBuf {
        let path = crate::config::accounts_file(dir);
        std::fs::write(
            &path,
            format!(
                "# tlschat accounts\nadmin {SAMPLE_PHC}\nAlice {SAMPLE_PHC}\nbob.Smith {SAMPLE_PHC}\n"
            ),
        )
        .unwrap();
        path
    }

    #[test]
    fn an_old_accounts_file_is_imported_once_and_kept_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let file = old_accounts_file(dir.path());
        let (store, imported) = open_store(dir.path(), clock()).unwrap();
        let kept_as = dir.path().join("accounts.txt.imported");
        assert_eq!(
            imported,
            Some(Imported {
                accounts: Some(3),
                kept_as: kept_as.clone()
            })
        );
        assert!(!file.exists() && kept_as.exists());
        let rows = store.accounts().unwrap();
        let got: Vec<(&str, Role, &str)> = rows
            .iter()
            .map(|a| (a.nick.as_str(), a.role, a.phc.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("admin", Role::Admin, SAMPLE_PHC),
                ("Alice", Role::User, SAMPLE_PHC),
                ("bob.Smith", Role::User, SAMPLE_PHC)
            ]
        );
        assert!(rows
            .iter()
            .all(|a| a.created == at(T0) && a.created_from.is_none()));
        assert_eq!(
            store.setting(IMPORTED_SETTING).unwrap().as_deref(),
            Some("2026-11-24T14:00:00Z")
        );
        drop(store);

        // The file coming back later is ignored, not imported over the store.
        std::fs::write(&file, format!("carol {SAMPLE_PHC}\n")).unwrap();
        let (store, imported) = open_store(dir.path(), clock()).unwrap();
        assert_eq!(imported, None);
        assert!(file.exists());
        assert_eq!(store.accounts().unwrap().len(), 3);
        drop(store);

        // Also once the renamed copy is gone: not imported, not renamed as
        // if it had been.
        std::fs::remove_file(&kept_as).unwrap();
        let (store, imported) = open_store(dir.path(), clock()).unwrap();
        assert_eq!(imported, None);
        assert!(file.exists() && !kept_as.exists());
        assert_eq!(store.accounts().unwrap().len(), 3);
    }

    #[test]
    fn killed_between_commit_and_rename_the_next_start_only_renames() {
        let dir = tempfile::tempdir().unwrap();
        let file = old_accounts_file(dir.path());
        let (store, _) = open_store(dir.path(), clock()).unwrap();
        store.set_password("alice", "$argon2id$changed").unwrap();
        drop(store);
        // As if the rename had never happened.
        std::fs::rename(dir.path().join("accounts.txt.imported"), &file).unwrap();
        let (store, imported) = open_store(dir.path(), clock()).unwrap();
        assert_eq!(imported.unwrap().accounts, None);
        assert!(!file.exists());
        let alice = store.accounts().unwrap().remove(1);
        assert_eq!(alice.phc, "$argon2id$changed", "the import ran twice");
    }

    #[test]
    fn a_malformed_accounts_file_stops_the_start_with_nothing_imported() {
        let dir = tempfile::tempdir().unwrap();
        let file = crate::config::accounts_file(dir.path());
        let text = format!("admin {SAMPLE_PHC}\nАлиса {SAMPLE_PHC}\n");
        std::fs::write(&file, &text).unwrap();
        let err = open_store(dir.path(), clock()).unwrap_err();
        assert!(matches!(err, StoreError::Import { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("line 2") && msg.contains("nothing was imported"),
            "{msg}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
        let store = SqliteStore::open(&dir.path().join(DB_FILE)).unwrap();
        assert!(store.accounts().unwrap().is_empty());
        assert_eq!(store.setting(IMPORTED_SETTING).unwrap(), None);
    }

    /// A backup taken while another connection writes holds what was
    /// committed before it, opens as a store, and never overwrites a file.
    #[test]
    fn a_backup_restores_into_a_fresh_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open_store(dir.path(), clock()).unwrap();
        store
            .create_account(&account("Alice", Role::Moderator, None, T0))
            .unwrap();
        store
            .set_password("alice", "$argon2id$пароль-密码-🔑")
            .unwrap();
        store
            .add_invite(&invite(3, "abcdef", 2, T0 + 60, "admin"))
            .unwrap();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("резерв 备份 💾.db");
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..20 {
                    let row = account(&format!("user{i}"), Role::User, None, T0);
                    store.create_account(&row).unwrap();
                }
            });
            backup(dir.path(), &dest).unwrap();
        });
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let names: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "the backup is one file: {names:?}");
        let copy = Connection::open_with_flags(&dest, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mode: String = copy
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete", "a copy needs no -wal beside it");
        drop(copy);
        let err = backup(dir.path(), &dest).unwrap_err();
        assert!(matches!(err, StoreError::Write { .. }), "{err}");

        let fresh = tempfile::tempdir().unwrap();
        std::fs::copy(&dest, fresh.path().join(DB_FILE)).unwrap();
        let (restored, imported) = open_store(fresh.path(), clock()).unwrap();
        assert_eq!(imported, None);
        let rows = restored.accounts().unwrap();
        let alice = rows.iter().find(|a| a.nick.as_str() == "Alice").unwrap();
        assert_eq!(
            (alice.phc.as_str(), alice.role),
            ("$argon2id$пароль-密码-🔑", Role::Moderator)
        );
        assert!(restored
            .take_invite(&[3; 32], "bob", at(T0))
            .unwrap()
            .is_some());

        let empty = tempfile::tempdir().unwrap();
        let err = backup(empty.path(), &out.path().join("x.db")).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err}");
        assert!(!empty.path().join(DB_FILE).exists());
    }

    #[test]
    fn no_accounts_file_imports_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, imported) = open_store(dir.path(), clock()).unwrap();
        assert_eq!(imported, None);
        assert!(store.accounts().unwrap().is_empty());
        assert_eq!(store.setting(IMPORTED_SETTING).unwrap(), None);
    }
}
