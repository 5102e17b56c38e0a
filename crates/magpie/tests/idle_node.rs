//! A node with nothing to do reaches Redis and the store only at the
//! periods configured for its upkeep (docs/config.md: `cluster.*`,
//! `retention.*`, `guard.*`; docs/observability.md: `magpie_cluster_nodes`
//! is read no more often than the nodes write the registry): with those
//! periods set beyond the test, twelve idle seconds — more than two
//! periods of the node's 5 s gauges — cost no round trip at all. A timer
//! that reads the registry or the store on a fixed period of its own fails
//! here.
//!
//! Its own test binary: the counters are the process's. On the embedded
//! backends both counters stay at zero whatever happens (nothing leaves the
//! process); run with `MAGPIE_TEST_BACKENDS=cluster`.

mod common;

use common::*;
use std::time::Duration;

const SQL: &str = "magpie_sql_round_trips_total";
const REDIS: &str = "magpie_redis_round_trips_total";

async fn round_trips(s: &TestServer) -> (f64, f64) {
    (counter(s, REDIS).await, counter(s, SQL).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_node_makes_no_round_trip_beyond_its_upkeep() {
    let s = TestServer::start_with(quiet_upkeep).await;
    // The start's own work (registration, leases, the first reads of each
    // timer) done: both counters unchanged for two seconds.
    let mut last = round_trips(&s).await;
    let mut still = 0;
    for waited in 0.. {
        assert!(waited < 60, "the node never went quiet: {last:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = round_trips(&s).await;
        still = if now == last { still + 1 } else { 0 };
        last = now;
        if still == 2 {
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (redis, sql) = round_trips(&s).await;
    assert_eq!(
        (redis - last.0, sql - last.1),
        (0.0, 0.0),
        "Redis and SQL round trips of an idle node over 12 s"
    );
}
