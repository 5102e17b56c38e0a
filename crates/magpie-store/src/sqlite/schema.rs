//! The SQLite schema, connection setup and the row decoders shared by reads
//! and writes. Owns everything that must agree between the writer connection
//! and the read pool: table layout, pragmas and how columns map to domain types.

use crate::error::{Result, StoreError};
use magpie_core::{
    ClientMsgId, ConvId, DeviceId, Message, MessageMeta, Persistence, ServerMsgId, UserId,
};
use rusqlite::{Connection, OpenFlags, Row};
use std::path::Path;
use std::time::Duration;

/// The layout of the last migration (`STEPS`); stored in `PRAGMA
/// user_version` so an older binary refuses a database written by a newer
/// one. Version 3 keeps client message ids as 16-byte blobs and has no
/// inbox/outbox rows (see the module doc of `sqlite`); 4 adds the groups'
/// `member_version`; 5 refresh-token families; 6 orders the idempotency
/// key by client id first; 7 follow edges, blocks and posts; 8 each
/// message's search flag.
pub(crate) const SCHEMA_VERSION: i64 = 10;

/// How long a connection waits on a lock before giving up. Readers in WAL mode
/// never wait on the writer; this covers checkpoints and a second process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Enough room for every statement this backend prepares, so `prepare_cached`
/// never evicts on the hot path.
const STATEMENT_CACHE: usize = 96;

/// The versioned migrations: each step brings `PRAGMA user_version` to its
/// number and is applied, in order and in its own transaction, to a file
/// below it. A file at a layout older than the first step upgrades with its
/// `LEGACY` scripts around that step, in the same transaction.
const STEPS: &[(i64, &str)] = &[
    (3, include_str!("../../migrations/sqlite/0003_baseline.sql")),
    (
        4,
        include_str!("../../migrations/sqlite/0004_member_version.sql"),
    ),
    (
        5,
        include_str!("../../migrations/sqlite/0005_refresh_family.sql"),
    ),
    (
        6,
        include_str!("../../migrations/sqlite/0006_cmid_first.sql"),
    ),
    (7, include_str!("../../migrations/sqlite/0007_feeds.sql")),
    (8, include_str!("../../migrations/sqlite/0008_search.sql")),
    (
        9,
        include_str!("../../migrations/sqlite/0009_revisions.sql"),
    ),
    (
        10,
        include_str!("../../migrations/sqlite/0010_mentions.sql"),
    ),
];

/// Older layouts that can still be upgraded to the first step's: (their
/// version, what runs before that step, what runs after it).
const LEGACY: &[(i64, &str, &str)] = &[(
    2,
    include_str!("../../migrations/sqlite/0003_from_v2_before.sql"),
    include_str!("../../migrations/sqlite/0003_from_v2_after.sql"),
)];

/// The columns `message_from_row` expects, in order, from `im_msg_content c`.
pub(crate) const MESSAGE_COLUMNS: &str = "c.server_id, c.conv, c.seq, c.from_uid, c.to_uid, c.cmid, c.body, c.persistence, c.sent_at, c.searchable, c.meta, c.revised";

fn common_pragmas(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Opens the single read-write connection, switches the file to WAL with
/// `synchronous=FULL` (an acknowledged send survives power loss; with group
/// commit the extra fsync is shared by the whole batch) and creates the schema.
pub(crate) fn open_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    common_pragmas(&conn)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Config(format!(
            "{}: cannot enable WAL (got {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    // The checkpoint after a commit reads back pages a batch touched: keep
    // the hot index pages in memory (KiB, negative means size, not pages).
    // The cache is this connection's own only because the bundled SQLite is
    // built without SQLITE_ENABLE_MEMORY_MANAGEMENT (`.cargo/config.toml`);
    // with it, every connection of the process shares one LRU and the
    // writer loses these pages (docs/performance.md).
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    // A savepoint inside the batch transaction (one per job when a batch
    // holds several) keeps a statement journal: in memory, not a temporary
    // file written page by page.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    migrate(&conn)?;
    Ok(conn)
}

/// Page cache of the writer connection.
const WRITER_CACHE_KIB: i64 = 16 * 1024;

/// The single connection of an in-memory store: there is no file to share, so
/// this connection serves reads too.
pub(crate) fn open_memory() -> Result<Connection> {
    let conn = Connection::open_in_memory()?;
    common_pragmas(&conn)?;
    migrate(&conn)?;
    Ok(conn)
}

/// A read-only connection for the pool; in WAL mode it reads the last
/// committed snapshot without blocking the writer.
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    common_pragmas(&conn)?;
    Ok(conn)
}

/// Applies the migrations the file has not had; refuses a newer layout.
fn migrate(conn: &Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Config(format!(
            "database schema version {version} is newer than this build ({SCHEMA_VERSION})"
        )));
    }
    let mut legacy = LEGACY.iter().find(|(v, _, _)| *v == version);
    for &(to, sql) in STEPS.iter().filter(|(to, _)| *to > version) {
        let (before, after) = legacy.take().map_or(("", ""), |l| (l.1, l.2));
        conn.execute_batch(&format!(
            "BEGIN;\n{before}\n{sql}\n{after}\nPRAGMA user_version = {to};\nCOMMIT;"
        ))?;
    }
    Ok(())
}

