//! tlschat-fs: the files both programs keep and read. Crash-safe writes for
//! every file the server keeps (bans, accounts, certificates, the initial
//! admin password) and the client's `known_hosts`, the checks on the
//! directories that hold them, and the one reader of password files
//! (`--admin-password-file`, `--password-file`).
//!
//! ```text
//! bytes ─write_atomic─▶ .tlschat-tmp… beside it ─fsync, rename─▶ target, fsync dir
//! directory ─check_private_dir / create_private_dir─▶ ok, or UnsafeDir (why, and the fix)
//! password file ─read_password_file─▶ its first line, or PasswordFileError
//! ```
//!
//! [`create_private_file`] makes an empty owner-only file for a library
//! that writes it itself (SQLite).
//!
//! [`write_new_via`] does the same for a writer that needs a path (SQLite's
//! backup), and never replaces an existing file.
//!
//! [`write_atomic`] writes a temporary file beside the target, fsyncs it,
//! renames it over the target and (on Unix) fsyncs the directory, so a
//! `kill -9` or power loss at any moment leaves either the old file or the
//! new one, never a torn mix.
//!
//! [`check_private_dir`] refuses, on Unix, a directory someone else could
//! swap files in (the rule of OpenSSH's `StrictModes`): its owner must be
//! this user or root, and neither group nor others may write to it.
//! Whoever can write there can replace the private key or the password
//! hash, and with them the server. [`create_private_dir`] makes new ones
//! `0700`. Windows has no modes: files there inherit their directory's ACLs,
//! and the check passes.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A directory for the server's files that others could write into.
#[derive(Debug, thiserror::Error)]
pub enum UnsafeDir {
    #[error(
        "{} is owned by user id {owner}, not by this user (id {me}) or root: its owner \
         can replace the files in it; run `chown {me} {}` or start the server as its owner",
        path.display(), path.display()
    )]
    Owner { path: PathBuf, owner: u32, me: u32 },
    #[error(
        "{} is writable by {who} (mode {mode:04o}): they can replace the files in it; \
         run `chmod 700 {}`",
        path.display(), path.display()
    )]
    Writable {
        path: PathBuf,
        mode: u32,
        who: &'static str,
    },
    #[error("cannot check {}: {source}", path.display())]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Refuses a directory that others could write into (see the module docs);
/// `Ok` on platforms without Unix modes.
#[cfg(unix)]
pub fn check_private_dir(path: &Path) -> Result<(), UnsafeDir> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|source| UnsafeDir::Stat {
        path: path.to_path_buf(),
        source,
    })?;
    let me = rustix::process::geteuid().as_raw();
    let owner = meta.uid();
    if owner != me && owner != 0 {
        return Err(UnsafeDir::Owner {
            path: path.to_path_buf(),
            owner,
            me,
        });
    }
    let mode = meta.mode() & 0o7777;
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (false, false) => return Ok(()),
        (true, false) => "its group",
        (false, true) => "others",
        (true, true) => "its group and others",
    };
    Err(UnsafeDir::Writable {
        path: path.to_path_buf(),
        mode,
        who,
    })
}

#[cfg(not(unix))]
pub fn check_private_dir(_path: &Path) -> Result<(), UnsafeDir> {
    Ok(())
}

/// Creates `path` and any missing parents; `path` itself, if this creates
/// it, is `0700` on Unix from the start (the parents get the umask's mode).
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    #[cfg(unix)]
    let builder = {
        use std::os::unix::fs::DirBuilderExt;
        let mut builder = std::fs::DirBuilder::new();
        builder.mode(0o700);
        builder
    };
    #[cfg(not(unix))]
    let builder = std::fs::DirBuilder::new();
    match builder.create(path) {
        // Created meanwhile by someone else: the check decides about it.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        other => other,
    }
}

/// Who may read the file once written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Readable by everyone (certificates).
    Public,
    /// Readable by the owner only (private keys, password hashes, bans):
    /// 0600 on Unix.
    Private,
}

/// Creates `path` empty if it does not exist, owner-only (`0600`) on Unix
/// from the first moment; returns whether it created it. An existing file is
/// left as it is. For files a library opens itself (the server's database),
/// so they never exist with the umask's mode. Windows has no modes: the file
/// inherits its directory's ACLs, as every file of the data directory does.
pub fn create_private_file(path: &Path) -> io::Result<bool> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(file) => {
            file.sync_all()?;
            sync_dir(
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new(".")),
            )?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// The name prefix of [`write_atomic`]'s temporary files.
const TEMP_PREFIX: &str = ".tlschat-tmp";

