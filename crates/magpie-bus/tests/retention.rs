//! Retention of the embedded log: events every group has acknowledged (and
//! events of topics no group consumes) are deleted once old enough, offsets
//! are never reused, and what is still owed is kept.

use magpie_bus::testsuite::{
    assert_idle, consumer, event, ids, names, publish, publish_names, take,
};
use magpie_bus::{Bus, EmbeddedBus, EmbeddedOptions};
use std::time::Duration;

fn rows(path: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.query_row("SELECT COUNT(*) FROM log", [], |r| r.get(0))
        .expect("count")
}

/// Waits (bounded) for the writer's periodic upkeep to bring the log to `n` rows.
async fn settle(path: &std::path::Path, n: i64) {
    for _ in 0..100 {
        if rows(path) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rows(path), n, "retention did not settle");
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_events_are_retired_and_owed_ones_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bus.db");
    let opts = EmbeddedOptions {
        retention: Duration::ZERO,
        maintenance_every: Duration::from_millis(20),
    };
    let bus = Bus::new(
        EmbeddedBus::open_with(path.to_str().expect("utf-8 path"), opts)
            .await
            .expect("open"),
    );

    let mut fast = consumer(&bus, "fast", &["r"], Duration::from_secs(60)).await;
    let mut slow = consumer(&bus, "slow", &["r"], Duration::from_secs(60)).await;
    let first = publish_names(&bus, "r", "r", 100).await;
    publish_names(&bus, "noise", "noise", 10).await;

    take(&mut fast, 100, true).await;
    // `slow` acks only the first half: its floor holds the rest back.
    let half = take(&mut slow, 50, true).await;
    assert_eq!(ids(&half), names("r", 50));
    settle(&path, 50 + 10).await;

    let rest = take(&mut slow, 50, true).await;
    assert_eq!(ids(&rest), names("r", 100)[50..].to_vec());
    // Noise counts as acknowledged for both groups: all of it goes.
    settle(&path, 0).await;

    // An emptied log never hands out an old offset again.
    let next = publish(&bus, vec![event("r", "after")]).await[0];
    assert!(next > *first.last().expect("offsets"));
    assert_eq!(
        ids(&take(&mut fast, 1, true).await),
        vec!["after".to_string()]
    );
    // A group joining now starts at the retained log: only "after".
    let mut late = consumer(&bus, "late", &["r"], Duration::from_secs(60)).await;
    assert_eq!(
        ids(&take(&mut late, 1, true).await),
        vec!["after".to_string()]
    );
    assert_idle(&mut late, Duration::from_millis(200)).await;
}
