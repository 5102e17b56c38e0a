//! The writer thread: the only owner of the write connection. Publishes,
//! acks and joins arrive over a channel; everything queued is applied in one
//! transaction (group commit, one fsync for many callers) and only then are
//! the callers answered, so an `Ok` always means "on disk".

use super::EmbeddedOptions;
use super::maintenance;
use super::tail::{Row, Tail};
use crate::{BusError, Outgoing, Result};
use rusqlite::{Connection, OptionalExtension, params};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// Most commands folded into one transaction; bounds the latency a caller
/// pays for others' work.
const MAX_BATCH: usize = 512;

type Reply<T> = oneshot::Sender<Result<T>>;

enum Command {
    Publish(Vec<Outgoing>, Reply<Vec<u64>>),
    /// A group's acks, and the floor they let it move to.
    Ack(String, Vec<u64>, u64, Reply<()>),
    Join(String, Vec<String>, Reply<()>),
}

/// A command's answer, held back until the transaction has committed.
enum Pending {
    Offsets(Reply<Vec<u64>>, Result<Vec<u64>>),
    Unit(Reply<()>, Result<()>),
}

impl Pending {
    fn send(self, commit: &std::result::Result<(), String>) {
        // A caller that went away no longer wants its answer: ignore send errors.
        match self {
            Pending::Offsets(tx, r) => {
                drop(tx.send(commit.clone().map_err(BusError::Unavailable).and(r)))
            }
            Pending::Unit(tx, r) => {
                drop(tx.send(commit.clone().map_err(BusError::Unavailable).and(r)))
            }
        }
    }
}

/// Handle to the writer thread. Dropping it closes the channel and waits for
/// the thread, which first finishes what it was sent.
pub(super) struct Writer {
    tx: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(super) fn start(
        conn: Connection,
        opts: EmbeddedOptions,
        tail: Arc<Tail>,
    ) -> Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("magpie-bus-writer".into())
            .spawn(move || run(conn, rx, opts, tail))
            .map_err(|e| BusError::Unavailable(format!("cannot start the bus writer: {e}")))?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        let gone = || BusError::Unavailable("the bus writer has stopped".into());
        self.tx
            .as_ref()
            .ok_or_else(gone)?
            .send(make(reply))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    pub(super) async fn publish(&self, events: Vec<Outgoing>) -> Result<Vec<u64>> {
        self.call(|r| Command::Publish(events, r)).await
    }

    pub(super) async fn ack(&self, group: String, offsets: Vec<u64>, floor: u64) -> Result<()> {
        self.call(|r| Command::Ack(group, offsets, floor, r)).await
    }

