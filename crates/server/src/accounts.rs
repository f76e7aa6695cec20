//! Registered accounts and their passwords, kept in `<data-dir>/accounts.txt`.
//!
//! Today the only account is the reserved [`ADMIN`]. Data flow: the binary
//! calls [`Accounts::load`] at start-up, then [`ensure_admin`] so the admin
//! always has a password (generating one on first run and leaving it in
//! `<data-dir>/initial-admin-password` for the operator). When someone
//! logs in as a registered nick, the server takes [`Accounts::hash_of`] and
//! checks the password with [`verify_password`] off the async runtime
//! (argon2 is deliberately slow). The `passwd` subcommand uses
//! [`change_admin_password`].
//!
//! Only argon2id hashes (PHC strings, salt and parameters included) are
//! stored, never passwords. Every change rewrites the file through
//! [`write_atomic`] with owner-only permissions before it reports success,
//! and the in-memory map changes only after the write succeeded.
//!
//! [`Accounts::from_store`] keeps the same map as a cache of a
//! [`Store`] instead of the file: a change is committed
//! to the store first, with the same rule.
//!
//! # File format
//!
//! ```text
//! # tlschat accounts: NICK PHC-HASH (argon2id; one per line)
//! admin $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//! ```
//!
//! Blank lines and lines starting with `#` are ignored; any other line that
//! is not exactly a valid nickname and an argon2 PHC string is an error
//! naming the line.
//!
//! Passwords never appear in `Debug` output or error messages.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::distr::Alphanumeric;
use rand::Rng;
use thiserror::Error;

use crate::clock::Clock;
use crate::store::{AccountRow, Store, StoreError};
use tlschat_fs::{write_atomic, Mode};
use tlschat_protocol::names::Nick;

/// The reserved administrator account.
pub(crate) const ADMIN: &str = "admin";
/// Where [`ensure_admin`] leaves a generated admin password, in the data directory.
pub(crate) const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// What a logged-in session may do, taken from its account at login and
/// changed by `/op` and `/deop` while it runs: the nickname [`ADMIN`]
/// (whose password the login checked) runs every command and is exempt
/// from bans; a moderator may kick, ban for a bounded time and invite
/// (the limits are the hub's `moderation`); every other session is a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    User,
    Moderator,
    Admin,
}

impl Role {
    pub(crate) fn of(nick: &Nick) -> Role {
        if nick.key() == ADMIN {
            Role::Admin
        } else {
            Role::User
        }
    }

    /// Whether this is the admin: every command, exempt from bans.
    pub(crate) fn is_admin(self) -> bool {
        self == Role::Admin
    }
}

/// Length of [`generate_password`]'s output: 24 × log2(62) ≈ 143 bits.
const GENERATED_LEN: usize = 24;

const HEADER: &str = "# tlschat accounts: NICK PHC-HASH (argon2id; one per line)";

