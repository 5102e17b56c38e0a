//! Conformance cases about what survives: acks, reopen (restart), msg_id
//! de-duplication and many concurrent publishers.

use super::*;
use std::collections::HashSet;

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(200);

pub async fn acked_events_are_not_redelivered(f: &impl BusFactory) {
    let bus = f.open().await;
    publish_names(&bus, "acked", "a", 10).await;
    let mut c = consumer(&bus, "acked", &["acked"], SHORT).await;
    take(&mut c, 10, true).await;
    // Well past ack_wait: acked events must not come back.
    assert_idle(&mut c, SHORT * 3).await;
    drop(c);
    drop(bus);

    let bus = f.open().await;
    let mut c = consumer(&bus, "acked", &["acked"], SHORT).await;
    assert_idle(&mut c, SHORT * 3).await;
}

/// After a restart, exactly the events not acked come again (also when the
/// acked ones are not contiguous).
pub async fn unacked_events_are_redelivered_after_reopen(f: &impl BusFactory) {
    let bus = f.open().await;
    publish_names(&bus, "unacked", "u", 10).await;
    let mut c = consumer(&bus, "unacked", &["unacked"], LONG).await;
    let got = take(&mut c, 10, false).await;
    let acked: Vec<u64> = [0, 1, 2, 6].iter().map(|&i| got[i].offset).collect();
    c.ack(&acked).await.expect("ack");
    drop(c);
    drop(bus);

    let bus = f.open().await;
    let mut c = consumer(&bus, "unacked", &["unacked"], LONG).await;
    let want: Vec<String> = names("u", 10)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| ![0, 1, 2, 6].contains(i))
        .map(|p| p.1)
        .collect();
    if f.exact_redelivery() {
        let again = take(&mut c, 6, true).await;
        assert_eq!(sorted(ids(&again)), want);
    } else {
        // From each partition's lowest unacked on: the acked 6 may come
        // again (when its partition had an unacked event below it), 0-2 not.
        let six = names("u", 10)[6].clone();
        let mut got: Vec<String> = Vec::new();
        let deadline = tokio::time::Instant::now() + LONG;
        // Until every unacked event came, and one more wait for a late 6.
        let mut settled = false;
        while !settled {
            settled = want.iter().all(|w| got.contains(w));
            assert!(tokio::time::Instant::now() < deadline, "missing: {got:?}");
            let batch = c.fetch(10, SHORT).await.expect("fetch");
            if !batch.is_empty() {
                let offsets: Vec<u64> = batch.iter().map(|d| d.offset).collect();
                c.ack(&offsets).await.expect("ack");
                settled = false;
            }
            got.extend(ids(&batch));
        }
        assert!(got.iter().filter(|g| **g == six).count() <= 1, "{got:?}");
        got.retain(|g| *g != six);
        assert_eq!(
            sorted(got),
            want,
            "an acked event below the first unacked came again"
        );
    }
    assert_idle(&mut c, SHORT).await;
    drop(c);
    drop(bus);

    let bus = f.open().await;
    let mut c = consumer(&bus, "unacked", &["unacked"], LONG).await;
    assert_idle(&mut c, SHORT).await;
}

pub async fn published_event_survives_reopen(f: &impl BusFactory) {
    let bus = f.open().await;
    let offsets = publish_names(&bus, "durable", "d", 5).await;
    drop(bus);

    let bus = f.open().await;
    let mut c = consumer(&bus, "durable", &["durable"], LONG).await;
    let got = take(&mut c, 5, true).await;
    assert_eq!(ids(&got), names("d", 5));
    assert_eq!(got.iter().map(|d| d.offset).collect::<Vec<_>>(), offsets);
}

/// A repeated msg_id returns the first offset and appends nothing — across
/// publishes, inside one batch, and after reopen.
pub async fn msg_id_deduplicates(f: &impl BusFactory) {
    let bus = f.open().await;
    let first = publish(&bus, vec![event("dedup", "x")]).await[0];
    let dup = Outgoing {
        payload: Bytes::from_static(b"other"),
        ..event("dedup", "x")
    };
    assert_eq!(publish(&bus, vec![dup.clone()]).await, vec![first]);
    let batch = publish(
        &bus,
        vec![
            event("dedup", "y"),
            event("dedup", "y"),
            event("dedup", "z"),
            dup,
        ],
    )
    .await;
    assert_eq!((batch[0], batch[1], batch[3]), (batch[0], batch[0], first));
    assert!(batch[0] > first && batch[2] > batch[0]);

    let mut c = consumer(&bus, "dedup", &["dedup"], LONG).await;
    let got = take(&mut c, 3, true).await;
    assert_eq!(
        ids(&got),
        vec!["x", "y", "z"],
        "the first payload wins, once"
    );
    assert_idle(&mut c, SHORT).await;
    drop(c);
    drop(bus);

    let bus = f.open().await;
    assert_eq!(publish(&bus, vec![event("dedup", "x")]).await, vec![first]);
    let mut c = consumer(&bus, "dedup", &["dedup"], LONG).await;
    assert_idle(&mut c, SHORT).await;
}

/// 10 tasks publish 1,000 events each (`concurrent_events`; one or a few
/// per call); one group
/// acking everything receives each exactly once.
pub async fn concurrent_publishes_are_delivered_exactly_once(f: &impl BusFactory) {
    let bus = f.open().await;
    let each = f.concurrent_events();
    let tasks: Vec<_> = (0..10)
        .map(|t| {
            let bus = bus.clone();
            tokio::spawn(async move {
                let all = names(&format!("p{t}"), each);
                let mut offsets = Vec::new();
                // Alternate single events and small batches.
                for chunk in all.chunks(1 + (t % 4)) {
                    offsets.extend(
                        publish(&bus, chunk.iter().map(|id| event("load", id)).collect()).await,
                    );
                }
                offsets
            })
        })
        .collect();
    let mut offsets = HashSet::new();
    for t in tasks {
        for o in t.await.expect("publisher") {
            assert!(offsets.insert(o), "offset {o} handed out twice");
        }
    }
    assert_eq!(offsets.len(), 10 * each);

    let mut c = consumer(&bus, "load", &["load"], LONG).await;
    let got = take(&mut c, 10 * each, true).await;
    let seen: HashSet<u64> = got.iter().map(|d| d.offset).collect();
    assert_eq!(seen, offsets, "lost or duplicated events");
    let want: Vec<String> = (0..10)
        .flat_map(|t| names(&format!("p{t}"), each))
        .collect();
    assert_eq!(sorted(ids(&got)), sorted(want));
    assert_idle(&mut c, SHORT).await;
}
