//! The checkpointer: copies committed WAL pages back into the database file
//! from its own connection and thread, so the writer's commits never pay
//! for it (SQLite's automatic checkpoint runs inside the COMMIT that crosses
//! the threshold, on the critical path of every send in that batch).
//!
//! PASSIVE checkpoints never block the writer or readers; should the WAL
//! still grow past `FORCE_FRAMES` (long readers kept it from wrapping), a
//! TRUNCATE checkpoint waits for them once and resets it.

use super::schema::open_checkpointer;
use crate::error::Result;
use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// How often the WAL is looked at.
const EVERY: Duration = Duration::from_millis(200);
/// WAL frames (pages) over which a checkpoint is worth running.
const MIN_FRAMES: i64 = 1000;
/// WAL frames over which readers are waited for.
const FORCE_FRAMES: i64 = 100_000;

/// Stops the thread when dropped (after a last checkpoint).
pub(crate) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    pub(crate) fn start(path: &Path) -> Result<Checkpointer> {
        let conn = open_checkpointer(path)?;
        let (stop, rx) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("magpie-sqlite-ckpt".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| crate::StoreError::Unavailable(format!("checkpointer: {e}")))?;
        Ok(Checkpointer { _stop: stop })
    }
}

fn run(conn: Connection, stop: mpsc::Receiver<()>) {
    let mut frames = 0;
    loop {
        match stop.recv_timeout(EVERY) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // The store is gone: leave the file checkpointed.
            _ => {
                let _ = checkpoint(&conn, "TRUNCATE");
                return;
            }
        }
        let mode = if frames > FORCE_FRAMES {
            "TRUNCATE"
        } else {
            "PASSIVE"
        };
        match checkpoint(&conn, mode) {
            // (busy, frames in the WAL, frames checkpointed)
            Ok((_, log, done)) => frames = log - done,
            Err(e) => tracing::warn!(error = %e, "sqlite checkpoint failed; will retry"),
        }
        if frames < MIN_FRAMES {
            frames = 0;
        }
    }
}

fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}
