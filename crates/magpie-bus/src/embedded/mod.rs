//! The embedded backend (`embedded://PATH`): a durable log in one SQLite file,
//! standing in for NATS JetStream with the same promises.
//!
//! This module owns the `EmbeddedBus` handle and the state shared by it and
//! its consumers: the writer thread (`log`), the per-group delivery state
//! (`group`), the consumers (`consumer`) and the on-disk schema and upkeep
//! (`maintenance`).

mod consumer;
mod group;
mod log;
mod maintenance;
mod tail;

use crate::{BusBackend, Consumer, ConsumerOptions, Outgoing, Result};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Payload bytes of the newest events kept in memory for consumers.
const TAIL_BYTES: usize = 16 * 1024 * 1024;

/// Tuning of the embedded log; the defaults suit a server.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Events acknowledged by every group are kept at least this long, which
    /// is also the window in which `msg_id` de-duplicates (two minutes by
    /// default: longer than anything republishes an event, and short enough
    /// that the file stays small at any rate).
    pub retention: Duration,
    /// How often the writer compacts every group and retires old events.
    pub maintenance_every: Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            retention: Duration::from_secs(120),
            maintenance_every: Duration::from_secs(10),
        }
    }
}

/// A bus stored in one SQLite file. Cloning is not offered: wrap it in
/// `crate::Bus`, which is the cloneable handle.
pub struct EmbeddedBus {
    inner: Arc<Inner>,
}

/// What the bus and all its consumers share. Dropping the last holder stops
/// the writer thread (after it has committed everything it was sent).
pub(crate) struct Inner {
    path: PathBuf,
    writer: log::Writer,
    /// The newest committed events, for consumers that keep up.
    tail: Arc<tail::Tail>,
    /// Bumped after every committed publish and every nak, so waiting
    /// fetches re-check; a watch (not a Notify) so no wake-up is lost
    /// between "nothing ready" and "start waiting".
    wake: watch::Sender<u64>,
    /// Delivery state per consumer group, shared by competing consumers.
    groups: Mutex<HashMap<String, Arc<group::Group>>>,
}

impl Inner {
    fn wake_all(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Opens (creating parent directories and the file if needed) the embedded
/// bus at `path` with default options.
pub async fn open(path: &str) -> Result<EmbeddedBus> {
    EmbeddedBus::open_with(path, EmbeddedOptions::default()).await
}

impl EmbeddedBus {
    pub async fn open(path: &str) -> Result<EmbeddedBus> {
        open(path).await
    }

    pub async fn open_with(path: &str, opts: EmbeddedOptions) -> Result<EmbeddedBus> {
        let path = PathBuf::from(path);
        let p = path.clone();
        // Opening creates the file and runs the schema: blocking work.
        let (conn, next) = tokio::task::spawn_blocking(move || {
            let conn = maintenance::open_write(&p)?;
            let next = maintenance::next_offset(&conn)?;
            Ok::<_, crate::BusError>((conn, next))
        })
        .await
        .map_err(|e| crate::BusError::Unavailable(format!("opening the log panicked: {e}")))??;
        let tail = Arc::new(tail::Tail::new(next, TAIL_BYTES));
        let writer = log::Writer::start(conn, opts, tail.clone())?;
        let (wake, _) = watch::channel(0);
        Ok(EmbeddedBus {
            inner: Arc::new(Inner {
                path,
                writer,
                tail,
                wake,
                groups: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The file this bus lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

#[async_trait]
impl BusBackend for EmbeddedBus {
    async fn publish(&self, events: Vec<Outgoing>) -> Result<Vec<u64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let offsets = self.inner.writer.publish(events).await?;
        self.inner.wake_all();
        Ok(offsets)
    }

    async fn consumer(
        &self,
        group: &str,
        topics: &[&str],
        partition: u32,
        opts: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>> {
        // One log, one order: the only partition is 0.
        if partition != 0 {
            return Err(crate::BusError::Config(format!(
                "partition {partition} of the embedded log, which has one"
            )));
        }
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        // Membership is made durable first, so compaction and retention
        // account for this group before it ever sees an event.
        self.inner
            .writer
            .join(group.to_string(), topics.clone())
            .await?;
        let reader = consumer::Reader::open(self.inner.path.clone()).await?;
        let existing = self.inner.groups.lock().get(group).cloned();
        let shared = match existing {
            Some(g) => {
                g.add_topics(&topics);
                g
            }
            None => {
                let loaded = reader.load_group(group.to_string()).await?;
                let fresh = Arc::new(group::Group::new(loaded));
                // Another consumer of the same group may have loaded it
                // meanwhile; the first one in wins so both share one state.
                let g = self
                    .inner
                    .groups
                    .lock()
                    .entry(group.to_string())
                    .or_insert(fresh)
                    .clone();
                g.add_topics(&topics);
                g
            }
        };
        Ok(Box::new(consumer::EmbeddedConsumer::new(
            self.inner.clone(),
            group.to_string(),
            shared,
            reader,
            opts.ack_wait,
        )))
    }
}
