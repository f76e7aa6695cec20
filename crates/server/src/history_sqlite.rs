//! The [`HistoryStore`] in its own SQLite database, `<data-dir>/history.db`.
//!
//! ```text
//! open ─▶ create history.db owner-only (tlschat-fs) ─▶ user_version, quick_check
//!      └─ damaged, foreign or newer: renamed history.db.damaged-<unix-s>, a new one made
//!      ─▶ WAL, synchronous=NORMAL ─▶ schema
//! writer thread ─▶ the write connection ─▶ one transaction a batch
//! reads (blocking pool) ─▶ a pooled read connection ─▶ one snapshot, stopped at TIME_LIMIT
//! ```
//!
//! History is a convenience, not a record to protect: a file that cannot be
//! used is set aside (kept for inspection) and history starts empty, logged
//! as an error, rather than the server refusing to start. `synchronous=NORMAL`
//! in WAL mode makes a committed batch survive the server being killed; a
//! power loss may take the last batches (the accounts database, whose
//! losses matter, runs `FULL`).
//!
//! Search runs on an FTS5 index of the text (`unicode61`, diacritics
//! removed: `ete` finds `été` and `e\u{301}te`), kept by triggers. Search
//! words reach FTS5 only as quoted strings, a trailing `*` (a prefix)
//! outside the quotes, so no user text is ever read as FTS syntax.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode, Transaction, TransactionBehavior};
use tracing::error;

use crate::clock::Clock;
use crate::history::{HistoryError, HistoryStore, Range, Row, SearchWord, Slice};
use crate::sqlite::{connect, open_checked, Checked, Unchecked, BUSY_TIMEOUT};
use crate::store::StoreError;

/// The database's name in the data directory.
pub(crate) const HISTORY_FILE: &str = "history.db";
/// The schema this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;
/// How long one read may run before it is stopped.
const TIME_LIMIT: Duration = Duration::from_millis(250);
/// SQLite steps between two looks at the clock of a running read.
const PROGRESS_STEPS: i32 = 1000;
/// Names `history.db.damaged-<unix-s>[-<n>]` tried when setting a file
/// aside.
const SET_ASIDE_NAMES: u32 = 100;
/// Rows deleted by age in one transaction at most.
const DELETE_CHUNK: u32 = 5000;
/// The write-ahead log is cut back to this size after a checkpoint.
const WAL_LIMIT_BYTES: i64 = 4 << 20;

const SCHEMA: &str = "
CREATE TABLE messages (id INTEGER PRIMARY KEY, room_key TEXT NOT NULL, room TEXT NOT NULL,
  at INTEGER NOT NULL, nick TEXT NOT NULL, action INTEGER NOT NULL, text TEXT NOT NULL,
  UNIQUE (room_key, at));
CREATE INDEX messages_at ON messages(at);
CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='id',
  tokenize='unicode61 remove_diacritics 2');
CREATE TRIGGER messages_added AFTER INSERT ON messages BEGIN
  INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER messages_deleted AFTER DELETE ON messages BEGIN
  INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
";

const ROW_COLUMNS: &str = "m.room, m.at, m.nick, m.action, m.text";

/// Hits newest first in the index's own (rowid) order, so it stops at the
/// limit instead of reading and sorting every hit: within a room, rows are
/// inserted in stamp order, so a larger id is a newer line.
const SEARCH: &str = "SELECT m.room, m.at, m.nick, m.action, m.text \
     FROM messages_fts f JOIN messages m ON m.id = f.rowid \
     WHERE messages_fts MATCH ?1 AND m.room_key = ?2 ORDER BY f.rowid DESC LIMIT ?3";

/// Room history in `<data-dir>/history.db`.
pub(crate) struct SqliteHistory {
    path: PathBuf,
    /// Used by the writer thread alone.
    writer: Mutex<Connection>,
    /// Idle read connections (as many as reads ever ran at once).
    readers: Mutex<Vec<Connection>>,
    time_limit: Duration,
}

impl fmt::Debug for SqliteHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteHistory")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Why a file could not be opened as history.
enum OpenFailure {
    /// The file is not a usable history database: set it aside.
    Unusable(String),
    /// Opening failed for another reason (permissions, the disk).
    Other(StoreError),
}