/// Why an account operation failed. No variant carries a password.
#[derive(Debug, Error)]
pub enum AccountsError {
    #[error("cannot read {}: {source}; check that it exists and is a readable file", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("accounts file {} line {line}: {reason}; fix or delete that line (`tlschat-server passwd` sets a new admin password)", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot write {}: {source}; check that its directory exists, is writable and the disk is not full", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot delete the stale {}: {source}; delete it by hand (the password in it no longer works)", path.display())]
    RemoveStale {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the password is empty; choose a non-empty password")]
    EmptyPassword,
    #[error(transparent)]
    PasswordFile(#[from] tlschat_fs::PasswordFileError),
    /// The store refused or failed; boxed, as a store error may carry an
    /// accounts error (a failed import).
    #[error(transparent)]
    Store(Box<StoreError>),
    /// argon2 refused to hash (in practice unreachable with default
    /// parameters); the message comes from argon2 and holds no password.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// The registered accounts, and where they live.
pub struct Accounts {
    backing: Backing,
    /// Folded nick (`Nick::key`) → (nick as spelt, PHC string, role). A
    /// BTreeMap so the file is written in a stable order.
    map: BTreeMap<String, (Nick, String, Role)>,
}

impl fmt::Debug for Accounts {
    // Hashes are not passwords, but they can be attacked offline: keep them
    // out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounts")
            .field("backing", &self.backing)
            .field(
                "nicks",
                &self
                    .map
                    .values()
                    .map(|(n, _, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Where [`Accounts`] writes a change before it takes it.
enum Backing {
    File(PathBuf),
    Store {
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    },
}

impl fmt::Debug for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backing::File(path) => f.debug_tuple("File").field(path).finish(),
            Backing::Store { .. } => f.write_str("Store"),
        }
    }
}

impl Accounts {
    /// The accounts of `store`, cached; changes go to the store first and
    /// new accounts are dated by `clock`.
    pub(crate) fn from_store(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Accounts, AccountsError> {
        let rows = store
            .accounts()
            .map_err(|e| AccountsError::Store(Box::new(e)))?;
        let map = rows
            .into_iter()
            .map(|row| (row.nick.key().to_owned(), (row.nick, row.phc, row.role)))
            .collect();
        Ok(Accounts {
            backing: Backing::Store { store, clock },
            map,
        })
    }

    /// Reads `path`; a missing file means no accounts yet.
    pub fn load(path: &Path) -> Result<Accounts, AccountsError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(AccountsError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        warn_if_shared(path);
        let mut map = BTreeMap::new();
        let mut first_seen = BTreeMap::new();
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line_no = i + 1;
            let malformed = |reason: String| AccountsError::Malformed {
                path: path.to_owned(),
                line: line_no,
                reason,
            };
            let line = std::str::from_utf8(raw)
                .map_err(|_| malformed("not valid UTF-8".to_owned()))?
                .trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (nick, phc) = parse_line(line).map_err(malformed)?;
            if let Some(first) = first_seen.insert(nick.key().to_owned(), line_no) {
                return Err(malformed(format!(
                    "`{nick}` is already listed on line {first}"
                )));
            }
            let role = Role::of(&nick);
            map.insert(nick.key().to_owned(), (nick, phc, role));
        }
        Ok(Accounts {
            backing: Backing::File(path.to_owned()),
            map,
        })
    }

    /// Every account as (nick as spelt, PHC string), for the import into
    /// the store.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Nick, &str)> {
        self.map.values().map(|(nick, phc, _)| (nick, phc.as_str()))
    }

    /// How many accounts there are.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn is_registered(&self, nick: &Nick) -> bool {
        self.map.contains_key(nick.key())
    }

    /// Whether the admin account has a password. Without one, the `admin`
    /// nickname would carry the admin's rights and no password check.
    pub(crate) fn has_admin(&self) -> bool {
        self.map.contains_key(ADMIN)
    }

    /// The stored PHC string, to check with [`verify_password`] off the
    /// async runtime.
    pub(crate) fn hash_of(&self, nick: &Nick) -> Option<&str> {
        self.map.get(nick.key()).map(|(_, phc, _)| phc.as_str())
    }

    /// The account's role; `None` when `nick` is no account.
    pub(crate) fn role_of(&self, nick: &Nick) -> Option<Role> {
        self.map.get(nick.key()).map(|(_, _, role)| *role)
    }

    /// Takes an account the store has committed (`/register`).
    pub(crate) fn cache_insert(&mut self, nick: Nick, phc: String, role: Role) {
        self.map.insert(nick.key().to_owned(), (nick, phc, role));
    }

    /// Takes a new password the store has committed (`/password`).
    pub(crate) fn cache_password(&mut self, nick: &Nick, phc: String) {
        if let Some(entry) = self.map.get_mut(nick.key()) {
            entry.1 = phc;
        }
    }

    /// Forgets an account the store has deleted (`/unregister`).
    pub(crate) fn cache_remove(&mut self, key: &str) {
        self.map.remove(key);
    }

    /// Hashes `password` with argon2id (default parameters, random salt) and
    /// persists the file (owner-only) before returning `Ok`. On error the
    /// accounts in memory are unchanged.
    pub(crate) fn set_password(
        &mut self,
        nick: &Nick,
        password: &str,
    ) -> Result<(), AccountsError> {
        let phc = hash_password(password)?;
        match &self.backing {
            Backing::File(path) => {
                let mut next = self.map.clone();
                next.insert(nick.key().to_owned(), (nick.clone(), phc, Role::of(nick)));
                write_atomic(path, render(&next).as_bytes(), Mode::Private).map_err(|source| {
                    AccountsError::Write {
                        path: path.clone(),
                        source,
                    }
                })?;
                self.map = next;
            }
            Backing::Store { store, clock } => {
                let (stored, role) = match self.map.get(nick.key()) {
                    Some((_, _, role)) => (store.set_password(nick.key(), &phc), *role),
                    None => {
                        let role = Role::of(nick);
                        let row = AccountRow {
                            nick: nick.clone(),
                            phc: phc.clone(),
                            role,
                            created: clock.now(),
                            created_from: None,
                        };
                        (store.create_account(&row), role)
                    }
                };
                stored.map_err(|e| AccountsError::Store(Box::new(e)))?;
                // An existing account keeps the spelling it was made with.
                let spelt = self.map.get(nick.key()).map_or(nick, |(n, _, _)| n).clone();
                self.map.insert(nick.key().to_owned(), (spelt, phc, role));
            }
        }
        Ok(())
    }
}

impl Accounts {
    /// The accounts holding `role`, as spelt, in key order.
    pub(crate) fn with_role(&self, role: Role) -> impl Iterator<Item = &Nick> {
        self.map
            .values()
            .filter(move |(_, _, r)| *r == role)
            .map(|(nick, _, _)| nick)
    }

    /// Takes a role the store has committed (`/op`, `/deop`); the
    /// account as spelt, `None` if the cache holds no such account.
    pub(crate) fn cache_role(&mut self, nick: &Nick, role: Role) -> Option<Nick> {
        let entry = self.map.get_mut(nick.key())?;
        entry.2 = role;
        Some(entry.0.clone())
    }

    /// Takes a rename the store has committed: the account of `old`, if
    /// it is one, is `new`'s (a change of case included).
    pub(crate) fn cache_rename(&mut self, old: &Nick, new: &Nick) {
        if let Some((_, phc, role)) = self.map.remove(old.key()) {
            self.map
                .insert(new.key().to_owned(), (new.clone(), phc, role));
        }
    }
}

/// The admin nick as a [`Nick`]; `ADMIN` is a valid nick by construction.
fn admin_nick() -> Nick {
    Nick::parse(ADMIN).expect("ADMIN is a valid nickname")
}

pub(crate) fn hash_password(password: &str) -> Result<String, AccountsError> {
    if password.is_empty() {
        return Err(AccountsError::EmptyPassword);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountsError::Hash(e.to_string()))
}

/// Checks `password` against a stored PHC string in constant time. A
/// malformed hash (or empty password) is simply `false`; the malformed hash
/// is logged, since it means the accounts file was damaged.
pub(crate) fn verify_password(phc: &str, password: &str) -> bool {
    if password.is_empty() {
        return false;
    }
    match PasswordHash::new(phc) {
        // Argon2 takes algorithm, version and parameters from the hash
        // itself, so hashes made with other settings still verify.
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(e) => {
            tracing::error!(
                "stored password hash is malformed ({e}); reset it with `tlschat-server passwd`"
            );
            false
        }
    }
}

/// A strong random password: 24 characters from `A-Z a-z 0-9`.
pub(crate) fn generate_password() -> String {
    // rand::rng() is a CSPRNG seeded from the OS.
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(GENERATED_LEN)
        .map(char::from)
        .collect()
}

/// What [`ensure_admin`] did, so the binary can tell the operator.
pub enum AdminSetup {
    /// An admin password was already stored; nothing changed.
    Existing,
    /// The given password replaced whatever was stored.
    Replaced,
    /// A new password was generated and written to `path`.
    Generated { password: String, path: PathBuf },
}

impl fmt::Debug for AdminSetup {
    // Hand-written so the generated password never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminSetup::Existing => f.write_str("Existing"),
            AdminSetup::Replaced => f.write_str("Replaced"),
            AdminSetup::Generated { path, .. } => f
                .debug_struct("Generated")
                .field("password", &"<redacted>")
                .field("path", path)
                .finish(),
        }
    }
}