/// Deletes temporary files a killed process left in `dir` (a crash between
/// create and rename); returns how many. Never touches anything else.
pub fn remove_stale_temp_files(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let stale = entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
            && entry.file_type()?.is_file();
        if stale {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Atomically replaces `path` with `contents` (see the module docs).
pub fn write_atomic(path: &Path, contents: &[u8], mode: Mode) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // tempfile creates the file with mode 0600 on Unix, so a secret is never
    // readable by others, not even between create and rename.
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    #[cfg(unix)]
    if mode == Mode::Public {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Creates `path` through a writer that needs a path of its own (a library
/// that opens the file itself, such as SQLite's backup): `write` fills a
/// temporary file beside `path` (owner-only on Unix, whatever `mode` says
/// until it is complete), which is then fsynced and renamed into place.
/// Never replaces: an existing `path` is `AlreadyExists` and stays as it
/// was. A failed `write` leaves nothing behind.
pub fn write_new_via(
    path: &Path,
    mode: Mode,
    write: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists", path.display()),
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?
        .into_temp_path();
    write(&tmp)?;
    let file = std::fs::File::open(&tmp)?;
    #[cfg(unix)]
    if mode == Mode::Public {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.sync_all()?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Why a password file gave no password. The messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum PasswordFileError {
    #[error("cannot read {}: {source}; check that it exists and is a readable file", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("password file {} has an empty first line; put the password on the first line", path.display())]
    Empty { path: PathBuf },
    #[error("password file {} is not valid UTF-8; save it as UTF-8 text", path.display())]
    Encoding { path: PathBuf },
}

/// Reads a password file: its first line without the trailing `\r\n` or
/// `\n`, everything else kept (spaces are part of a password). An empty
/// first line is an error rather than an empty password.
pub fn read_password_file(path: &Path) -> Result<String, PasswordFileError> {
    let bytes = std::fs::read(path).map_err(|source| PasswordFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    if first.is_empty() {
        return Err(PasswordFileError::Empty {
            path: path.to_owned(),
        });
    }
    String::from_utf8(first.to_vec()).map_err(|_| PasswordFileError::Encoding {
        path: path.to_owned(),
    })
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Windows has no directory handles to fsync; MoveFileEx (used by
    // persist) with the file already flushed is the durable path there.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_password_file_takes_the_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        for (content, want) in [
            ("s3cret\n", "s3cret"),
            ("s3cret\r\nsecond line\n", "s3cret"),
            ("no newline", "no newline"),
            (" spaces kept \n", " spaces kept "),
            ("пароль密码🔑\n", "пароль密码🔑"),
        ] {
            std::fs::write(&path, content).unwrap();
            assert_eq!(read_password_file(&path).unwrap(), want);
        }
        for content in ["", "\n", "\r\n", "\nsecond"] {
            std::fs::write(&path, content).unwrap();
            let err = read_password_file(&path).unwrap_err();
            assert!(
                matches!(err, PasswordFileError::Empty { .. }),
                "{content:?}: {err}"
            );
        }
        std::fs::write(&path, b"\xff\xfe\n").unwrap();
        let err = read_password_file(&path).unwrap_err();
        assert!(matches!(err, PasswordFileError::Encoding { .. }), "{err}");
        let err = read_password_file(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, PasswordFileError::Read { .. }), "{err}");
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn replaces_contents_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        write_atomic(&path, b"one", Mode::Public).unwrap();
        write_atomic(&path, b"two", Mode::Public).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn stale_temp_files_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".tlschat-tmpAbC"), b"torn").unwrap();
        std::fs::write(dir.path().join("bans.txt"), b"keep").unwrap();
        assert_eq!(remove_stale_temp_files(dir.path()).unwrap(), 1);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("bans.txt")]);
        assert_eq!(
            remove_stale_temp_files(&dir.path().join("missing")).unwrap(),
            0
        );
    }

    #[cfg(unix)]
    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn directories_others_can_write_to_are_refused_naming_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("данные 数据 👩🏽‍💻");
        std::fs::create_dir(&path).unwrap();
        for (mode, who) in [
            (0o777, "its group and others"),
            (0o770, "its group"),
            (0o703, "others"),
            (0o1777, "its group and others"),
        ] {
            chmod(&path, mode);
            let e = check_private_dir(&path).unwrap_err();
            assert!(matches!(e, UnsafeDir::Writable { .. }), "{e}");
            let text = e.to_string();
            assert!(text.contains(&format!("writable by {who} ")), "{text}");
            assert!(
                text.contains(&format!("chmod 700 {}", path.display())),
                "{text}"
            );
        }
        for mode in [0o700, 0o750, 0o755, 0o500] {
            chmod(&path, mode);
            check_private_dir(&path).unwrap_or_else(|e| panic!("{mode:o}: {e}"));
        }
        assert!(matches!(
            check_private_dir(&dir.path().join("missing")),
            Err(UnsafeDir::Stat { .. })
        ));
    }

    /// The owner rule needs a directory owned by someone else, which only
    /// root can make: another user's is refused, root's own passes.
    #[cfg(unix)]
    #[test]
    fn a_directory_of_another_user_is_refused() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: only root can give a directory to another user");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("theirs");
        create_private_dir(&path).unwrap();
        check_private_dir(&path).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let e = check_private_dir(&path).unwrap_err();
        assert!(matches!(e, UnsafeDir::Owner { owner: 65534, .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("chown 0 {}", path.display())),
            "{text}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn created_directories_are_owner_only_and_existing_ones_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a").join("b");
        create_private_dir(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        check_private_dir(&path).unwrap();
        chmod(&path, 0o750);
        create_private_dir(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o750);
    }

    #[test]
    fn create_private_file_creates_once_and_keeps_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("база 数据 🔑.db");
        assert!(create_private_file(&path).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"kept").unwrap();
        assert!(!create_private_file(&path).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");
        assert!(create_private_file(&dir.path().join("missing").join("x")).is_err());
    }

    #[test]
    fn write_new_via_creates_through_a_path_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("копия 备份 💾");
        write_new_via(&path, Mode::Private, |tmp| {
            assert_eq!(tmp.parent(), Some(dir.path()));
            std::fs::write(tmp, "пароль-密码-🔑")
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "пароль-密码-🔑");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let err =
            write_new_via(&path, Mode::Private, |tmp| std::fs::write(tmp, "new")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "пароль-密码-🔑");
        let other = dir.path().join("failed");
        let err = write_new_via(&other, Mode::Private, |_| {
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_atomic(&path, b"s", Mode::Private).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        write_atomic(&path, b"p", Mode::Public).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }
}