impl SqliteHistory {
    /// Opens `<data_dir>/history.db`, creating it owner-only if needed. A
    /// damaged, foreign or newer file is renamed
    /// `history.db.damaged-<unix-seconds>` (with its `-wal` and `-shm`) and
    /// replaced by an empty one.
    pub(crate) fn open(data_dir: &Path, clock: &dyn Clock) -> Result<SqliteHistory, StoreError> {
        SqliteHistory::open_with_limit(data_dir, clock, TIME_LIMIT)
    }

    fn open_with_limit(
        data_dir: &Path,
        clock: &dyn Clock,
        time_limit: Duration,
    ) -> Result<SqliteHistory, StoreError> {
        let path = data_dir.join(HISTORY_FILE);
        match SqliteHistory::open_file(&path, time_limit) {
            Ok(history) => Ok(history),
            Err(OpenFailure::Other(e)) => Err(e),
            Err(OpenFailure::Unusable(reason)) => {
                // Never `StoreError::Corrupt`: its advice (restore a backup)
                // is for the accounts database; history is not in backups.
                let aside = set_aside(&path, clock.now()).map_err(|e| StoreError::Open {
                    path: path.clone(),
                    reason: format!(
                        "it is damaged or not tlschat's ({reason}) and could not be set \
                         aside ({e})"
                    ),
                })?;
                error!(
                    "the history database {} is damaged or not tlschat's ({reason}); it is kept \
                     as {} and history starts empty",
                    path.display(),
                    aside.display()
                );
                SqliteHistory::open_file(&path, time_limit).map_err(|e| match e {
                    OpenFailure::Other(e) => e,
                    OpenFailure::Unusable(reason) => StoreError::Open {
                        path,
                        reason: format!(
                            "the new file made in its place is unusable too ({reason})"
                        ),
                    },
                })
            }
        }
    }