/// Makes sure the admin account has a password:
/// - `given` is `Some`: store it (replacing any stored hash) → `Replaced`, and
///   delete a stale `<data_dir>/initial-admin-password`;
/// - `None` and an admin is stored → `Existing`;
/// - `None` and no admin → generate one, store it, write it to
///   `<data_dir>/initial-admin-password` (owner-only) → `Generated`.
pub(crate) fn ensure_admin(
    data_dir: &Path,
    accounts: &mut Accounts,
    given: Option<&str>,
) -> Result<AdminSetup, AccountsError> {
    let admin = admin_nick();
    let initial = data_dir.join(INITIAL_PASSWORD_FILE);
    if let Some(password) = given {
        // Hash stored first, stale file deleted second: a crash in between
        // leaves a useless file, never a lost password.
        accounts.set_password(&admin, password)?;
        remove_if_present(&initial)?;
        return Ok(AdminSetup::Replaced);
    }
    if accounts.is_registered(&admin) {
        return Ok(AdminSetup::Existing);
    }
    let password = generate_password();
    // The file first, the hash second: a crash in between leaves no admin,
    // so the next start generates (and writes) a fresh password. The other
    // order could store a hash whose password nobody ever saw.
    let mut content = password.clone();
    content.push('\n');
    write_atomic(&initial, content.as_bytes(), Mode::Private).map_err(|source| {
        AccountsError::Write {
            path: initial.clone(),
            source,
        }
    })?;
    if let Err(e) = accounts.set_password(&admin, &password) {
        // Best effort: that password was never stored, so the file would
        // only mislead.
        let _ = std::fs::remove_file(&initial);
        return Err(e);
    }
    Ok(AdminSetup::Generated {
        password,
        path: initial,
    })
}

