//! The single writer thread and its group commit.
//!
//! SQLite allows one writer at a time, and the cost of a durable write is the
//! fsync at COMMIT, not the statements. So one OS thread owns the write
//! connection; callers send it jobs over a channel, and it drains whatever is
//! queued (up to `MAX_BATCH`) into ONE transaction, each job inside its own
//! SAVEPOINT so a job that fails (e.g. a username conflict) rolls back alone
//! while the rest commit. Replies are sent only after COMMIT returns, so an
//! `Ok` always means "durable".

use crate::error::{Result, StoreError};
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Upper bound on jobs per transaction: keeps one commit's latency bounded
/// when the queue is long.
const MAX_BATCH: usize = 256;

/// One queued write, type-erased so the channel can carry any result type.
trait Job: Send {
    /// Runs inside the open transaction; returns whether its writes are kept.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Delivers the outcome once the batch is committed (`Ok`) or lost (`Err`).
    fn finish(self: Box<Self>, commit: std::result::Result<(), &str>);
}

struct FnJob<R, F> {
    f: Option<F>,
    out: Option<Result<R>>,
    reply: oneshot::Sender<Result<R>>,
}

impl<R, F> Job for FnJob<R, F>
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> Result<R> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else { return false };
        // A panicking job must not take the writer (and every later write) down.
        let out = catch_unwind(AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| Err(StoreError::Unavailable("write job panicked".into())));
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn finish(self: Box<Self>, commit: std::result::Result<(), &str>) {
        let out = match (self.out, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (Some(Ok(_)), Err(msg)) | (None, Err(msg)) => {
                Err(StoreError::Unavailable(msg.to_string()))
            }
            (None, Ok(())) => Err(StoreError::Unavailable("write job did not run".into())),
        };
        // The caller may have given up waiting; nothing to do then.
        let _ = self.reply.send(out);
    }
}

/// Handle to the writer thread. Dropping the last handle closes the channel;
/// the thread finishes the queued jobs and closes the connection.
pub(crate) struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Moves `conn` onto a new writer thread.
    pub(crate) fn spawn(conn: Connection) -> Result<Writer> {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("magpie-sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start sqlite writer: {e}")))?;
        Ok(Writer { tx })
    }

    /// Runs `f` in the next group-committed transaction; resolves after COMMIT.
    pub(crate) async fn exec<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(FnJob {
            f: Some(f),
            out: None,
            reply,
        });
        self.tx
            .send(job)
            .map_err(|_| StoreError::Unavailable("sqlite writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("sqlite writer dropped the request".into()))?
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcome = run_batch(&conn, &mut batch);
        if let Err(e) = &outcome {
            tracing::warn!(error = %e, jobs = batch.len(), "sqlite group commit failed");
        }
        let commit = outcome.as_ref().map(|_| ()).map_err(|e| e.as_str());
        for job in batch {
            job.finish(commit);
        }
    }
}

/// Runs every job of the batch in one IMMEDIATE transaction, one savepoint
/// each (a lone job needs none: its failure is the transaction's). An error
/// here means nothing of the batch was committed.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> std::result::Result<(), String> {
    // IMMEDIATE takes the write lock up front so COMMIT cannot fail with BUSY
    // after the jobs ran (another process holding the file is the only case).
    let exec = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
    exec("BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    let result = (|| -> rusqlite::Result<()> {
        if let [job] = batch {
            if !job.run(conn) {
                exec("ROLLBACK")?;
                return Ok(());
            }
        } else {
            for job in batch.iter_mut() {
                exec("SAVEPOINT job")?;
                if job.run(conn) {
                    exec("RELEASE job")?;
                } else {
                    exec("ROLLBACK TO job")?;
                    exec("RELEASE job")?;
                }
            }
        }
        exec("COMMIT").map(|_| ())
    })();
    if let Err(e) = result {
        // The transaction may already be gone (SQLite rolls back on some I/O
        // errors); a failing ROLLBACK then says nothing new.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        return Err(e.to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn counter_writer() -> Writer {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .expect("ddl");
        Writer::spawn(conn).expect("spawn")
    }

    fn insert(k: &'static str) -> impl FnOnce(&Connection) -> Result<()> + Send + 'static {
        move |c| {
            c.execute("INSERT INTO t (k) VALUES (?1)", [k])
                .map_err(|e| crate::sqlite::schema::sql_err(e, || k.to_string()))?;
            Ok(())
        }
    }

    /// A failing job in a batch gets its own error; its neighbours commit.
    #[tokio::test]
    async fn failed_job_rolls_back_alone() {
        let w = counter_writer();
        w.exec(insert("a")).await.expect("seed");
        // Hold the writer busy so the next three jobs queue into one batch.
        let hold = w.exec(|_| {
            std::thread::sleep(Duration::from_millis(50));
            Ok(())
        });
        let (h, b, dup, c) = tokio::join!(
            hold,
            w.exec(insert("b")),
            w.exec(insert("a")),
            w.exec(insert("c"))
        );
        h.expect("hold");
        b.expect("b commits");
        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
        c.expect("c commits");
        let n: i64 = w
            .exec(|c| Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?))
            .await
            .expect("count");
        assert_eq!(n, 3);
    }

    /// A panicking job reports an error and the writer keeps serving.
    #[tokio::test]
    async fn panicking_job_does_not_stop_the_writer() {
        let w = counter_writer();
        let r: Result<()> = w.exec(|_| panic!("boom")).await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))));
        w.exec(insert("x")).await.expect("writer still alive");
    }
}