    fn open_file(path: &Path, time_limit: Duration) -> Result<SqliteHistory, OpenFailure> {
        let other = |reason: String| {
            OpenFailure::Other(StoreError::Open {
                path: path.to_owned(),
                reason,
            })
        };
        let Checked { conn, version } =
            open_checked(path, SCHEMA_VERSION).map_err(|e| match e {
                Unchecked::Open(reason) => other(reason),
                Unchecked::Unusable(reason) => OpenFailure::Unusable(reason),
                Unchecked::Newer(version) => {
                    OpenFailure::Unusable(format!("written by a newer tlschat (schema {version})"))
                }
            })?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .and_then(|()| conn.pragma_update(None, "journal_size_limit", WAL_LIMIT_BYTES))
            .map_err(|e| other(e.to_string()))?;
        if version == 0 {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(|e| other(format!("cannot create the schema: {e}")))?;
        }
        Ok(SqliteHistory {
            path: path.to_owned(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            time_limit,
        })
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let run = || {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        };
        run().map_err(|e: rusqlite::Error| StoreError::Write {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    /// Runs the reads of `f` on one snapshot, on a read connection of the
    /// pool, stopped after the time limit.
    fn read<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, HistoryError> {
        let read_error = |e: rusqlite::Error| -> HistoryError {
            match e.sqlite_error_code() {
                Some(ErrorCode::OperationInterrupted) => HistoryError::TooSlow(self.time_limit),
                _ => HistoryError::Store(StoreError::Read {
                    path: self.path.clone(),
                    reason: e.to_string(),
                }),
            }
        };
        let idle = self.lock_readers().pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => connect_reader(&self.path, self.time_limit).map_err(read_error)?,
        };
        let deadline = Instant::now() + self.time_limit;
        let out = conn
            .progress_handler(PROGRESS_STEPS, Some(move || Instant::now() >= deadline))
            .and_then(|()| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
                f(&tx)
            });
        if conn.progress_handler(0, None::<fn() -> bool>).is_ok() {
            self.lock_readers().push(conn);
        }
        out.map_err(read_error)
    }

    fn lock_readers(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.readers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A read connection: it writes nothing, and waits for another
/// connection's lock no longer than a read may run.
fn connect_reader(path: &Path, time_limit: Duration) -> rusqlite::Result<Connection> {
    let conn = connect(path)?;
    conn.busy_timeout(time_limit.min(BUSY_TIMEOUT))?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// Renames the file (and its `-wal` and `-shm`, which belong to it) to
/// `<name>.damaged-<unix-seconds>`; returns the new name.
fn set_aside(path: &Path, now: SystemTime) -> Result<PathBuf, StoreError> {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let with_suffix = |base: &Path, suffix: &str| {
        let mut name = base.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let mut aside = with_suffix(path, &format!(".damaged-{secs}"));
    let mut n = 1;
    // A name that cannot be looked at counts as taken; a bounded search,
    // as that may be true of every name.
    while aside.try_exists().unwrap_or(true) {
        n += 1;
        if n > SET_ASIDE_NAMES {
            return Err(StoreError::Write {
                path: path.to_owned(),
                reason: format!(
                    "no free name to set it aside as (up to {})",
                    aside.display()
                ),
            });
        }
        aside = with_suffix(path, &format!(".damaged-{secs}-{n}"));
    }
    for suffix in ["-wal", "-shm"] {
        let from = with_suffix(path, suffix);
        if from.try_exists().unwrap_or(false) {
            rename(&from, &with_suffix(&aside, suffix))?;
        }
    }
    rename(path, &aside)?;
    Ok(aside)
}

fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    std::fs::rename(from, to).map_err(|e| StoreError::Write {
        path: from.to_owned(),
        reason: format!("cannot rename it to {}: {e}", to.display()),
    })
}

/// A stamp as SQLite stores it (stamps are at most 15 digits).
fn to_sql(at: u64) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}

/// The exclusive bounds of a range, as SQL integers.
fn bounds(range: Range) -> (i64, i64) {
    match range {
        Range::Before(None) => (-1, i64::MAX),
        Range::Before(Some(before)) => (-1, to_sql(before)),
        Range::After(after) => (to_sql(after), i64::MAX),
    }
}

/// The FTS5 query for the words: each a quoted string (`"` doubled), a
/// prefix's `*` after the closing quote; juxtaposed, they are AND-ed.
fn match_query(words: &[SearchWord]) -> String {
    let mut query = String::new();
    for word in words {
        if !query.is_empty() {
            query.push(' ');
        }
        query.push('"');
        query.push_str(&word.text.replace('"', "\"\""));
        query.push('"');
        if word.prefix {
            query.push('*');
        }
    }
    query
}

/// Reads `ROW_COLUMNS` of a row of `room_key`.
fn read_row(room_key: &Arc<str>, r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        room_key: room_key.clone(),
        room: r.get::<_, String>(0)?.into(),
        at: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
        nick: r.get::<_, String>(2)?.into(),
        action: r.get(3)?,
        text: r.get::<_, String>(4)?.into(),
    })
}

impl HistoryStore for SqliteHistory {
    fn high_water(&self) -> Result<u64, StoreError> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        conn.query_row("SELECT coalesce(max(at), 0) FROM messages", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|at| u64::try_from(at).unwrap_or(0))
        .map_err(|e| StoreError::Read {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    fn count(&self) -> Result<u64, StoreError> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        conn.query_row("SELECT count(*) FROM messages", [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|e| StoreError::Read {
                path: self.path.clone(),
                reason: e.to_string(),
            })
    }

    fn trim_oldest(&self, n: u64) -> Result<u64, StoreError> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM messages WHERE id IN \
                 (SELECT id FROM messages ORDER BY at, id LIMIT ?1)",
                [i64::try_from(n).unwrap_or(i64::MAX)],
            )
        })
        .map(|deleted| deleted as u64)
    }

    fn append(&self, rows: &[Arc<Row>], lines_per_room: u32) -> Result<i64, StoreError> {
        self.write(|tx| {
            let mut change = 0i64;
            let mut insert = tx.prepare(
                "INSERT INTO messages (room_key, room, at, nick, action, text) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (room_key, at) DO NOTHING",
            )?;
            for row in rows {
                change += insert.execute(params![
                    &*row.room_key,
                    &*row.room,
                    to_sql(row.at),
                    &*row.nick,
                    row.action,
                    &*row.text
                ])? as i64;
            }
            let mut trim = tx.prepare(
                "DELETE FROM messages WHERE room_key = ?1 AND at < (SELECT at FROM messages \
                 WHERE room_key = ?1 ORDER BY at DESC LIMIT 1 OFFSET ?2)",
            )?;
            let mut touched: Vec<&str> = rows.iter().map(|r| &*r.room_key).collect();
            touched.sort_unstable();
            touched.dedup();
            for room_key in touched {
                change -= trim.execute(params![room_key, lines_per_room.max(1) - 1])? as i64;
            }
            Ok(change)
        })
    }

