//! Frames the backend refused (the connection was down) are reported even
//! when the outage outlasts `linger` and nothing is published after it: the
//! numbering stays open until a heartbeat gets out. Paused tokio time, a
//! backend that refuses sends while "down".

use async_trait::async_trait;
use bytes::Bytes;
use magpie_bus::relay::{MemRelay, RawSubscription, RelayBackend};
use magpie_bus::testsuite::relay::{HEARTBEAT, assert_quiet, fast, messages, next, numbered};
use magpie_bus::{BusError, Relay, RelayEvent, RelayOptions, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The in-process relay, refusing every send while `down` is set.
struct Flaky {
    mem: MemRelay,
    down: Arc<AtomicBool>,
}

#[async_trait]
impl RelayBackend for Flaky {
    fn send(&self, subject: &str, frame: Bytes) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BusError::Unavailable("link down".into()));
        }
        self.mem.send(subject, frame)
    }

    async fn subscribe(&self, subject: &str) -> Result<Box<dyn RawSubscription>> {
        self.mem.subscribe(subject).await
    }

    async fn flush(&self) -> Result<()> {
        self.mem.flush().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_send_refused_during_a_long_outage_is_reported_after_it() {
    let opts = RelayOptions {
        linger: HEARTBEAT * 3,
        ..fast()
    };
    let listener = Relay::open_with("mem://refused", opts.clone())
        .await
        .expect("open");
    let down = Arc::new(AtomicBool::new(false));
    let flaky = Flaky {
        mem: MemRelay::open("refused", opts.capacity),
        down: down.clone(),
    };
    let publisher = Relay::new(flaky, opts).expect("relay");
    let mut sub = listener.subscribe("node.n4").await.expect("subscribe");
    publisher.publish("node.n4", numbered(0)).expect("publish");
    messages(&mut sub, 1).await;
    // The numbering closes quietly once idle for `linger`.
    assert_quiet(&mut sub, HEARTBEAT * 10).await;

    down.store(true, Ordering::SeqCst);
    assert!(publisher.publish("node.n4", numbered(1)).is_err());
    tokio::time::sleep(HEARTBEAT * 10).await;
    down.store(false, Ordering::SeqCst);
    let gap = tokio::time::timeout(HEARTBEAT * 2, next(&mut sub))
        .await
        .expect("the refused frame was never reported");
    let from: Option<Arc<str>> = Some(publisher.id().into());
    assert_eq!(gap, RelayEvent::Gap { from });
    // The publish and the heartbeats meanwhile were refused.
    assert!(publisher.stats().failed > 1, "{:?}", publisher.stats());
}
