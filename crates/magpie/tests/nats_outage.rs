//! A short NATS outage (a restart of a few seconds, nothing needed to fail
//! first) ends with every client told to sync: the relay, on the bus's NATS
//! server by default, reports the reconnect as a possible loss, and the
//! node sends `resync` `pushes_lost` (docs/protocol.md §4.4). One node on
//! the embedded store and state, and a nats-server of the test's own that
//! it kills and restarts.

mod common;
#[allow(dead_code)]
#[path = "fleet/services.rs"]
mod services;

use common::*;
use magpie_proto::ServerFrame;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn clients_are_told_to_sync_after_a_short_nats_outage() {
    if std::env::var_os("MAGPIE_TEST_NATS_BIN").is_none() && std::env::var_os("CI").is_none() {
        eprintln!("needs MAGPIE_TEST_NATS_BIN: run `eval \"$(scripts/services.sh start)\"`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut nats = services::Nats::start(dir.path());
    let url = format!("{}/?stream=outage", nats.url());
    let s = TestServer::start_with(|c| {
        // Only the bus is NATS: the store and state stay in this process.
        // The relay follows the bus (a Kafka test phase sets its own).
        c.bus = url;
        c.relay = String::new();
        c.store = String::new();
        c.state = "mem://".into();
    })
    .await;
    let alice = s.user("alice", "phone").await;
    let mut a = s.conn(&alice, "ws").await;

    nats.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.restart();
    let hint = a.expect(|f| matches!(f, ServerFrame::Resync { .. })).await;
    assert!(
        matches!(&hint, ServerFrame::Resync { reason } if reason == "pushes_lost"),
        "{hint:?}"
    );
}

/// kill -9 of one server of a three-server NATS cluster under a node whose
/// bus is three partitions replicated three times: the node keeps
/// accepting messages (a send may be refused while the client fails over;
/// its retry with the same cmid is accepted), and every message it
/// acknowledged is in the streams afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_keeps_serving_when_one_of_three_nats_servers_dies() {
    if std::env::var_os("MAGPIE_TEST_NATS_BIN").is_none() && std::env::var_os("CI").is_none() {
        eprintln!("needs MAGPIE_TEST_NATS_BIN: run `eval \"$(scripts/services.sh start)\"`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut nats = services::NatsCluster::start(dir.path());
    let url = format!("{}/?stream=three&partitions=3&replicas=3", nats.url());
    // The cluster elects its JetStream leaders after it listens.
    let bus = services::NatsCluster::bus_when_ready(&url).await;
    let s = TestServer::start_with(|c| {
        c.bus = url.clone();
        c.relay = String::new();
        c.store = String::new();
        c.state = "mem://".into();
    })
    .await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    let mut acked = Vec::new();
    for i in 0..60 {
        if i == 20 {
            nats.servers[0].kill9();
        }
        let body = format!("m{i:03}");
        let cmid = magpie_core::ClientMsgId::new_v7();
        s.send_until_accepted(&alice, bob.user_id, cmid, &body)
            .await;
        acked.push(body);
    }

    // Every acknowledged message, read back from every partition (the
    // cluster may still be electing leaders: a failed call is tried again).
    let mut found = Vec::new();
    for p in 0..bus.partitions() {
        found.extend(bodies_in(&bus, p).await);
    }
    found.sort();
    found.dedup();
    assert_eq!(found, acked, "acknowledged messages missing from the bus");
}

/// The bodies of every message event in partition `p`, read by a consumer
/// group of its own; calls that fail while the cluster recovers are tried
/// again for up to 60 s.
async fn bodies_in(bus: &magpie_bus::Bus, p: u32) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut bodies = Vec::new();
    'again: loop {
        let retry = |e: magpie_bus::BusError| {
            assert!(
                tokio::time::Instant::now() < deadline,
                "reading partition {p}: {e}"
            );
            eprintln!("reading partition {p}: {e}; trying again");
        };
        let opts = magpie_bus::ConsumerOptions::default();
        let mut c = match bus.consumer("check", &["msg"], p, opts).await {
            Ok(c) => c,
            Err(e) => {
                retry(e);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        loop {
            let got = match c.fetch(500, Duration::from_millis(500)).await {
                Ok(got) => got,
                Err(e) => {
                    retry(e);
                    continue 'again;
                }
            };
            if got.is_empty() {
                return bodies;
            }
            for d in got {
                if let Ok(magpie_core::BusEvent::Messages { msgs }) =
                    magpie_core::Envelope::open(&d.payload)
                {
                    bodies.extend(msgs.into_iter().map(|m| m.body));
                }
            }
        }
    }
}
