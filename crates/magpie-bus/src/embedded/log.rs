//! The writer thread: the only owner of the write connection. Publishes,
//! acks and joins arrive over a channel; everything queued is applied in one
//! transaction (group commit, one fsync for many callers) and only then are
//! the callers answered, so an `Ok` always means "on disk".

use super::EmbeddedOptions;
use super::maintenance;
use crate::{BusError, Outgoing, Result};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeSet;
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
    Ack(String, Vec<u64>, Reply<()>),
    Join(String, Vec<String>, Reply<()>),
}

/// A command's answer, held back until the transaction has committed.
enum Pending {
    Offsets(Reply<Vec<u64>>, Result<Vec<u64>>),
    Unit(Reply<()>, Result<()>),
}

impl Pending {
    fn is_ok(&self) -> bool {
        matches!(self, Pending::Offsets(_, Ok(_)) | Pending::Unit(_, Ok(_)))
    }

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
    pub(super) fn start(conn: Connection, opts: EmbeddedOptions) -> Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("magpie-bus-writer".into())
            .spawn(move || run(conn, rx, opts))
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

    pub(super) async fn ack(&self, group: String, offsets: Vec<u64>) -> Result<()> {
        self.call(|r| Command::Ack(group, offsets, r)).await
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

fn run(mut conn: Connection, rx: mpsc::Receiver<Command>, opts: EmbeddedOptions) {
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
                commit_batch(&mut conn, batch);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // Checked after every batch too, so a busy bus still gets upkeep.
        if last_upkeep.elapsed() >= opts.maintenance_every {
            if let Err(e) = maintenance::upkeep(&mut conn, opts.retention, now_ms()) {
                tracing::warn!(error = %e, "bus compaction/retention failed; will retry");
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

/// Applies a batch in one transaction. Each command runs in its own
/// savepoint so one failing command does not sink the others; a failed
/// commit fails them all (nothing of the batch is durable then).
fn commit_batch(conn: &mut Connection, batch: Vec<Command>) {
    let mut pending = Vec::with_capacity(batch.len());
    let outcome = apply_batch(conn, batch, &mut pending).map_err(|e| e.to_string());
    for p in pending {
        p.send(&outcome);
    }
}

fn apply_batch(
    conn: &mut Connection,
    batch: Vec<Command>,
    pending: &mut Vec<Pending>,
) -> rusqlite::Result<()> {
    let mut cmds = batch.into_iter();
    let res = apply_all(conn, &mut cmds, pending);
    // Whatever an error left unprocessed still gets an answer (the error).
    pending.extend(cmds.map(unanswered));
    res
}

fn apply_all(
    conn: &mut Connection,
    cmds: &mut std::vec::IntoIter<Command>,
    pending: &mut Vec<Pending>,
) -> rusqlite::Result<()> {
    let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let at = now_ms();
    let mut acked_groups = BTreeSet::new();
    for cmd in cmds.by_ref() {
        let sp = match tx.savepoint() {
            Ok(sp) => sp,
            Err(e) => {
                pending.push(unanswered(cmd));
                return Err(e);
            }
        };
        let p = match cmd {
            Command::Publish(events, r) => {
                Pending::Offsets(r, publish(&sp, &events, at).map_err(BusError::from))
            }
            Command::Ack(group, offsets, r) => {
                let res = ack(&sp, &group, &offsets).map_err(BusError::from);
                if res.is_ok() {
                    acked_groups.insert(group);
                }
                Pending::Unit(r, res)
            }
            Command::Join(group, topics, r) => {
                Pending::Unit(r, join(&sp, &group, &topics).map_err(BusError::from))
            }
        };
        let ok = p.is_ok();
        // Queued before the savepoint ends so an error below still answers it.
        pending.push(p);
        if ok { sp.commit()? } else { sp.finish()? }
    }
    for group in &acked_groups {
        // Compaction is an optimisation: if it fails the acks still stand.
        let sp = tx.savepoint()?;
        match maintenance::compact_group(&sp, group) {
            Ok(_) => sp.commit()?,
            Err(e) => tracing::warn!(group, error = %e, "bus compaction failed"),
        }
    }
    tx.commit()
}

/// A command whose batch could not even start: answered with the batch error.
fn unanswered(cmd: Command) -> Pending {
    match cmd {
        Command::Publish(_, r) => Pending::Offsets(r, Ok(Vec::new())),
        Command::Ack(_, _, r) | Command::Join(_, _, r) => Pending::Unit(r, Ok(())),
    }
}

/// Appends events, or for a known `msg_id` returns the offset it already has
/// (the lookup sees this transaction's own inserts, so duplicates inside one
/// batch collapse too).
fn publish(conn: &Connection, events: &[Outgoing], at: i64) -> rusqlite::Result<Vec<u64>> {
    let mut find = conn.prepare_cached(r#"SELECT "offset" FROM log WHERE msg_id = ?1"#)?;
    let mut insert = conn.prepare_cached(
        r#"INSERT INTO log (topic, msg_id, payload, at) VALUES (?1, ?2, ?3, ?4)"#,
    )?;
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        if let Some(off) = find
            .query_row([&e.msg_id], |r| r.get::<_, i64>(0))
            .optional()?
        {
            out.push(off as u64);
            continue;
        }
        insert.execute(params![e.topic, e.msg_id, &e.payload[..], at])?;
        out.push(conn.last_insert_rowid() as u64);
    }
    Ok(out)
}

/// Records acks above the group's floor (those at or below it are implied).
fn ack(conn: &Connection, group: &str, offsets: &[u64]) -> rusqlite::Result<()> {
    let floor = maintenance::floor(conn, group)?;
    let mut insert =
        conn.prepare_cached(r#"INSERT OR IGNORE INTO acks (grp, "offset") VALUES (?1, ?2)"#)?;
    for &off in offsets {
        if off > floor {
            insert.execute(params![group, off as i64])?;
        }
    }
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
