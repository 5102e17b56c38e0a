//! Where access events go: every node hands its events to one task that,
//! every 100 ms or 512 events, publishes them as one relay frame on
//! [`ACCESS_SUBJECT`] (for the detector, wherever it runs) and appends
//! them to the access log when one is configured.
//!
//! Recording never waits: the queue is bounded and an event that finds it
//! full is counted (`magpie_access_events_dropped_total`) and dropped — an
//! access event is evidence, never part of a client's request. The relay
//! is best effort too; the detector tolerates gaps (its buckets leak
//! anyway).

use magpie_bus::Relay;
use magpie_core::AccessEvent;
use magpie_core::access::LogFormat;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const ACCESS_SUBJECT: &str = "guard.access";
const QUEUE: usize = 16_384;
const BATCH: usize = 512;
const TICK: Duration = Duration::from_millis(100);

/// An event and whether it goes to this node's access log (a gateway's
/// followed log lines do not: they are that gateway's).
struct Item {
    event: AccessEvent,
    log: bool,
}

#[derive(Clone)]
pub struct AccessSink {
    tx: mpsc::Sender<Item>,
}

impl AccessSink {
    /// The sink and the task that drains it (spawned by the caller).
    pub fn new(
        relay: Relay,
        log: Option<(String, LogFormat)>,
        stop: CancellationToken,
    ) -> (AccessSink, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (AccessSink { tx }, drain(rx, relay, log, stop))
    }

    /// An event of this node's traffic.
    pub fn record(&self, event: AccessEvent) {
        self.push(Item { event, log: true });
    }

    /// An event read from a gateway's log.
    pub fn relay_only(&self, event: AccessEvent) {
        self.push(Item { event, log: false });
    }

    fn push(&self, item: Item) {
        if self.tx.try_send(item).is_err() {
            crate::metrics::meters().access_dropped.increment(1);
        }
    }
}

async fn drain(
    mut rx: mpsc::Receiver<Item>,
    relay: Relay,
    log: Option<(String, LogFormat)>,
    stop: CancellationToken,
) {
    let mut file = match &log {
        Some((path, _)) => open_log(path).await,
        None => None,
    };
    let mut batch: Vec<Item> = Vec::with_capacity(BATCH);
    loop {
        let got = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => n,
            _ = stop.cancelled() => 0,
        };
        if got == 0 {
            return;
        }
        // Let a burst gather into one frame.
        if batch.len() < BATCH {
            let _ = tokio::time::timeout(TICK, async {
                while batch.len() < BATCH {
                    let room = BATCH - batch.len();
                    if rx.recv_many(&mut batch, room).await == 0 {
                        break;
                    }
                }
            })
            .await;
        }
        let events: Vec<&AccessEvent> = batch.iter().map(|i| &i.event).collect();
        match serde_json::to_vec(&events) {
            Ok(payload) => {
                if let Err(e) = relay.publish(ACCESS_SUBJECT, payload.into()) {
                    tracing::debug!(error = %e, "access events not relayed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "access events not encoded"),
        }
        if let (Some(f), Some((_, format))) = (file.as_mut(), &log) {
            let mut text = String::new();
            for i in batch.iter().filter(|i| i.log) {
                text.push_str(&format.format(&i.event));
                text.push('\n');
            }
            if let Err(e) = f.write_all(text.as_bytes()).await {
                tracing::warn!(error = %e, "access log not written");
            }
        }
        batch.clear();
    }
}

async fn open_log(path: &str) -> Option<tokio::fs::File> {
    match tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
    {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!(%path, error = %e, "cannot open the access log");
            None
        }
    }
}
