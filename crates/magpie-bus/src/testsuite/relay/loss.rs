//! Relay conformance cases about loss: every one is reported as a gap, in
//! place, and nothing is ever reordered.

use super::*;
use tokio::time::Instant;

/// Reads until the message numbered `end`, checking that numbers only grow
/// from `last` (the last one read before, if any) and that every skipped
/// number is preceded by a gap (`gap_since_last`: one was read since `last`).
/// Returns the gaps read.
async fn ordered_until(
    sub: &mut RelaySubscription,
    mut last: Option<usize>,
    mut gap_since_last: bool,
    end: usize,
) -> usize {
    let mut gaps = 0;
    loop {
        match next(sub).await {
            RelayEvent::Gap { .. } => (gaps, gap_since_last) = (gaps + 1, true),
            RelayEvent::Message { payload, .. } => {
                let n = number(&payload).expect("numbered payload");
                let expected = last.map_or(0, |l| l + 1);
                assert!(n >= expected, "message {n} after {last:?}: reordered");
                assert!(
                    n == expected || gap_since_last,
                    "messages {expected}..{n} lost without a gap"
                );
                if n == end {
                    return gaps;
                }
                (last, gap_since_last) = (Some(n), false);
            }
        }
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
    let gaps = ordered_until(&mut sub, None, false, 200).await;
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
    assert_eq!(
        ordered_until(&mut sub, Some(2), false, 4).await,
        1,
        "exactly one gap"
    );

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
    publisher.flush().await.expect("flush");
    // Read until the overflow shows, then end the stream and check order.
    loop {
        if let RelayEvent::Gap { .. } = next(&mut sub).await {
            break;
        }
    }
    publish(&publisher, "node.slow", numbered(2000));
    ordered_until(&mut sub, None, true, 2000).await;
}
