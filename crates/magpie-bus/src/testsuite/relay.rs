//! The relay conformance suite, written once for every relay backend: each
//! promise of `relay/mod.rs` is one `pub async fn` taking a
//! [`RelayFactory`], and [`relay_conformance!`](crate::relay_conformance)
//! turns them into tests.
//!
//! ```ignore
//! magpie_bus::relay_conformance!(paused: MemFactory::fresh()); // paused tokio time
//! magpie_bus::relay_conformance!(NatsFactory::fresh());        // real time
//! ```
//!
//! The factory expression is evaluated once per test; the relays one
//! factory opens share subjects with each other and with no other test.

mod loss;

pub use loss::*;

use crate::{Relay, RelayEvent, RelayOptions, RelaySubscription};
use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Opens relays on one namespace; each call is a new publisher (a node).
pub trait RelayFactory: Send + Sync {
    fn open(&self, opts: RelayOptions) -> impl Future<Output = Relay> + Send;
}

/// Expands to one `#[tokio::test]` per case; `paused:` runs them on paused
/// tokio time (in-process backends only: real I/O would race the clock).
#[macro_export]
macro_rules! relay_conformance {
    (paused: $factory:expr) => {
        $crate::relay_conformance!(@cases [start_paused = true] $factory);
    };
    ($factory:expr) => {
        $crate::relay_conformance!(@cases [flavor = "multi_thread"] $factory);
    };
    (@cases [$attr:meta] $factory:expr) => {
        $crate::relay_conformance!(@each [$attr] $factory;
            relay_delivers_in_order_from_one_publisher,
            relay_keeps_each_publishers_order,
            relay_skips_what_came_before_subscribe,
            relay_keeps_order_when_one_handle_publishes_from_many_threads,
            relay_drop_knob_reports_gaps_and_keeps_order,
            relay_reports_trailing_loss_by_heartbeat,
            relay_publisher_restart_gaps_or_continues,
            relay_slow_subscriber_gets_gap_and_publisher_never_waits,
        );
    };
    (@each [$attr:meta] $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test($attr)]
            async fn $case() {
                let factory = $factory;
                $crate::testsuite::relay::$case(&factory).await;
            }
        )*
    };
}

/// Short heartbeats, and no clock skew: the suite's publishers and
/// subscribers share one clock.
pub fn fast() -> RelayOptions {
    RelayOptions {
        heartbeat: HEARTBEAT,
        linger: HEARTBEAT * 10,
        skew: Duration::ZERO,
        ..RelayOptions::default()
    }
}

pub const HEARTBEAT: Duration = Duration::from_millis(100);
/// How long any expected event may take to arrive.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn numbered(i: usize) -> Bytes {
    Bytes::from(format!("m-{i:05}"))
}

pub fn number(payload: &Bytes) -> Option<usize> {
    std::str::from_utf8(payload)
        .ok()?
        .strip_prefix("m-")?
        .parse()
        .ok()
}

pub async fn subscribe(relay: &Relay, subject: &str) -> RelaySubscription {
    relay.subscribe(subject).await.expect("subscribe")
}

/// The next event, failing after [`PATIENCE`].
pub async fn next(sub: &mut RelaySubscription) -> RelayEvent {
    tokio::time::timeout(PATIENCE, sub.next())
        .await
        .expect("no relay event in time")
        .expect("relay subscription ended")
}

/// The next `n` events, which must all be messages: (from, payload).
pub async fn messages(sub: &mut RelaySubscription, n: usize) -> Vec<(Arc<str>, Bytes)> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match next(sub).await {
            RelayEvent::Message { from, payload } => got.push((from, payload)),
            gap => panic!("unexpected {gap:?} after {} messages", got.len()),
        }
    }
    got
}

/// Asserts that no event (not even a gap) comes within `wait`.
pub async fn assert_quiet(sub: &mut RelaySubscription, wait: Duration) {
    if let Ok(event) = tokio::time::timeout(wait, sub.next()).await {
        panic!("unexpected relay event {event:?}");
    }
}

