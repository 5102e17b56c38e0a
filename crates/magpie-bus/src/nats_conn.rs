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
        .connect(servers(url)?)
        .await
        .map_err(|e| BusError::Unavailable(format!("connecting to nats: {e}")))?;
    Ok((client, losses))
}

/// The servers of `nats://h:p[,h:p…]` (a scheme on any of them is kept;
/// one missing takes the first's). The client dials one and fails over to
/// the others, and learns the rest of a cluster from the one it reaches.
pub(crate) fn servers(url: &str) -> Result<Vec<async_nats::ServerAddr>> {
    let scheme = url.split_once("://").map_or("nats", |(s, _)| s);
    url.split(',')
        .map(|s| s.trim().trim_end_matches('/'))
        .filter(|s| !s.is_empty())
        .map(|s| {
            let full = if s.contains("://") {
                s.to_string()
            } else {
                format!("{scheme}://{s}")
            };
            full.parse::<async_nats::ServerAddr>()
                .map_err(|_| BusError::Config(format!("invalid nats server address {s:?}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_may_list_several_servers() {
        let s = super::servers("nats://a:1,b:2, nats://c:3/").unwrap();
        let hosts: Vec<String> = s
            .iter()
            .map(|a| format!("{}:{}", a.host(), a.port()))
            .collect();
        assert_eq!(hosts, ["a:1", "b:2", "c:3"]);
        assert!(super::servers("nats://a:x").is_err());
    }
}