    fn retain(&self, oldest_ms: u64, lines_per_room: Option<u32>) -> Result<u64, StoreError> {
        // By age in chunks, each its own transaction: a first start after
        // a long stop may delete much, and batches wait meanwhile.
        let mut deleted = 0;
        loop {
            let chunk = self.write(|tx| {
                tx.execute(
                    "DELETE FROM messages WHERE id IN \
                     (SELECT id FROM messages WHERE at < ?1 LIMIT ?2)",
                    params![to_sql(oldest_ms), DELETE_CHUNK],
                )
            })?;
            deleted += chunk as u64;
            if chunk < DELETE_CHUNK as usize {
                break;
            }
        }
        if let Some(lines) = lines_per_room {
            let over = self.write(|tx| {
                tx.execute(
                    "DELETE FROM messages WHERE id IN (SELECT id FROM (SELECT id, row_number() \
                     OVER (PARTITION BY room_key ORDER BY at DESC) AS newer FROM messages) \
                     WHERE newer > ?1)",
                    [lines.max(1)],
                )
            })?;
            deleted += over as u64;
        }
        Ok(deleted)
    }

    fn finish(&self) -> Result<(), StoreError> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .map_err(|e| StoreError::Write {
                path: self.path.clone(),
                reason: e.to_string(),
            })
    }

    fn slice(
        &self,
        room_key: &str,
        range: Range,
        limit: usize,
        queued_from: Option<u64>,
    ) -> Result<Slice, HistoryError> {
        let (after, before) = bounds(range);
        let key: Arc<str> = room_key.into();
        self.read(|tx| {
            let rows = tx
                .prepare(&format!(
                    "SELECT {ROW_COLUMNS} FROM messages m WHERE room_key = ?1 AND at > ?2 \
                     AND at < ?3 ORDER BY at DESC LIMIT ?4"
                ))?
                .query_map(
                    params![
                        room_key,
                        after,
                        before,
                        i64::try_from(limit).unwrap_or(i64::MAX)
                    ],
                    |r| read_row(&key, r),
                )?
                .collect::<rusqlite::Result<Vec<Row>>>()?;
            let total: i64 = tx.query_row(
                "SELECT count(*) FROM messages WHERE room_key = ?1 AND at > ?2 AND at < ?3",
                params![room_key, after, before],
                |r| r.get(0),
            )?;
            let queued_present: i64 = match queued_from {
                Some(from) => tx.query_row(
                    "SELECT count(*) FROM messages WHERE room_key = ?1 AND at > ?2 AND at < ?3 \
                     AND at >= ?4",
                    params![room_key, after, before, to_sql(from)],
                    |r| r.get(0),
                )?,
                None => 0,
            };
            Ok(Slice {
                rows,
                total: u64::try_from(total).unwrap_or(0),
                queued_present: u64::try_from(queued_present).unwrap_or(0),
            })
        })
    }

    fn search(
        &self,
        room_key: &str,
        words: &[SearchWord],
        limit: usize,
    ) -> Result<Vec<Row>, HistoryError> {
        let query = match_query(words);
        let key: Arc<str> = room_key.into();
        self.read(|tx| {
            tx.prepare(SEARCH)?
                .query_map(
                    params![query, room_key, i64::try_from(limit).unwrap_or(i64::MAX)],
                    |r| read_row(&key, r),
                )?
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, SystemClock};
    use crate::history::tests::{
        a_global_cap_keeps_the_newest_lines, reads_with_left, row, settings, shared, words, TEXTS,
    };
    use crate::history::History;

    fn open(dir: &Path) -> SqliteHistory {
        SqliteHistory::open(dir, &SystemClock).unwrap()
    }

    /// Fails unless the full-text index holds exactly the table's rows
    /// (deleted rows forgotten): `1` checks it against the content table.
    fn index_matches_its_table(history: &SqliteHistory) {
        history
            .writer
            .lock()
            .unwrap()
            .execute_batch(
                "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)",
            )
            .unwrap();
    }

    fn found(history: &SqliteHistory, room_key: &str, w: &[&str]) -> Vec<u64> {
        history
            .search(room_key, &words(w), 50)
            .unwrap()
            .iter()
            .map(|r| r.at)
            .collect()
    }

    #[test]
    fn the_bundled_sqlite_has_fts5() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE VIRTUAL TABLE t USING fts5(x); INSERT INTO t VALUES ('Привет, мир')",
        )
        .unwrap();
        let hit: String = conn
            .query_row("SELECT x FROM t WHERE t MATCH 'привет'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(hit, "Привет, мир");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_reads_count_what_they_leave_out() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path(), settings(), Arc::new(SystemClock)).unwrap();
        reads_with_left(&history).await;
        history.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_history_keeps_a_global_cap() {
        let dir = tempfile::tempdir().unwrap();
        a_global_cap_keeps_the_newest_lines(|max_lines| {
            let mut settings = settings();
            settings.max_lines = max_lines;
            History::open(dir.path(), settings, Arc::new(SystemClock)).unwrap()
        })
        .await;
        let history = open(dir.path());
        assert_eq!(history.count().unwrap(), 4);
        index_matches_its_table(&history);
    }

    #[test]
    fn the_file_is_owner_only_and_reopens_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let history = open(dir.path());
        let rows: Vec<Row> = (1..=6)
            .map(|at| row("#Мир", at, TEXTS[at as usize - 1]))
            .collect();
        history.append(&shared(rows.iter().cloned()), 500).unwrap();
        drop(history);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(HISTORY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let loose = std::fs::Permissions::from_mode(0o644);
            std::fs::set_permissions(dir.path().join(HISTORY_FILE), loose).unwrap();
        }
        let history = open(dir.path());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for name in ["history.db", "history.db-wal", "history.db-shm"] {
                let Ok(meta) = std::fs::metadata(dir.path().join(name)) else {
                    continue;
                };
                assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
            }
        }
        assert_eq!(history.high_water().unwrap(), 6);
        let slice = history
            .slice("#мир", Range::Before(None), 50, None)
            .unwrap();
        let mut back = slice.rows;
        back.reverse();
        assert_eq!(back, rows);
        // A stamp already kept is skipped, not an error.
        history
            .append(&shared(rows[..1].iter().cloned()), 500)
            .unwrap();
        assert_eq!(
            history
                .slice("#мир", Range::Before(None), 50, None)
                .unwrap()
                .total,
            6
        );
    }

    #[test]
    fn count_retention_keeps_exactly_n_per_room() {
        let dir = tempfile::tempdir().unwrap();
        let history = open(dir.path());
        for batch in 0..5u64 {
            let rows: Vec<Row> = (0..30)
                .map(|i| {
                    let at = batch * 30 + i + 1;
                    row(
                        ["#Ä", "#ב", "#日"][(at % 3) as usize],
                        at,
                        TEXTS[(at % 6) as usize],
                    )
                })
                .collect();
            history.append(&shared(rows.iter().cloned()), 11).unwrap();
        }
        for room in ["#ä", "#ב", "#日"] {
            let slice = history.slice(room, Range::Before(None), 500, None).unwrap();
            assert_eq!(slice.total, 11, "{room}");
            assert!(slice.rows.iter().all(|r| r.at > 150 - 33), "{room}");
        }
        // Retention over all rooms, by count and by age.
        assert_eq!(history.retain(0, Some(4)).unwrap(), 3 * 7);
        assert_eq!(history.retain(149, None).unwrap(), 10);
        let left: Vec<u64> = ["#ä", "#ב", "#日"]
            .iter()
            .flat_map(|room| {
                history
                    .slice(room, Range::Before(None), 9, None)
                    .unwrap()
                    .rows
            })
            .map(|r| r.at)
            .collect();
        assert_eq!(left, [150, 149]);
        index_matches_its_table(&history);
        assert_eq!(found(&history, "#ב", &["привет"]), Vec::<u64>::new());
        assert_eq!(found(&history, "#日", &["e\u{301}te"]), [149]);
        assert_eq!(found(&history, "#ä", &["привет"]), [150]);
        // More old rows than one delete takes.
        let many: Vec<Row> = (1000..13_001).map(|at| row("#Ä", at, "日本語")).collect();
        history.append(&shared(many), 20_000).unwrap();
        assert_eq!(history.retain(12_990, None).unwrap(), 11_990 + 2);
    }

    #[test]
    fn search_folds_case_and_diacritics_and_takes_words_literally() {
        let dir = tempfile::tempdir().unwrap();
        let history = open(dir.path());
        let texts = [
            "Привет МИР",
            "שלום עולם",
            "مرحبا بالعالم",
            "日本語 テキスト",
            "👩‍👩‍👧 👍🏽 Été",
            "e\u{301}te à Paris",
            "NEAR OR \"x\"",
            "x) OR 1=1; DROP TABLE messages; --",
            "naïve café résumé",
        ];
        let rows: Vec<Row> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| row("#Все", i as u64 + 1, t))
            .collect();
        history.append(&shared(rows.iter().cloned()), 500).unwrap();
        history
            .append(&[Arc::new(row("#other", 100, "привет мир"))], 500)
            .unwrap();
        let room = "#все";
        assert_eq!(found(&history, room, &["привет"]), [1]);
        assert_eq!(found(&history, room, &["мир", "ПРИВЕТ"]), [1]);
        assert_eq!(found(&history, room, &["при*"]), [1]);
        assert_eq!(found(&history, room, &["прив*"]), [1]);
        assert_eq!(found(&history, room, &["שלום"]), [2]);
        assert_eq!(found(&history, room, &["مرحبا"]), [3]);
        assert_eq!(found(&history, room, &["テキスト"]), [4]);
        assert_eq!(found(&history, room, &["日本語*"]), [4]);
        assert_eq!(found(&history, room, &["ete"]), [6, 5]);
        assert_eq!(found(&history, room, &["ÉTÉ"]), [6, 5]);
        assert_eq!(found(&history, room, &["e\u{301}te"]), [6, 5]);
        assert_eq!(found(&history, room, &["cafe", "naive"]), [9]);
        assert_eq!(found(&history, room, &["resum*"]), [9]);
        // Whole words: a part of one is not a hit.
        assert_eq!(found(&history, room, &["caf"]), Vec::<u64>::new());
        // FTS operators and quotes are text.
        assert_eq!(found(&history, room, &["NEAR", "OR", "\"x\""]), [7]);
        assert_eq!(found(&history, room, &["near"]), [7]);
        assert_eq!(found(&history, room, &["OR"]), [8, 7]);
        assert_eq!(found(&history, room, &["NEAR("]), [7]);
        assert_eq!(found(&history, room, &["x)", "DROP"]), [8]);
        assert_eq!(found(&history, room, &["\"", "OR"]), [8, 7]);
        assert_eq!(found(&history, room, &["AND", "NOT"]), Vec::<u64>::new());
        assert_eq!(found(&history, room, &["messages;*"]), [8]);
        // Emoji are words. A word of separators only is no error: alone
        // it finds nothing, beside others it is ignored.
        assert_eq!(found(&history, room, &["👍🏽"]), [5]);
        assert_eq!(found(&history, room, &["--"]), Vec::<u64>::new());
        assert_eq!(found(&history, room, &["--", "OR"]), [8, 7]);
        // Another room's lines are not hits.
        assert_eq!(found(&history, "#other", &["привет"]), [100]);
    }

    #[test]
    fn search_reads_hits_newest_first_without_sorting_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let history = open(dir.path());
        let conn = history.writer.lock().unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {SEARCH}"))
            .unwrap()
            .query_map(params!["\"x\"", "#r", 21], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        drop(conn);
        assert!(
            plan.iter().all(|step| !step.contains("TEMP B-TREE")),
            "{plan:?}"
        );
        assert!(plan[0].starts_with("SCAN f VIRTUAL TABLE"), "{plan:?}");
        // Many newer hits in another room do not crowd out this room's.
        let mut rows = Vec::new();
        for at in 1..=5 {
            rows.push(row("#Тихо", at, "привет мир"));
        }
        for at in 6..=400 {
            rows.push(row("#Шумно", at, "привет всем"));
            if at % 100 == 0 {
                rows.push(row("#Тихо", at, "привет снова"));
            }
        }
        history.append(&shared(rows), 1000).unwrap();
        assert_eq!(
            found(&history, "#тихо", &["привет"]),
            [400, 300, 200, 100, 5, 4, 3, 2, 1]
        );
        let hits = history.search("#тихо", &words(&["привет"]), 6).unwrap();
        let stamps: Vec<u64> = hits.iter().map(|r| r.at).collect();
        assert_eq!(stamps, [400, 300, 200, 100, 5, 4]);
        assert_eq!(found(&history, "#тихо", &["мир"]), [5, 4, 3, 2, 1]);
        assert_eq!(found(&history, "#шумно", &["снова"]), Vec::<u64>::new());
    }

    #[test]
    fn a_slow_query_is_stopped_at_the_time_limit() {
        let dir = tempfile::tempdir().unwrap();
        let history =
            SqliteHistory::open_with_limit(dir.path(), &SystemClock, Duration::ZERO).unwrap();
        let rows: Vec<Row> = (1..=3000).map(|at| row("#r", at, "привет мир")).collect();
        history.append(&shared(rows.iter().cloned()), 5000).unwrap();
        // Hits in another room only: every one of them is looked at.
        assert!(matches!(
            history.search("#other", &words(&["привет"]), 20),
            Err(HistoryError::TooSlow(Duration::ZERO))
        ));
        assert!(matches!(
            history.slice("#r", Range::Before(None), 20, None),
            Err(HistoryError::TooSlow(_))
        ));
        // The connection went back to the pool usable: a normal limit answers.
        let history = SqliteHistory {
            time_limit: TIME_LIMIT,
            ..history
        };
        assert_eq!(
            history.search("#r", &words(&["привет"]), 20).unwrap().len(),
            20
        );
    }

    #[test]
    fn an_unusable_file_is_set_aside_and_history_starts_empty() {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_795_528_800));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        let aside = dir.path().join("history.db.damaged-1795528800");
        let cases: [(&str, &dyn Fn()); 3] = [
            ("garbage", &|| {
                std::fs::write(&path, "это не база данных 🙃".repeat(100)).unwrap()
            }),
            ("foreign", &|| {
                let conn = Connection::open(&path).unwrap();
                conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES ('שלום')")
                    .unwrap();
            }),
            ("newer", &|| {
                let conn = Connection::open(&path).unwrap();
                conn.execute_batch("PRAGMA user_version = 99").unwrap();
            }),
        ];
        for (what, make) in cases {
            make();
            let before = std::fs::read(&path).unwrap();
            let history = SqliteHistory::open(dir.path(), &clock).expect(what);
            assert_eq!(std::fs::read(&aside).unwrap(), before, "{what}");
            assert_eq!(history.high_water().unwrap(), 0, "{what}");
            history
                .append(&[Arc::new(row("#r", 1, "日本語 テキスト"))], 500)
                .unwrap();
            assert_eq!(found(&history, "#r", &["テキスト"]), [1], "{what}");
            drop(history);
            std::fs::remove_file(&aside).unwrap();
            for file in ["history.db", "history.db-wal", "history.db-shm"] {
                let _ = std::fs::remove_file(dir.path().join(file));
            }
        }
    }

    #[test]
    fn reads_write_nothing_and_wait_for_a_lock_no_longer_than_their_limit() {
        let dir = tempfile::tempdir().unwrap();
        let limit = Duration::from_millis(100);
        let history = SqliteHistory::open_with_limit(dir.path(), &SystemClock, limit).unwrap();
        history
            .append(&[Arc::new(row("#Мир", 1, "привет мир"))], 500)
            .unwrap();
        let wrote = history.read(|tx| tx.execute("DELETE FROM messages", []));
        assert!(wrote.is_err(), "{wrote:?}");
        let waits = history
            .read(|tx| tx.query_row("PRAGMA busy_timeout", [], |r| r.get::<_, i64>(0)))
            .unwrap();
        assert_eq!(waits, 100);
        // The writer waits longer: it must not lose a batch to a reader.
        let waits: i64 = history
            .writer
            .lock()
            .unwrap()
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .unwrap();
        assert_eq!(waits, BUSY_TIMEOUT.as_millis() as i64);
        let read = history.slice("#мир", Range::Before(None), 5, None).unwrap();
        assert_eq!(read.total, 1);
    }

    #[test]
    fn a_file_that_cannot_be_set_aside_is_an_open_error_without_backup_advice() {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_795_528_800));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(HISTORY_FILE),
            "это не база данных".repeat(100),
        )
        .unwrap();
        std::fs::write(dir.path().join("history.db-wal"), "").unwrap();
        // Where its log would go, a directory that is not empty.
        let blocker = dir.path().join("history.db.damaged-1795528800-wal");
        std::fs::create_dir(&blocker).unwrap();
        std::fs::write(blocker.join("x"), "").unwrap();
        let failed = SqliteHistory::open(dir.path(), &clock);
        let Err(e @ StoreError::Open { .. }) = failed else {
            panic!("{failed:?}");
        };
        let message = e.to_string();
        assert!(message.contains("could not be set aside"), "{message}");
        assert!(!message.contains("backup"), "{message}");
        // Every name to set it aside as taken: an error, not an endless
        // search.
        std::fs::remove_file(dir.path().join("history.db-wal")).unwrap();
        std::fs::write(dir.path().join("history.db.damaged-1795528800"), "").unwrap();
        for n in 2..=SET_ASIDE_NAMES {
            let name = format!("history.db.damaged-1795528800-{n}");
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let failed = SqliteHistory::open(dir.path(), &clock);
        assert!(matches!(failed, Err(StoreError::Open { .. })), "{failed:?}");
        assert!(dir.path().join(HISTORY_FILE).exists());
    }

    #[test]
    fn a_locked_file_is_an_open_error_and_stays_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let history = open(dir.path());
        history
            .append(&[Arc::new(row("#Мир", 1, "привет мир"))], 500)
            .unwrap();
        drop(history);
        // Another process holding the file: reading it answers "busy".
        let other = Connection::open(dir.path().join(HISTORY_FILE)).unwrap();
        other
            .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
            .unwrap();
        let failed = SqliteHistory::open(dir.path(), &SystemClock);
        assert!(matches!(failed, Err(StoreError::Open { .. })), "{failed:?}");
        drop(other);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains("damaged")), "{names:?}");
        assert_eq!(open(dir.path()).high_water().unwrap(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_writes_everything_queued_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = settings();
        settings.lines_per_room = 1000;
        let history = History::open(dir.path(), settings.clone(), Arc::new(SystemClock)).unwrap();
        for at in 1..=5000u64 {
            history.offer(row(
                &format!("#Комната{}", at % 7),
                at,
                TEXTS[(at % 6) as usize],
            ));
        }
        history.shutdown().await;
        assert_eq!(history.dropped(), 0);
        // Everything is in the main file: a copy of it alone has it all.
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(
            dir.path().join(HISTORY_FILE),
            copy.path().join(HISTORY_FILE),
        )
        .unwrap();
        let history = History::open(copy.path(), settings, Arc::new(SystemClock)).unwrap();
        assert_eq!(history.high_water(), 5000);
        let mut kept = 0;
        for room in 0..7 {
            let page = history
                .recent(&format!("#комната{room}"), None, 1000, usize::MAX)
                .await
                .unwrap();
            kept += page.rows.len();
        }
        assert_eq!(kept, 5000);
        history.shutdown().await;
    }

    /// The size of 100 000 lines of 80 bytes over 20 rooms, printed (the
    /// figure docs/storage.md gives; `--nocapture` shows it) and bounded.
    #[test]
    fn size_of_100k_lines() {
        let dir = tempfile::tempdir().unwrap();
        let history = open(dir.path());
        let vocabulary: Vec<String> = (0..3000u64)
            .map(|i| {
                let mut seed = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                (0..(3 + i % 7))
                    .map(|_| {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        char::from(b'a' + ((seed >> 33) % 26) as u8)
                    })
                    .collect()
            })
            .collect();
        let mut seed = 1u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        let base = 1_795_528_800_000u64;
        for batch in 0..100u64 {
            let rows: Vec<Row> = (0..1000u64)
                .map(|i| {
                    let n = batch * 1000 + i;
                    let mut text = String::new();
                    while text.len() < 80 {
                        if !text.is_empty() {
                            text.push(' ');
                        }
                        text.push_str(&vocabulary[next(vocabulary.len())]);
                    }
                    // ASCII words: byte 80 is a character boundary.
                    text.truncate(80);
                    Row {
                        room_key: format!("#room{}", n % 20).into(),
                        room: format!("#Room{}", n % 20).into(),
                        at: base + n,
                        nick: format!("user{}", next(200)).into(),
                        action: false,
                        text: text.into(),
                    }
                })
                .collect();
            history
                .append(&shared(rows.iter().cloned()), 500_000)
                .unwrap();
        }
        history
            .writer
            .lock()
            .unwrap()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        let size = std::fs::metadata(dir.path().join(HISTORY_FILE))
            .unwrap()
            .len();
        println!(
            "history.db with 100000 lines of 80 bytes over 20 rooms: {size} bytes ({:.1} MiB)",
            size as f64 / (1 << 20) as f64
        );
        assert!(size < 32 << 20, "{size} bytes");
        drop(history);
        let started = Instant::now();
        let history = open(dir.path());
        println!(
            "reopened (with its integrity check) in {:?}",
            started.elapsed()
        );
        assert_eq!(history.high_water().unwrap(), base + 99_999);
    }
}
