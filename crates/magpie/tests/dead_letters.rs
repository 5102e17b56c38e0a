//! A poison event on the bus — one no worker can ever read — is parked on
//! the dead-letter topic `dead.<group>` with the `magpie_dead_letters_total`
//! metric raised, and the workers go on with the events after it. On every
//! bus the run uses: embedded, JetStream, Kafka (`MAGPIE_TEST_BUS=kafka`).

mod common;
use common::*;
use magpie_bus::{ConsumerOptions, Outgoing};
use std::time::{Duration, Instant};

const DEAD: &str = "magpie_dead_letters_total{group=\"state\"}";
const APPLIED: &str = "magpie_worker_events_total{group=\"state\"}";

/// Polls `name` on `s` until it reaches `want`.
async fn counter_reaches(s: &TestServer, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while counter(s, name).await < want {
        assert!(Instant::now() < deadline, "{name} never reached {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_event_is_parked_and_the_workers_go_on() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let bus = s.app().events.bus().clone();
    let poison = b"not an envelope".to_vec();
    bus.publish(vec![Outgoing {
        topic: "msg".into(),
        key: "poison".into(),
        msg_id: format!("poison-{:016x}", rand::random::<u64>()),
        payload: poison.clone().into(),
    }])
    .await
    .unwrap();
    counter_reaches(&s, DEAD, 1.0).await;

    // Parked: on `dead.state`, the payload as it was.
    let mut parked = Vec::new();
    for p in 0..bus.partitions() {
        let mut c = bus
            .consumer("inspect", &["dead.state"], p, ConsumerOptions::default())
            .await
            .unwrap();
        let got = c.fetch(10, Duration::from_millis(500)).await.unwrap();
        parked.extend(got.into_iter().map(|d| d.payload.to_vec()));
    }
    assert_eq!(parked, vec![poison]);
    // And listed among the node's recent alarms, for the console.
    let (_, alarms) = s.operator("GET", "/internal/v1/alarms", None).await;
    let listed = alarms["alarms"].as_array().unwrap().iter().any(|a| {
        a["kind"] == "dead_letter" && a["detail"].as_str().unwrap().starts_with("state: ")
    });
    assert!(listed, "{alarms}");

    // The state worker goes on: a message sent afterwards is applied.
    let applied = counter(&s, APPLIED).await;
    let mut a = s.conn(&ta, "ws").await;
    a.send_msg(tb.user_id, "after the poison").await;
    counter_reaches(&s, APPLIED, applied + 1.0).await;
    assert_eq!(counter(&s, DEAD).await, 1.0, "only the poison was parked");
}