/// For the command line (`passwd`): the accounts in the data directory's
/// database, an old `accounts.txt` imported first if there is one (which a
/// running server may have done already; the database's own locking makes
/// two processes safe).
pub fn open_in(data_dir: &Path) -> Result<(Accounts, PathBuf), AccountsError> {
    let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
    let (store, _imported) = crate::sqlite::open_store(data_dir, clock.clone())
        .map_err(|e| AccountsError::Store(Box::new(e)))?;
    let accounts = Accounts::from_store(Arc::new(store), clock)?;
    Ok((accounts, data_dir.join(crate::sqlite::DB_FILE)))
}

/// For `passwd --nick NICK`: sets the password of `nick`'s account, making
/// the account (role user) if there is none. The admin's goes through
/// [`change_admin_password`].
pub fn set_account_password(
    accounts: &mut Accounts,
    nick: &Nick,
    password: &str,
) -> Result<(), AccountsError> {
    accounts.set_password(nick, password)
}

/// For the `passwd` subcommand: stores a new admin password, then deletes
/// `<data_dir>/initial-admin-password` if present (it no longer works).
pub fn change_admin_password(
    data_dir: &Path,
    accounts: &mut Accounts,
    new_password: &str,
) -> Result<(), AccountsError> {
    accounts.set_password(&admin_nick(), new_password)?;
    remove_if_present(&data_dir.join(INITIAL_PASSWORD_FILE))
}

