//! The on-disk layout and its upkeep: schema creation, the per-group floor
//! (compaction of acks) and retention of the log. Only the writer thread
//! calls into this with the write connection.
//!
//! Tables:
//! - `log`: the events. `offset` is AUTOINCREMENT so an offset is never
//!   reused, even after retention emptied the table (a reused offset would
//!   sit below some group's floor and count as acknowledged).
//! - `groups`: which topics each group consumes.
//! - `acks`: acknowledged offsets above the group's floor.
//! - `floors`: every offset <= floor is acknowledged by the group.

use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS log (
    "offset" INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    msg_id TEXT NOT NULL UNIQUE,
    payload BLOB NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (name TEXT NOT NULL, topic TEXT NOT NULL, PRIMARY KEY (name, topic));
CREATE TABLE IF NOT EXISTS acks (grp TEXT NOT NULL, "offset" INTEGER NOT NULL, PRIMARY KEY (grp, "offset")) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS floors (grp TEXT PRIMARY KEY, floor INTEGER NOT NULL);
"#;

/// Opens the write connection: creates parent directories and the file,
/// WAL (readers never block the writer) and `synchronous=FULL` (a commit is
/// fsynced before it returns, which is what survives kill -9 and power loss).
pub(super) fn open_write(path: &Path) -> crate::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            crate::BusError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    let conn = Connection::open(path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(crate::BusError::Unavailable(format!(
            "{} cannot use WAL (got {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// The lowest offset the next event can have (offsets are never reused).
pub(super) fn next_offset(conn: &Connection) -> rusqlite::Result<u64> {
    let max: i64 = conn.query_row(
        r#"SELECT MAX(COALESCE((SELECT MAX("offset") FROM log), 0),
                      COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'log'), 0))"#,
        [],
        |r| r.get(0),
    )?;
    Ok(max as u64 + 1)
}

/// The group's floor; 0 (nothing acknowledged) for an unknown group.
pub(super) fn floor(conn: &Connection, group: &str) -> rusqlite::Result<u64> {
    let f = conn
        .query_row("SELECT floor FROM floors WHERE grp = ?1", [group], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?;
    Ok(f.unwrap_or(0) as u64)
}

/// Advances the group's floor over the contiguous run of offsets it no
/// longer needs (acked, or of a topic it does not consume) and drops the
/// ack rows the floor now covers. Returns the new floor.
pub(super) fn compact_group(conn: &Connection, group: &str) -> rusqlite::Result<u64> {
    let old = floor(conn, group)?;
    let topics: HashSet<String> = conn
        .prepare_cached("SELECT topic FROM groups WHERE name = ?1")?
        .query_map([group], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    // Walks the log upwards from the floor and stops at the first event the
    // group still owes; cost is what the floor advances by, plus one row.
    let mut scan = conn.prepare_cached(
        r#"SELECT l."offset", l.topic, a."offset" IS NOT NULL
           FROM log l LEFT JOIN acks a ON a.grp = ?1 AND a."offset" = l."offset"
           WHERE l."offset" > ?2 ORDER BY l."offset""#,
    )?;
    let mut rows = scan.query(params![group, old as i64])?;
    let mut new = old;
    while let Some(row) = rows.next()? {
        let (off, topic, acked): (i64, String, bool) = (row.get(0)?, row.get(1)?, row.get(2)?);
        if !acked && topics.contains(&topic) {
            break;
        }
        new = off as u64;
    }
    if new > old {
        conn.execute(
            "INSERT OR REPLACE INTO floors (grp, floor) VALUES (?1, ?2)",
            params![group, new as i64],
        )?;
        conn.execute(
            r#"DELETE FROM acks WHERE grp = ?1 AND "offset" <= ?2"#,
            params![group, new as i64],
        )?;
    }
    Ok(new)
}

/// Deletes events every group has acknowledged (at or below the lowest
/// floor) that are older than `retention`. With no group at all, age alone
/// decides. Returns how many events were deleted, and the offset up to
/// which the log no longer holds anything.
pub(super) fn retire(
    conn: &Connection,
    retention: Duration,
    now_ms: i64,
) -> rusqlite::Result<(usize, u64)> {
    let min_floor: i64 = conn.query_row(
        "SELECT COALESCE(MIN(COALESCE(f.floor, 0)), ?1)
         FROM (SELECT DISTINCT name FROM groups) g LEFT JOIN floors f ON f.grp = g.name",
        [i64::MAX],
        |r| r.get(0),
    )?;
    let cutoff = now_ms.saturating_sub(retention.as_millis() as i64);
    // The first event still young enough bounds the deletion; walking in
    // offset order stops there, so the cost is what gets deleted.
    let young: Option<i64> = conn
        .query_row(
            r#"SELECT "offset" FROM log WHERE at > ?1 ORDER BY "offset" LIMIT 1"#,
            [cutoff],
            |r| r.get(0),
        )
        .optional()?;
    let limit = young.map_or(min_floor, |y| min_floor.min(y - 1));
    let last: Option<i64> = conn.query_row(
        r#"SELECT MAX("offset") FROM log WHERE "offset" <= ?1"#,
        [limit],
        |r| r.get(0),
    )?;
    let deleted = conn.execute(r#"DELETE FROM log WHERE "offset" <= ?1"#, [limit])?;
    Ok((deleted, last.unwrap_or(0).max(0) as u64))
}

/// Periodic upkeep in one transaction: compact every group, then retire.
/// Returns what `retire` does.
pub(super) fn upkeep(
    conn: &mut Connection,
    retention: Duration,
    now_ms: i64,
) -> rusqlite::Result<(usize, u64)> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let groups: Vec<String> = tx
        .prepare("SELECT DISTINCT name FROM groups")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for g in &groups {
        compact_group(&tx, g)?;
    }
    let deleted = retire(&tx, retention, now_ms)?;
    tx.commit()?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open_write(&dir.path().join("sub/bus.db")).expect("open");
        (dir, conn)
    }

    fn put(conn: &Connection, topic: &str, id: &str, at: i64) -> i64 {
        conn.execute(
            "INSERT INTO log (topic, msg_id, payload, at) VALUES (?1, ?2, x'00', ?3)",
            params![topic, id, at],
        )
        .expect("insert");
        conn.last_insert_rowid()
    }

    fn ack(conn: &Connection, group: &str, off: i64) {
        conn.execute(
            r#"INSERT INTO acks (grp, "offset") VALUES (?1, ?2)"#,
            params![group, off],
        )
        .expect("ack");
    }

    fn acks_left(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM acks", [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn floor_skips_other_topics_and_stops_at_first_unacked() {
        let (_d, conn) = db();
        conn.execute("INSERT INTO groups VALUES ('g', 'a')", [])
            .expect("group");
        let a1 = put(&conn, "a", "1", 0);
        put(&conn, "b", "2", 0);
        let a3 = put(&conn, "a", "3", 0);
        let a4 = put(&conn, "a", "4", 0);
        let a5 = put(&conn, "a", "5", 0);
        ack(&conn, "g", a1);
        ack(&conn, "g", a3);
        ack(&conn, "g", a5);
        assert_eq!(compact_group(&conn, "g").expect("compact"), a3 as u64);
        assert_eq!(acks_left(&conn), 1, "only the ack above the floor remains");
        ack(&conn, "g", a4);
        assert_eq!(compact_group(&conn, "g").expect("compact"), a5 as u64);
        assert_eq!(acks_left(&conn), 0);
    }

    #[test]
    fn retention_respects_the_lowest_floor_and_age() {
        let (_d, conn) = db();
        conn.execute("INSERT INTO groups VALUES ('g', 'a'), ('h', 'a')", [])
            .expect("groups");
        let offs: Vec<i64> = (0..6)
            .map(|i| put(&conn, "a", &i.to_string(), i * 1000))
            .collect();
        conn.execute(
            "INSERT INTO floors VALUES ('g', ?1), ('h', ?2)",
            params![offs[4], offs[2]],
        )
        .expect("floors");
        // Lowest floor is offs[2]; age allows everything up to at=3000.
        assert_eq!(
            retire(&conn, Duration::from_secs(1), 4000)
                .expect("retire")
                .0,
            3
        );
        // Age now blocks: events at >= 3000 are younger than the cutoff.
        conn.execute("UPDATE floors SET floor = ?1", [offs[5]])
            .expect("floors");
        assert_eq!(
            retire(&conn, Duration::from_secs(1), 3500)
                .expect("retire")
                .0,
            0
        );
        assert_eq!(retire(&conn, Duration::ZERO, 10_000).expect("retire").0, 3);
        // AUTOINCREMENT: an emptied log never hands out an old offset again.
        assert!(put(&conn, "a", "new", 0) > offs[5]);
    }
}