pub fn publish(relay: &Relay, subject: &str, payload: Bytes) {
    relay.publish(subject, payload).expect("publish");
}

/// One publisher's messages arrive in order, heartbeats unseen.
pub async fn relay_delivers_in_order_from_one_publisher(f: &impl RelayFactory) {
    let (listener, publisher) = (f.open(fast()).await, f.open(fast()).await);
    let mut sub = subscribe(&listener, "node.n2").await;
    for i in 0..100 {
        publish(&publisher, "node.n2", numbered(i));
    }
    let got = messages(&mut sub, 100).await;
    assert!(got.iter().all(|(from, _)| **from == *publisher.id()));
    let order: Vec<_> = got.iter().filter_map(|(_, p)| number(p)).collect();
    assert_eq!(order, (0..100).collect::<Vec<_>>());
    // Heartbeats keep coming for a while: none of them shows.
    assert_quiet(&mut sub, HEARTBEAT * 5).await;
    assert_eq!(listener.stats().gaps, 0);
    assert_eq!(publisher.stats().published, 100);
}

/// Two publishers on one subject interleave; each keeps its own order.
pub async fn relay_keeps_each_publishers_order(f: &impl RelayFactory) {
    let listener = f.open(fast()).await;
    let (a, b) = (f.open(fast()).await, f.open(fast()).await);
    assert_ne!(a.id(), b.id(), "publishers need distinct ids");
    let mut sub = subscribe(&listener, "bcast").await;
    for i in 0..50 {
        publish(&a, "bcast", numbered(i));
        publish(&b, "bcast", numbered(i));
    }
    let got = messages(&mut sub, 100).await;
    for p in [&a, &b] {
        let mine: Vec<_> = got
            .iter()
            .filter(|(from, _)| **from == *p.id())
            .filter_map(|(_, payload)| number(payload))
            .collect();
        assert_eq!(mine, (0..50).collect::<Vec<_>>(), "order of {}", p.id());
    }
    assert_quiet(&mut sub, HEARTBEAT * 3).await;
}

/// A subscriber gets nothing published before it subscribed, and does not
/// count that as a gap.
pub async fn relay_skips_what_came_before_subscribe(f: &impl RelayFactory) {
    let (listener, publisher) = (f.open(fast()).await, f.open(fast()).await);
    for i in 0..10 {
        publish(&publisher, "bcast", numbered(i));
    }
    publisher.flush().await.expect("flush");
    let mut sub = subscribe(&listener, "bcast").await;
    for i in 10..15 {
        publish(&publisher, "bcast", numbered(i));
    }
    let got = messages(&mut sub, 5).await;
    let order: Vec<_> = got.iter().filter_map(|(_, p)| number(p)).collect();
    assert_eq!(order, (10..15).collect::<Vec<_>>());
    assert_quiet(&mut sub, HEARTBEAT * 5).await;
}

/// One handle shared by several threads (a node's pipeline, workers and
/// sessions publish at once): its numbering still reaches the subscriber in
/// order, so no loss is reported that did not happen.
pub async fn relay_keeps_order_when_one_handle_publishes_from_many_threads(f: &impl RelayFactory) {
    const THREADS: usize = 4;
    const EACH: usize = 500;
    let (listener, publisher) = (f.open(fast()).await, f.open(fast()).await);
    let mut sub = subscribe(&listener, "node.n3").await;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let publisher = publisher.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    publish(&publisher, "node.n3", numbered(t * EACH + i));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("publishing thread");
    }
    let got = messages(&mut sub, THREADS * EACH).await;
    for t in 0..THREADS {
        let mine: Vec<_> = got
            .iter()
            .filter_map(|(_, p)| number(p))
            .filter(|n| n / EACH == t)
            .collect();
        assert_eq!(mine, (t * EACH..(t + 1) * EACH).collect::<Vec<_>>());
    }
    assert_eq!(listener.stats().gaps, 0);
}