    pub(super) async fn join(&self, group: String, topics: Vec<String>) -> Result<()> {
        self.call(|r| Command::Join(group, topics, r)).await
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("bus writer thread panicked");
        }
    }
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Command>, opts: EmbeddedOptions, tail: Arc<Tail>) {
    let mut last_upkeep = Instant::now();
    loop {
        match rx.recv_timeout(opts.maintenance_every) {
            Ok(first) => {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
                commit_batch(&mut conn, batch, &tail);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // Checked after every batch too, so a busy bus still gets upkeep.
        if last_upkeep.elapsed() >= opts.maintenance_every {
            match maintenance::upkeep(&mut conn, opts.retention, now_ms()) {
                // What the log no longer holds must not be served from memory.
                Ok((_, gone)) => tail.retire(gone),
                Err(e) => tracing::warn!(error = %e, "bus compaction/retention failed; will retry"),
            }
            last_upkeep = Instant::now();
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64
}

/// Applies a batch in one transaction; a failure fails them all (nothing of
/// the batch is durable then). What was appended goes to the tail before
/// anyone is answered.
fn commit_batch(conn: &mut Connection, batch: Vec<Command>, tail: &Tail) {
    let mut pending = Vec::with_capacity(batch.len());
    let mut appended = Vec::new();
    let outcome = apply_batch(conn, batch, &mut pending, &mut appended).map_err(|e| e.to_string());
    if outcome.is_ok() {
        tail.push(appended);
    }
    for p in pending {
        p.send(&outcome);
    }
}

fn apply_batch(
    conn: &mut Connection,
    batch: Vec<Command>,
    pending: &mut Vec<Pending>,
    appended: &mut Vec<Row>,
) -> rusqlite::Result<()> {
    let mut cmds = batch.into_iter();
    let res = apply_all(conn, &mut cmds, pending, appended);
    // Whatever an error left unprocessed still gets an answer (the error).
    pending.extend(cmds.map(unanswered));
    res
}

fn apply_all(
    conn: &mut Connection,
    cmds: &mut std::vec::IntoIter<Command>,
    pending: &mut Vec<Pending>,
    appended: &mut Vec<Row>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let at = now_ms();
    for cmd in cmds.by_ref() {
        // No command fails alone (a duplicate msg_id is an answer, not an
        // error): an error is the file's, so the whole batch fails with it.
        let p = match cmd {
            Command::Publish(events, r) => {
                Pending::Offsets(r, Ok(publish(&tx, events, at, appended)?))
            }
            Command::Ack(group, offsets, floor, r) => {
                ack(&tx, &group, &offsets, floor)?;
                Pending::Unit(r, Ok(()))
            }
            Command::Join(group, topics, r) => {
                join(&tx, &group, &topics)?;
                Pending::Unit(r, Ok(()))
            }
        };
        pending.push(p);
    }
    tx.commit()
}

/// A command whose batch could not even start: answered with the batch error.
fn unanswered(cmd: Command) -> Pending {
    match cmd {
        Command::Publish(_, r) => Pending::Offsets(r, Ok(Vec::new())),
        Command::Ack(_, _, _, r) | Command::Join(_, _, r) => Pending::Unit(r, Ok(())),
    }
}

/// Appends events, or for a known `msg_id` returns the offset it already has
/// (the lookup sees this transaction's own inserts, so duplicates inside one
/// batch collapse too). New events are added to `appended`.
fn publish(
    conn: &Connection,
    events: Vec<Outgoing>,
    at: i64,
    appended: &mut Vec<Row>,
) -> rusqlite::Result<Vec<u64>> {
    let mut insert = conn.prepare_cached(
        r#"INSERT INTO log (topic, msg_id, payload, at) VALUES (?1, ?2, ?3, ?4)
           ON CONFLICT (msg_id) DO NOTHING RETURNING "offset""#,
    )?;
    let mut find = conn.prepare_cached(r#"SELECT "offset" FROM log WHERE msg_id = ?1"#)?;
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let new: Option<i64> = insert
            .query_row(params![e.topic, e.msg_id, &e.payload[..], at], |r| r.get(0))
            .optional()?;
        match new {
            Some(off) => {
                out.push(off as u64);
                appended.push((off as u64, e.topic, e.payload));
            }
            None => out.push(find.query_row([&e.msg_id], |r| r.get::<_, i64>(0))? as u64),
        }
    }
    Ok(out)
}

/// Moves the group's floor up to `floor` (never down: two consumers of one
/// group may answer out of order) and records the acks above it; those at
/// or below it are implied and their rows dropped.
fn ack(conn: &Connection, group: &str, offsets: &[u64], floor: u64) -> rusqlite::Result<()> {
    let floor = conn
        .prepare_cached(
            "INSERT INTO floors (grp, floor) VALUES (?1, ?2)
             ON CONFLICT (grp) DO UPDATE SET floor = MAX(floor, excluded.floor) RETURNING floor",
        )?
        .query_row(params![group, floor as i64], |r| r.get::<_, i64>(0))? as u64;
    let mut insert =
        conn.prepare_cached(r#"INSERT OR IGNORE INTO acks (grp, "offset") VALUES (?1, ?2)"#)?;
    for &off in offsets {
        if off > floor {
            insert.execute(params![group, off as i64])?;
        }
    }
    conn.prepare_cached(r#"DELETE FROM acks WHERE grp = ?1 AND "offset" <= ?2"#)?
        .execute(params![group, floor as i64])?;
    Ok(())
}

/// Remembers the group and its topics; a new group's floor is 0, i.e. it
/// starts at the beginning of the retained log.
fn join(conn: &Connection, group: &str, topics: &[String]) -> rusqlite::Result<()> {
    let mut insert =
        conn.prepare_cached("INSERT OR IGNORE INTO groups (name, topic) VALUES (?1, ?2)")?;
    for t in topics {
        insert.execute(params![group, t])?;
    }
    conn.execute(
        "INSERT OR IGNORE INTO floors (grp, floor) VALUES (?1, 0)",
        [group],
    )?;
    Ok(())
}
