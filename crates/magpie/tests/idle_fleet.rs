//! 10,000 idle connections cost the state nothing per heartbeat
//! (docs/scale.md, "Idle connections"): a node process of its own (so the
//! clients' and the node's sockets are counted in two processes, each under
//! this machine's 20,000-file limit) holds 10,000 authenticated TCP
//! connections pinged every 500 ms; over 3 s (60,000 heartbeats) the node
//! makes no Redis round trip per connection, and none reaches the store.
//! `tests/budget.rs` checks the same for 1,000 connections in process.
//! Run with `MAGPIE_TEST_BACKENDS=cluster`.

mod common;
mod fleet;

use common::{Conn, counter_at};
use fleet::Fleet;
use std::time::Duration;

const IDLE: usize = 10_000;
/// Logins and tickets at once.
const AT_ONCE: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_idle_connections_cost_no_redis_per_heartbeat() {
    let Some(mut fleet) = Fleet::new() else {
        return;
    };
    // Only the connections' own heartbeats in the window: the node's
    // registry heartbeat, route audit, sweeper and retention sweep slowed
    // down. The clients answer no ping, so the idle timeout is put out of
    // reach: on a loaded machine connecting all of them can take longer
    // than its default.
    fleet.spawn_with(
        "edge,conn,workers",
        &[
            ("MAGPIE_SESSION__HEARTBEAT_MS", "500"),
            ("MAGPIE_SESSION__IDLE_TIMEOUT_MS", "3600000"),
            ("MAGPIE_CLUSTER__HEARTBEAT_MS", "20000"),
            ("MAGPIE_CLUSTER__NODE_TTL_MS", "60000"),
            ("MAGPIE_CLUSTER__ROUTE_AUDIT_MS", "3600000"),
            ("MAGPIE_CLUSTER__SWEEP_INTERVAL_MS", "30000"),
            // The retention sweep's statements (first one a minute after
            // start, when the connects on a loaded machine end).
            ("MAGPIE_RETENTION__SWEEP_INTERVAL_SECS", "3600"),
        ],
    );
    let base = fleet.node(1).base.clone();
    let admin = magpie_sdk::HttpClient::new(&base).unwrap();
    admin.register("idler", "password123").await.unwrap();

    // AT_ONCE workers, each logging in device after device and asking
    // for a TCP ticket.
    let workers = (0..AT_ONCE).map(|w| {
        let base = base.clone();
        tokio::spawn(async move {
            let http = magpie_sdk::HttpClient::new(&base).unwrap();
            let mut conns = Vec::new();
            for i in (w..IDLE).step_by(AT_ONCE) {
                let device = format!("d{i}");
                let device = magpie_core::DeviceId::new(device).unwrap();
                http.login("idler", "password123", Some(device))
                    .await
                    .unwrap();
                let ticket = http
                    .connect(Some(magpie_core::Transport::Tcp))
                    .await
                    .unwrap();
                conns.push(Conn::hello(ticket).await);
            }
            conns
        })
    });
    let mut conns = Vec::with_capacity(IDLE);
    for w in futures_util::future::join_all(workers).await {
        conns.extend(w.unwrap());
    }
    assert_eq!(conns.len(), IDLE);
    let connected = counter_at(&base, "magpie_connections{").await;
    assert_eq!(connected as usize, IDLE, "every connection held");

    let redis = "magpie_redis_round_trips_total";
    let sql = "magpie_sql_round_trips_total";
    // The connects' own work (presence, held 1 s by the debounce; the
    // workers) done first: both counters still for a second.
    let mut last = (counter_at(&base, redis).await, counter_at(&base, sql).await);
    for waited in 0.. {
        assert!(waited < 60, "the node never went quiet: {last:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = (counter_at(&base, redis).await, counter_at(&base, sql).await);
        if now == last {
            break;
        }
        last = now;
    }
    let (redis_before, sql_before) = last;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls = counter_at(&base, redis).await - redis_before;
    let statements = counter_at(&base, sql).await - sql_before;
    eprintln!(
        "{IDLE} idle connections, 3 s of 500 ms heartbeats: {calls} Redis round trips, {statements} SQL"
    );
    assert!(
        calls <= 20.0,
        "heartbeats reached Redis: {calls} round trips"
    );
    assert_eq!(statements, 0.0, "heartbeats reached the store");
    assert_eq!(
        counter_at(&base, "magpie_connections{").await as usize,
        IDLE,
        "no connection dropped while idle"
    );
    // The heartbeats did happen: a connection's frames are pings.
    let c = &mut conns[IDLE / 2];
    let pinged = c.try_recv(Duration::from_secs(2)).await;
    assert!(
        matches!(pinged, Ok(Some(magpie_proto::ServerFrame::Ping))),
        "{pinged:?}"
    );
    drop(conns);
}
