//! Connecting to NATS, shared by the JetStream bus and the NATS relay: a
//! client whose own connection events are counted, so a short outage that
//! no call happened to notice is still seen (ARCHITECTURE.md, invariant 6:
//! a missed push is always followed by a sync).

use crate::{BusError, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

/// Connects to `url` with `options`. The watch is bumped on every
/// `Connected` that follows a `Disconnected` and, when `slow_consumers`,
/// whenever the client dropped messages a subscription did not take in
/// time: both mean messages may have been lost.
pub(crate) async fn connect(
    url: &str,
    options: async_nats::ConnectOptions,
    slow_consumers: bool,
) -> Result<(async_nats::Client, watch::Receiver<u64>)> {
    let (bump, losses) = watch::channel(0u64);
    let down = Arc::new(AtomicBool::new(false));
    let options = options.event_callback(move |event| {
        let (bump, down) = (bump.clone(), down.clone());
        async move {
            let lost = match event {
                async_nats::Event::Disconnected => {
                    down.store(true, Ordering::SeqCst);
                    false
                }
                async_nats::Event::Connected => down.swap(false, Ordering::SeqCst),
                async_nats::Event::SlowConsumer(_) => slow_consumers,
                _ => false,
            };
            if lost {
                bump.send_modify(|n| *n += 1);
            }
        }
    });
    // The URL may carry credentials: keep it out of the error.
    let client = options
        .connect(url)
        .await
        .map_err(|e| BusError::Unavailable(format!("connecting to nats: {e}")))?;
    Ok((client, losses))
}
