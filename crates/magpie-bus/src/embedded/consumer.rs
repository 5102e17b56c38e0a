//! A consumer of the embedded bus: turns the shared group state plus reads
//! of the log (on a read-only connection, off the async threads) into
//! `fetch`, and sends acks through the writer so they are durable.

use super::Inner;
use super::group::{Group, Loaded};
use crate::{BusError, Consumer, Delivery, Result};
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params_from_iter};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

use super::tail::Row;

/// What one read of the log found.
struct Scan {
    /// Payloads for redeliveries; `None` if the event is gone.
    due: Vec<Option<(String, Bytes)>>,
    fresh: Vec<Row>,
    next: u64,
}

/// A read-only connection, used from `spawn_blocking` only.
#[derive(Clone)]
pub(super) struct Reader(Arc<Mutex<Connection>>);

impl Reader {
    pub async fn open(path: PathBuf) -> Result<Reader> {
        let conn = blocking(move || {
            let c = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            c.busy_timeout(Duration::from_secs(5))?;
            Ok(c)
        })
        .await?;
        Ok(Reader(Arc::new(Mutex::new(conn))))
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.0.clone();
        blocking(move || f(&conn.lock())).await
    }

    /// The durable part of a group: its floor, acks above it and topics.
    pub async fn load_group(&self, group: String) -> Result<Loaded> {
        self.with(move |c| {
            // One snapshot, so floor and acks agree with each other.
            let tx = c.unchecked_transaction()?;
            let floor = tx
                .query_row("SELECT floor FROM floors WHERE grp = ?1", [&group], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?
                .unwrap_or(0) as u64;
            let acked = tx
                .prepare(r#"SELECT "offset" FROM acks WHERE grp = ?1 AND "offset" > ?2"#)?
                .query_map(rusqlite::params![group, floor as i64], |r| {
                    r.get::<_, i64>(0).map(|o| o as u64)
                })?
                .collect::<rusqlite::Result<_>>()?;
            let topics = tx
                .prepare("SELECT topic FROM groups WHERE name = ?1")?
                .query_map([&group], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Loaded {
                floor,
                acked,
                topics,
            })
        })
        .await
    }
}

/// Reads the payloads of `due` and up to `limit` new events of `topics` from
/// `cursor`, in one snapshot.
fn scan(
    c: &Connection,
    due: &[u64],
    cursor: u64,
    topics: &[String],
    limit: usize,
) -> rusqlite::Result<Scan> {
    let tx = c.unchecked_transaction()?;
    let mut one = tx.prepare_cached(r#"SELECT topic, payload FROM log WHERE "offset" = ?1"#)?;
    let due = due
        .iter()
        .map(|&o| {
            one.query_row([o as i64], |r| {
                Ok((r.get(0)?, Bytes::from(r.get::<_, Vec<u8>>(1)?)))
            })
            .optional()
        })
        .collect::<rusqlite::Result<_>>()?;
    let mut fresh: Vec<Row> = Vec::new();
    let mut next = cursor;
    if limit > 0 && !topics.is_empty() {
        let marks = (0..topics.len())
            .map(|i| format!("?{}", i + 3))
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            r#"SELECT "offset", topic, payload FROM log WHERE "offset" >= ?1 AND topic IN ({marks}) ORDER BY "offset" LIMIT ?2"#
        );
        let mut args = vec![Value::Integer(cursor as i64), Value::Integer(limit as i64)];
        args.extend(topics.iter().map(|t| Value::Text(t.clone())));
        let mut stmt = tx.prepare_cached(&sql)?;
        fresh = stmt
            .query_map(params_from_iter(args), |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get(1)?,
                    Bytes::from(r.get::<_, Vec<u8>>(2)?),
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        next = match fresh.last() {
            Some(last) if fresh.len() == limit => last.0 + 1,
            // Fewer than asked: the group has nothing more up to the end of
            // this snapshot, so skip other topics' events up to it for good.
            _ => {
                let max: i64 =
                    tx.query_row(r#"SELECT COALESCE(MAX("offset"), 0) FROM log"#, [], |r| {
                        r.get(0)
                    })?;
                cursor.max(max as u64 + 1)
            }
        };
    }
    Ok(Scan { due, fresh, next })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> rusqlite::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BusError::Unavailable(format!("bus read task failed: {e}")))?
        .map_err(BusError::from)
}

pub(super) struct EmbeddedConsumer {
    inner: Arc<Inner>,
    name: String,
    group: Arc<Group>,
    reader: Reader,
    ack_wait: Duration,
    wake: watch::Receiver<u64>,
}

impl EmbeddedConsumer {
    pub fn new(
        inner: Arc<Inner>,
        name: String,
        group: Arc<Group>,
        reader: Reader,
        ack_wait: Duration,
    ) -> Self {
        let wake = inner.wake.subscribe();
        EmbeddedConsumer {
            inner,
            name,
            group,
            reader,
            ack_wait,
            wake,
        }
    }