/// Maps a SQLite error to the crate error: a constraint violation is a
/// logical conflict the caller can act on, anything else is unavailability.
pub(crate) fn sql_err(e: rusqlite::Error, what: impl FnOnce() -> String) -> StoreError {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) {
        StoreError::Conflict(what())
    } else {
        StoreError::from(e)
    }
}

/// Wraps a decoding failure so it travels through rusqlite's row mapping and
/// comes out as `StoreError::Corrupt` (see `corrupt_or`).
pub(crate) fn bad(col: usize, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, msg.into())
}

/// Converts rusqlite's conversion failures (stored data that does not decode)
/// into `Corrupt`, everything else as usual.
pub(crate) fn corrupt_or(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::FromSqlConversionFailure(col, _, msg) => {
            StoreError::Corrupt(format!("column {col}: {msg}"))
        }
        other => StoreError::from(other),
    }
}

pub(crate) fn conv_at(row: &Row<'_>, col: usize) -> rusqlite::Result<ConvId> {
    let s: String = row.get(col)?;
    ConvId::parse(&s).map_err(|e| bad(col, e.to_string()))
}

pub(crate) fn device_at(row: &Row<'_>, col: usize) -> rusqlite::Result<DeviceId> {
    let s: String = row.get(col)?;
    DeviceId::new(s).map_err(|e| bad(col, e.to_string()))
}

