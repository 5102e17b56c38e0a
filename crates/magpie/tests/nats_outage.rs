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
        c.bus = url;
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
