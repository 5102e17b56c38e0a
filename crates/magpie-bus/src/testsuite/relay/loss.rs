//! Relay conformance cases about loss: every one is reported as a gap, in
//! place, and nothing is ever reordered.

use super::*;
use tokio::time::Instant;

/// Checks a stream of events: message numbers only grow, and every
/// skipped number is preceded by a gap.
#[derive(Default)]
struct Order {
    /// The last number read, if any.
    last: Option<usize>,
    /// A gap was read since `last`.
    gap_since_last: bool,
    gaps: usize,
}

impl Order {
    /// Checks `event`; returns its number if it is a message.
    fn see(&mut self, event: RelayEvent) -> Option<usize> {
        let RelayEvent::Message { payload, .. } = event else {
            (self.gaps, self.gap_since_last) = (self.gaps + 1, true);
            return None;
        };
        let n = number(&payload).expect("numbered payload");
        let expected = self.last.map_or(0, |l| l + 1);
        assert!(
            n >= expected,
            "message {n} after {:?}: reordered",
            self.last
        );
        assert!(
            n == expected || self.gap_since_last,
            "messages {expected}..{n} lost without a gap"
        );
        (self.last, self.gap_since_last) = (Some(n), false);
        Some(n)
    }

    /// Reads until the message numbered `end`; returns the gaps read.
    async fn until(mut self, sub: &mut RelaySubscription, end: usize) -> usize {
        while self.see(next(sub).await) != Some(end) {}
        self.gaps
    }
}

/// With the fault knob dropping 30%, every loss shows as a gap before the
/// next message, and order holds.
pub async fn relay_drop_knob_reports_gaps_and_keeps_order(f: &impl RelayFactory) {
    let listener = f.open(fast()).await;
    let lossy = f
        .open(RelayOptions {
            drop: 0.3,
            ..fast()
        })
        .await;
    let mut sub = subscribe(&listener, "node.n3").await;
    for i in 0..200 {
        publish(&lossy, "node.n3", numbered(i));
    }
    lossy.set_drop(0.0);
    publish(&lossy, "node.n3", numbered(200));
    let gaps = Order::default().until(&mut sub, 200).await;
    let stats = lossy.stats();
    assert!(stats.dropped > 0 && stats.published == 201, "{stats:?}");
    assert!(gaps > 0, "30% loss and no gap");
    assert_eq!(listener.stats().gaps, gaps as u64);
}

/// The last message of a burst is lost and nothing follows: the heartbeat
/// reveals it within about one heartbeat period.
pub async fn relay_reports_trailing_loss_by_heartbeat(f: &impl RelayFactory) {
    let (listener, publisher) = (f.open(fast()).await, f.open(fast()).await);
    let mut sub = subscribe(&listener, "node.n1").await;
    for i in 0..5 {
        publish(&publisher, "node.n1", numbered(i));
    }
    messages(&mut sub, 5).await;
    publisher.set_drop(1.0);
    publish(&publisher, "node.n1", numbered(5));
    publisher.set_drop(0.0);
    let lost_at = Instant::now();
    let gap = next(&mut sub).await;
    let took = lost_at.elapsed();
    let from: Option<Arc<str>> = Some(publisher.id().into());
    assert_eq!(gap, RelayEvent::Gap { from });
    assert!(took <= HEARTBEAT * 3, "trailing loss seen after {took:?}");
    // The stream goes on cleanly after the gap.
    publish(&publisher, "node.n1", numbered(6));
    let got = messages(&mut sub, 1).await;
    assert_eq!(number(&got[0].1), Some(6));
}

/// A publisher that restarts (same id) after losing its last frames and
/// dying without a word causes a gap; one that closed gracefully is
/// continued by its successor without one.
pub async fn relay_publisher_restart_gaps_or_continues(f: &impl RelayFactory) {
    let node = || RelayOptions {
        publisher: Some("n7".into()),
        ..fast()
    };
    let listener = f.open(fast()).await;
    let mut sub = subscribe(&listener, "bcast").await;
    let first = f.open(node()).await;
    for i in 0..3 {
        publish(&first, "bcast", numbered(i));
    }
    messages(&mut sub, 3).await;
    // A crash: the last frame and everything after it (the close) is lost.
    first.set_drop(1.0);
    publish(&first, "bcast", numbered(3));
    drop(first);
    let second = f.open(node()).await;
    publish(&second, "bcast", numbered(4));
    let order = Order {
        last: Some(2),
        ..Order::default()
    };
    assert_eq!(order.until(&mut sub, 4).await, 1, "exactly one gap");

    // A graceful close, then a restart: no gap.
    second.close().await.expect("close");
    drop(second);
    let third = f.open(node()).await;
    publish(&third, "bcast", numbered(5));
    let got = messages(&mut sub, 1).await;
    assert_eq!((&*got[0].0, number(&got[0].1)), ("n7", Some(5)));
    assert_quiet(&mut sub, HEARTBEAT * 5).await;
}

/// A subscriber that does not read while far more than its buffer is
/// published gets a gap; the publisher never waits for it.
pub async fn relay_slow_subscriber_gets_gap_and_publisher_never_waits(f: &impl RelayFactory) {
    let small = || RelayOptions {
        capacity: 64,
        ..fast()
    };
    let (listener, publisher) = (f.open(small()).await, f.open(fast()).await);
    let mut sub = subscribe(&listener, "node.slow").await;
    let started = std::time::Instant::now();
    for i in 0..2000 {
        publish(&publisher, "node.slow", numbered(i));
        if i % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "publishing 2000 frames took {:?}",
        started.elapsed()
    );
    // Read on, publishing one more message per heartbeat period (the
    // first ones may still find the buffer full), until one arrives.
    let (mut order, mut more) = (Order::default(), 2000..);
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            event = next(&mut sub) => if order.see(event).is_some_and(|n| n >= 2000) {
                break;
            },
            _ = tick.tick() => publish(&publisher, "node.slow", numbered(more.next().unwrap_or(0))),
        }
    }
    assert!(order.gaps > 0, "a slow subscriber without a gap");
}