/// Decodes the `MESSAGE_COLUMNS` of one row.
pub(crate) fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    let cmid: Vec<u8> = row.get(5)?;
    let persistence: String = row.get(7)?;
    Ok(Message {
        trace: None,
        server_id: ServerMsgId(row.get(0)?),
        conv: conv_at(row, 1)?,
        seq: row.get(2)?,
        from: UserId(row.get(3)?),
        to: UserId(row.get(4)?),
        cmid: ClientMsgId::from_bytes(&cmid).map_err(|e| bad(5, e.to_string()))?,
        body: row.get(6)?,
        persistence: persistence.parse::<Persistence>().map_err(|e| bad(7, e))?,
        sent_at: row.get(8)?,
        search: row.get::<_, i64>(9)? != 0,
        meta: MessageMeta::from_columns(row.get::<_, Option<String>>(10)?.as_deref(), row.get(11)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The durability settings the design relies on are really in effect.
    #[test]
    fn writer_runs_wal_with_full_sync() {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = open_writer(&dir.path().join("s.sqlite3")).expect("open");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("sync");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!((mode.as_str(), sync, version), ("wal", 2, SCHEMA_VERSION));
    }

    /// A version 2 file (text client ids, inbox/outbox rows) is upgraded in
    /// place: its messages, their ids and their order survive.
    #[test]
    fn version_2_is_upgraded() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.sqlite3");
        let cmid = ClientMsgId::new_v7();
        {
            let c = Connection::open(&path).expect("open");
            c.execute_batch(
                "CREATE TABLE im_msg_content (server_id INTEGER PRIMARY KEY, conv TEXT NOT NULL,
                    seq INTEGER NOT NULL, from_uid INTEGER NOT NULL, to_uid INTEGER NOT NULL,
                    cmid TEXT NOT NULL, body TEXT NOT NULL, persistence TEXT NOT NULL,
                    sent_at INTEGER NOT NULL, expire_at INTEGER, UNIQUE (conv, seq), UNIQUE (from_uid, cmid));
                 CREATE TABLE im_user_msg_box (owner_uid INTEGER NOT NULL, other_uid INTEGER NOT NULL,
                    conv TEXT NOT NULL, seq INTEGER NOT NULL, server_id INTEGER NOT NULL,
                    box_type INTEGER NOT NULL, PRIMARY KEY (owner_uid, conv, seq)) WITHOUT ROWID;
                 PRAGMA user_version = 2;",
            )
            .expect("v2 schema");
            c.execute(
                "INSERT INTO im_msg_content VALUES (7, 'd:1:2', 1, 1, 2, ?1, 'hi', 'forever', 5, NULL)",
                [cmid.to_string()],
            )
            .expect("v2 row");
        }
        let conn = open_writer(&path).expect("upgrade");
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM im_msg_content c");
        let m = conn.query_row(&sql, [], message_from_row).expect("row");
        assert_eq!((m.cmid, m.body.as_str(), m.seq), (cmid, "hi", 1));
        let boxes: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'im_user_msg_box'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(boxes, 0);
    }

    /// A version 5 file keeps its messages through the rebuild of version 6,
    /// whose idempotency key is ordered by client id first, and still
    /// refuses a repeated (from, cmid).
    #[test]
    fn version_5_is_upgraded_to_cmid_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.sqlite3");
        let cmid = ClientMsgId::new_v7();
        {
            let c = Connection::open(&path).expect("open");
            for &(to, sql) in STEPS.iter().filter(|(to, _)| *to <= 5) {
                c.execute_batch(&format!("{sql}\nPRAGMA user_version = {to};"))
                    .expect("step");
            }
            c.execute(
                "INSERT INTO im_msg_content VALUES (7, 'd:1:2', 1, 1, 2, ?1, 'hi', 'forever', 5, NULL)",
                [&cmid.as_bytes()[..]],
            )
            .expect("v5 row");
        }
        let conn = open_writer(&path).expect("upgrade");
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM im_msg_content c");
        let m = conn.query_row(&sql, [], message_from_row).expect("row");
        assert_eq!((m.server_id.0, m.cmid, m.body.as_str()), (7, cmid, "hi"));
        let first: Vec<String> = conn
            .prepare(
                "SELECT ii.name FROM pragma_index_list('im_msg_content') il,
                        pragma_index_info(il.name) ii
                 WHERE il.[unique] = 1 AND ii.seqno = 0 ORDER BY ii.name",
            )
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<std::result::Result<_, _>>()
            .expect("columns");
        assert_eq!(first, ["cmid", "conv"]);
        let again = conn.execute(
            "INSERT INTO im_msg_content VALUES (8, 'd:1:2', 2, 1, 2, ?1, 'hi', 'forever', 5, NULL)",
            [&cmid.as_bytes()[..]],
        );
        assert!(again.is_err(), "a repeated (from, cmid) is refused");
    }

    /// Each connection keeps its own page cache: the bundled SQLite is built
    /// without the option that pools every connection's pages in one LRU
    /// (`.cargo/config.toml`; docs/performance.md, "Each connection its own
    /// page cache"). A build that lost that setting fails here.
    #[test]
    fn page_caches_are_per_connection() {
        let conn = Connection::open_in_memory().expect("open");
        let mut stmt = conn.prepare("PRAGMA compile_options").expect("prepare");
        let options: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<std::result::Result<_, _>>()
            .expect("options");
        assert!(options.iter().any(|o| o.starts_with("THREADSAFE")));
        assert!(!options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"));
    }

    /// The layout marker is the last migration's number.
    #[test]
    fn schema_version_is_the_last_step() {
        assert_eq!(STEPS.last().map(|s| s.0), Some(SCHEMA_VERSION));
    }

    /// A database from a newer build is refused instead of half-understood.
    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.sqlite3");
        let conn = open_writer(&path).expect("open");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        drop(conn);
        assert!(matches!(open_writer(&path), Err(StoreError::Config(_))));
    }
}