fn remove_if_present(path: &Path) -> Result<(), AccountsError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(AccountsError::RemoveStale {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Parses one trimmed, non-comment line into (nick, PHC string); the error
/// is the reason for [`AccountsError::Malformed`].
fn parse_line(line: &str) -> Result<(Nick, String), String> {
    let mut fields = line.split_whitespace();
    let (Some(nick_s), Some(phc), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err("expected `NICK PHC-HASH`".to_owned());
    };
    let nick = Nick::parse(nick_s).map_err(|e| format!("bad nickname `{nick_s}` ({e})"))?;
    // The hash itself is left out of the message: it is secret-ish.
    let hash =
        PasswordHash::new(phc).map_err(|e| format!("bad password hash for `{nick}` ({e})"))?;
    if argon2::Algorithm::try_from(hash.algorithm).is_err() {
        return Err(format!(
            "password hash for `{nick}` is not argon2 (it starts `${}`)",
            hash.algorithm
        ));
    }
    Ok((nick, phc.to_owned()))
}

fn render(map: &BTreeMap<String, (Nick, String, Role)>) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    for (nick, phc, _) in map.values() {
        out.push_str(nick.as_str());
        out.push(' ');
        out.push_str(phc);
        out.push('\n');
    }
    out
}

/// The file holds password hashes; say so if others can read it (someone
/// copied it or changed its mode by hand).
#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "{} is readable by other users; run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid argon2id PHC string (of the password "x"), for file-format
    /// tests that need no hashing.
    const SAMPLE_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$W0Vq7XhCqXwVn4yGJ5bP+0ShT1QmI9QmcmSlC9C2sfc";

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.txt");
        (dir, path)
    }

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn set_verify_persist_and_reload() {
        let (_dir, path) = setup();
        let mut accounts = Accounts::load(&path).unwrap();
        let admin = admin_nick();
        assert!(!accounts.is_registered(&admin));
        assert!(matches!(
            accounts.set_password(&admin, ""),
            Err(AccountsError::EmptyPassword)
        ));
        assert!(!path.exists());

        accounts.set_password(&admin, "correct horse").unwrap();
        let phc = accounts.hash_of(&admin).unwrap().to_owned();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password(&phc, "correct horse"));
        assert!(!verify_password(&phc, "wrong horse"));
        assert!(!verify_password(&phc, ""));
        assert!(accounts.is_registered(&Nick::parse("ADMIN").unwrap()));

        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{HEADER}\nadmin {phc}\n"));
        assert!(!text.contains("correct horse"));
        #[cfg(unix)]
        assert_eq!(mode_of(&path), 0o600);

        let reloaded = Accounts::load(&path).unwrap();
        assert_eq!(reloaded.hash_of(&admin), Some(phc.as_str()));
        assert!(!reloaded.is_registered(&Nick::parse("bob").unwrap()));
        let debug = format!("{reloaded:?}");
        assert!(debug.contains("admin") && !debug.contains(&phc), "{debug}");
    }

    #[test]
    fn malformed_hash_does_not_verify() {
        assert!(!verify_password("not a hash", "pw"));
        assert!(!verify_password("", "pw"));
    }

    #[test]
    fn ensure_admin_generates_then_keeps_then_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.txt");
        let initial = dir.path().join(INITIAL_PASSWORD_FILE);
        let mut accounts = Accounts::load(&path).unwrap();

        let setup = ensure_admin(dir.path(), &mut accounts, None).unwrap();
        let AdminSetup::Generated { password, path: p } = &setup else {
            panic!("expected Generated, got {setup:?}");
        };
        assert_eq!(p, &initial);
        assert!(!format!("{setup:?}").contains(password.as_str()));
        assert_eq!(
            std::fs::read_to_string(&initial).unwrap(),
            format!("{password}\n")
        );
        #[cfg(unix)]
        assert_eq!(mode_of(&initial), 0o600);
        let phc = accounts.hash_of(&admin_nick()).unwrap().to_owned();
        assert!(verify_password(&phc, password));

        // A restart: the stored admin is kept, and so is the file.
        let mut accounts = Accounts::load(&path).unwrap();
        let setup = ensure_admin(dir.path(), &mut accounts, None).unwrap();
        assert!(matches!(setup, AdminSetup::Existing), "{setup:?}");
        assert!(initial.exists());
        assert_eq!(accounts.hash_of(&admin_nick()), Some(phc.as_str()));

        assert!(matches!(
            ensure_admin(dir.path(), &mut accounts, Some("")),
            Err(AccountsError::EmptyPassword)
        ));
        assert!(initial.exists(), "a failed replace must keep the old file");

        let setup = ensure_admin(dir.path(), &mut accounts, Some("given pw")).unwrap();
        assert!(matches!(setup, AdminSetup::Replaced), "{setup:?}");
        assert!(!initial.exists(), "the stale initial password must go");
        let new_phc = Accounts::load(&path)
            .unwrap()
            .hash_of(&admin_nick())
            .unwrap()
            .to_owned();
        assert_ne!(new_phc, phc);
    }

    #[test]
    fn change_admin_password_deletes_the_initial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.txt");
        let initial = dir.path().join(INITIAL_PASSWORD_FILE);
        std::fs::write(&initial, "old\n").unwrap();
        let mut accounts = Accounts::load(&path).unwrap();
        assert!(matches!(
            change_admin_password(dir.path(), &mut accounts, ""),
            Err(AccountsError::EmptyPassword)
        ));
        assert!(initial.exists());
        change_admin_password(dir.path(), &mut accounts, "n3w").unwrap();
        assert!(!initial.exists());
        let reloaded = Accounts::load(&path).unwrap();
        assert!(verify_password(
            reloaded.hash_of(&admin_nick()).unwrap(),
            "n3w"
        ));
        // Deleting a file that is already gone is not an error.
        assert!(remove_if_present(&initial).is_ok());
    }

    fn malformed(content: &str) -> (usize, String) {
        let (_dir, path) = setup();
        std::fs::write(&path, content).unwrap();
        match Accounts::load(&path) {
            Err(e @ AccountsError::Malformed { line, .. }) => (line, e.to_string()),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn loads_comments_and_blank_lines() {
        let (_dir, path) = setup();
        std::fs::write(&path, format!("# c\r\n\n  Admin   {SAMPLE_PHC}  \r\n")).unwrap();
        let accounts = Accounts::load(&path).unwrap();
        assert_eq!(accounts.hash_of(&admin_nick()), Some(SAMPLE_PHC));
    }

    #[test]
    fn malformed_lines_report_their_line_number() {
        let good = format!("admin {SAMPLE_PHC}\n");
        let (line, msg) = malformed(&format!("# c\n\n{good}bob\n"));
        assert_eq!(line, 4);
        assert!(
            msg.contains("accounts.txt line 4: expected `NICK PHC-HASH`"),
            "{msg}"
        );
        assert!(msg.contains("fix or delete that line"), "{msg}");

        let (line, msg) = malformed(&format!("{good}bob notahash\n"));
        assert_eq!(line, 2);
        assert!(msg.contains("bad password hash for `bob`"), "{msg}");
        assert!(!msg.contains("notahash"), "{msg}");

        let (line, msg) = malformed(&format!("b@d {SAMPLE_PHC}\n"));
        assert_eq!(line, 1);
        assert!(msg.contains("bad nickname `b@d`"), "{msg}");

        let (line, msg) = malformed(&format!("{good}ADMIN {SAMPLE_PHC}\n"));
        assert_eq!(line, 2);
        assert!(msg.contains("already listed on line 1"), "{msg}");

        let (line, _) = malformed(&format!("admin {SAMPLE_PHC} extra\n"));
        assert_eq!(line, 1);

        let pbkdf2 = SAMPLE_PHC.replace("argon2id$v=19$m=19456,t=2,p=1", "pbkdf2-sha256$i=1000");
        let (line, msg) = malformed(&format!("admin {pbkdf2}\n"));
        assert_eq!(line, 1);
        assert!(msg.contains("not argon2"), "{msg}");
    }

    /// A password in any script survives the trip through the database:
    /// hashed here, stored, read back by a new connection, verified.
    #[test]
    fn a_non_ascii_password_verifies_after_a_round_trip_through_the_store() {
        use crate::store::Store;
        let dir = tempfile::tempdir().unwrap();
        let clock = std::sync::Arc::new(crate::clock::SystemClock);
        let (store, _) = crate::sqlite::open_store(dir.path(), clock.clone()).unwrap();
        let password = "пароль-密码-🔑";
        let row = crate::store::AccountRow {
            nick: Nick::parse("Alice").unwrap(),
            phc: hash_password(password).unwrap(),
            role: Role::User,
            created: std::time::SystemTime::now(),
            created_from: Some("2001:db8::".parse().unwrap()),
        };
        store.create_account(&row).unwrap();
        drop(store);
        let (store, _) = crate::sqlite::open_store(dir.path(), clock).unwrap();
        let stored = store.accounts().unwrap().remove(0);
        assert!(verify_password(&stored.phc, password));
        assert!(!verify_password(&stored.phc, "пароль-密码-🗝"));
        let file = std::fs::read(dir.path().join(crate::sqlite::DB_FILE)).unwrap();
        let needle = password.as_bytes();
        assert!(!file.windows(needle.len()).any(|w| w == needle));
    }

    /// The same admin rules over a database instead of the file: generated
    /// on the first start, kept on the next, replaced by `passwd`.
    #[test]
    fn ensure_admin_over_the_store_generates_keeps_and_replaces() {
        use crate::clock::ManualClock;
        let dir = tempfile::tempdir().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_528_800),
        ));
        let open = || {
            let (store, _) = crate::sqlite::open_store(dir.path(), clock.clone()).unwrap();
            let store: Arc<dyn Store> = Arc::new(store);
            (
                Accounts::from_store(store.clone(), clock.clone()).unwrap(),
                store,
            )
        };
        let (mut accounts, store) = open();
        let setup = ensure_admin(dir.path(), &mut accounts, None).unwrap();
        let AdminSetup::Generated { password, .. } = setup else {
            panic!("expected Generated, got {setup:?}");
        };
        let rows = store.accounts().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].role, rows[0].created), (Role::Admin, clock.now()));
        assert!(verify_password(&rows[0].phc, &password));
        assert!(!dir.path().join("accounts.txt").exists());
        drop((accounts, store));

        let (mut accounts, store) = open();
        let setup = ensure_admin(dir.path(), &mut accounts, None).unwrap();
        assert!(matches!(setup, AdminSetup::Existing), "{setup:?}");
        change_admin_password(dir.path(), &mut accounts, "пароль-密码-🔑").unwrap();
        let rows = store.accounts().unwrap();
        assert_eq!(rows.len(), 1, "a new password is no second admin");
        assert_eq!(accounts.role_of(&admin_nick()), Some(Role::Admin));
        assert_eq!(accounts.len(), 1);
        assert!(verify_password(&rows[0].phc, "пароль-密码-🔑"));
        assert_eq!(accounts.hash_of(&admin_nick()), Some(rows[0].phc.as_str()));

        // A user's account is made with the user role.
        let bob = Nick::parse("Bob").unwrap();
        accounts.set_password(&bob, "密码").unwrap();
        let (reloaded, _) = open();
        assert!(reloaded.is_registered(&Nick::parse("bob").unwrap()));
        assert_eq!(reloaded.role_of(&bob), Some(Role::User));
        assert_eq!(reloaded.role_of(&Nick::parse("carol").unwrap()), None);
        let roles: Vec<Role> = store.accounts().unwrap().iter().map(|r| r.role).collect();
        assert_eq!(roles, [Role::Admin, Role::User]);
        let debug = format!("{reloaded:?}");
        assert!(
            debug.contains("Bob") && !debug.contains("argon2"),
            "{debug}"
        );
    }

    #[test]
    fn generated_passwords_are_long_alphanumeric_and_differ() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