    /// One attempt: due redeliveries first, then new events; never waits.
    async fn try_fetch(&self, max: usize) -> Result<Vec<Delivery>> {
        let _scan = self.group.scan.lock().await;
        let (due, cursor, topics) = {
            let mut st = self.group.state.lock();
            (
                st.take_due(Instant::now(), max, self.ack_wait),
                st.cursor(),
                st.topics(),
            )
        };
        let limit = max - due.len();
        let due_offsets: Vec<u64> = due.iter().map(|d| d.0).collect();
        // From memory when the tail covers it (a consumer keeping up), else
        // from the file.
        let found = match self.inner.tail.scan(&due_offsets, cursor, &topics, limit) {
            Some(t) => Scan {
                due: t.due.into_iter().map(Some).collect(),
                fresh: t.fresh,
                next: t.next,
            },
            None => {
                self.reader
                    .with(move |c| scan(c, &due_offsets, cursor, &topics, limit))
                    .await?
            }
        };
        let mut st = self.group.state.lock();
        let mut out = Vec::with_capacity(max);
        for ((offset, attempt), row) in due.into_iter().zip(found.due) {
            match row {
                Some((topic, payload)) => out.push(Delivery {
                    offset,
                    topic,
                    payload,
                    attempt,
                }),
                None => st.forget(offset),
            }
        }
        let offsets: Vec<u64> = found.fresh.iter().map(|r| r.0).collect();
        let accepted = st.accept(&offsets, found.next, Instant::now(), self.ack_wait);
        out.extend(
            found
                .fresh
                .into_iter()
                .filter(|r| accepted.binary_search(&r.0).is_ok())
                .map(|(offset, topic, payload)| Delivery {
                    offset,
                    topic,
                    payload,
                    attempt: 1,
                }),
        );
        Ok(out)
    }
}

impl EmbeddedConsumer {
    /// Writes acks and the floor they allow (durably, before returning).
    async fn write_floor(&self, offsets: Vec<u64>, floor: u64) -> Result<()> {
        self.inner
            .writer
            .ack(self.name.clone(), offsets, floor)
            .await?;
        self.group.state.lock().persisted(floor);
        Ok(())
    }
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let give_up = Instant::now() + wait;
        loop {
            // Mark the current wake-up as seen *before* looking, so a publish
            // landing after the look still wakes the wait below.
            self.wake.borrow_and_update();
            let got = self.try_fetch(max).await?;
            if !got.is_empty() || max == 0 || Instant::now() >= give_up {
                return Ok(got);
            }
            let idle = self.group.state.lock().idle_floor();
            if let Some(floor) = idle {
                self.write_floor(Vec::new(), floor).await?;
            }
            let next_due = self.group.state.lock().next_deadline();
            let until = next_due.map_or(give_up, |d| d.min(give_up));
            tokio::select! {
                // The sender lives in `inner`, which we hold: it cannot close.
                _ = self.wake.changed() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn ack(&mut self, offsets: &[u64]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let floor = self.group.state.lock().floor_after(offsets);
        self.write_floor(offsets.to_vec(), floor).await?;
        // Only once durable: if the write failed, the events stay in flight
        // and are redelivered, which is the safe side.
        self.group.state.lock().acked(offsets);
        Ok(())
    }

    fn pending(&self) -> Option<u64> {
        let (cursor, topics) = {
            let st = self.group.state.lock();
            (st.cursor(), st.topics())
        };
        Some(self.inner.tail.pending(cursor, &topics))
    }

    async fn nak(&mut self, offset: u64) -> Result<()> {
        if self.group.state.lock().nak(offset, Instant::now()) {
            self.inner.wake_all();
        }
        Ok(())
    }
}
