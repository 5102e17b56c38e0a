//! Client ordering chains (docs/protocol.md, "Ordering chain"): a device's
//! chained sends are stored in chain order however they arrive, a missing
//! link raises the gap alarm and is skipped or refused per `chain.on_gap`,
//! bad chains are slowed down then refused for a while, and a device that
//! lost its next id asks for it. Backend-agnostic: embedded by default,
//! cluster backends with `MAGPIE_TEST_BACKENDS=cluster`.

mod common;
use common::*;
use magpie_core::{ClientMsgId, ConvId, UserId};
use magpie_proto::http::Tokens;
use magpie_proto::{ClientOp, ServerFrame};
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The chain a device starts from `GET /v1/chain`: `ids[0]` is the id the
/// server expects, `ids[i]` the id of link `i`, whose `next` is `ids[i + 1]`.
async fn chain_ids(s: &TestServer, t: &Tokens, n: usize) -> Vec<String> {
    let (st, body) = s.get(t, "/v1/chain").await;
    assert_eq!(st, 200, "{body}");
    let first = body["next"].as_str().expect("next").to_string();
    let tag = ClientMsgId::new_v7();
    std::iter::once(first)
        .chain((1..=n).map(|i| format!("{tag}-{i}")))
        .collect()
}

/// Link `i` of `ids` as a send body to `to`; the body is `m{i}`.
fn link(to: UserId, cmid: ClientMsgId, ids: &[String], i: usize) -> Value {
    json!({
        "to": to,
        "cmid": cmid,
        "body": format!("m{i}"),
        "chain": {"id": ids[i], "next": ids[i + 1]},
    })
}

async fn send_link(
    s: &TestServer,
    base: &str,
    t: &Tokens,
    to: UserId,
    cmid: ClientMsgId,
    ids: &[String],
    i: usize,
) -> (u16, Value) {
    let body = link(to, cmid, ids, i);
    s.call_at(
        base,
        "POST",
        "/v1/messages",
        Some(&t.access_token),
        Some(body),
    )
    .await
}

/// The bodies of the conversation, in sequence order.
async fn bodies(s: &TestServer, t: &Tokens, peer: UserId) -> Vec<String> {
    let conv = ConvId::direct(t.user_id, peer);
    let (st, page) = s.history(t, &conv, "?after=0&limit=200").await;
    assert_eq!(st, 200, "{page}");
    let msgs = page["messages"].as_array().expect("messages");
    let mut by_seq: Vec<(i64, String)> = msgs
        .iter()
        .map(|m| {
            (
                m["seq"].as_i64().unwrap(),
                m["body"].as_str().unwrap().into(),
            )
        })
        .collect();
    by_seq.sort();
    by_seq.into_iter().map(|(_, b)| b).collect()
}

fn names(range: impl IntoIterator<Item = usize>) -> Vec<String> {
    range.into_iter().map(|i| format!("m{i}")).collect()
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn shuffled_concurrent_http_sends_are_stored_in_chain_order() {
    // No gap is expected: the wait only has to outlast the chain.
    let s = TestServer::start_with(|c| c.chain.wait_ms = 60_000).await;
    let [a, b] = s.users(["alice", "bob"]).await;
    const N: usize = 200;
    let ids = chain_ids(&s, &a, N).await;
    let mut order: Vec<usize> = (0..N).collect();
    order.shuffle(&mut rand::rng());
    let s = std::sync::Arc::new(s);
    let tasks: Vec<_> = order
        .into_iter()
        .map(|i| {
            let (s, a, ids) = (s.clone(), a.clone(), ids.clone());
            let base = s.base.clone();
            tokio::spawn(async move {
                let cmid = ClientMsgId::new_v7();
                let (st, body) = send_link(&s, &base, &a, b.user_id, cmid, &ids, i).await;
                assert_eq!(st, 200, "link {i}: {body}");
                (i, body["seq"].as_i64().unwrap())
            })
        })
        .collect();
    let mut seqs = vec![0; N];
    for t in tasks {
        let (i, seq) = t.await.unwrap();
        seqs[i] = seq;
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequences follow the chain: {seqs:?}"
    );
    assert_eq!(bodies(&s, &a, b.user_id).await, names(0..N));
    // The chain now expects the last link's next.
    let (_, body) = s.get(&a, "/v1/chain").await;
    assert_eq!(body["next"], ids[N]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_link_is_skipped_after_the_wait_with_an_alarm() {
    let s = TestServer::start_with(|c| c.chain.wait_ms = 300).await;
    let [a, b] = s.users(["alice", "bob"]).await;
    let ids = chain_ids(&s, &a, 4).await;
    let to = b.user_id;
    let gaps = counter(&s, "magpie_chain_gaps_total").await;
    let (st, _) = send_link(&s, &s.base, &a, to, ClientMsgId::new_v7(), &ids, 0).await;
    assert_eq!(st, 200);
    // Link 1 never comes: link 2 waits for it, then goes on.
    let started = Instant::now();
    let (st, body) = send_link(&s, &s.base, &a, to, ClientMsgId::new_v7(), &ids, 2).await;
    assert_eq!(st, 200, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(250), "it waited");
    assert!(counter(&s, "magpie_chain_gaps_total").await >= gaps + 1.0);
    // The console's list of recent alarms has it, naming the device.
    let (st, alarms) = s.operator("GET", "/internal/v1/alarms", None).await;
    assert_eq!(st, 200, "{alarms}");
    let gap = &alarms["alarms"][0];
    assert_eq!(gap["kind"], "chain_gap", "{alarms}");
    let detail = gap["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("user {}", a.user_id.0)),
        "{detail}"
    );
    assert!(detail.contains(&ids[1]), "the missing link: {detail}");
    // The chain moved past the gap: link 3 is taken at once.
    let started = Instant::now();
    let (st, _) = send_link(&s, &s.base, &a, to, ClientMsgId::new_v7(), &ids, 3).await;
    assert_eq!(st, 200);
    assert!(started.elapsed() < Duration::from_millis(250), "no wait");
    assert_eq!(bodies(&s, &a, to).await, names([0, 2, 3]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_link_is_refused_with_the_expected_id_then_resent() {
    let s = TestServer::start_with(|c| {
        c.chain.wait_ms = 300;
        c.chain.on_gap = magpie_server::config::OnGap::Reject;
    })
    .await;
    let [a, b] = s.users(["alice", "bob"]).await;
    let ids = chain_ids(&s, &a, 4).await;
    let to = b.user_id;
    let cmids: Vec<ClientMsgId> = (0..4).map(|_| ClientMsgId::new_v7()).collect();
    let gaps = counter(&s, "magpie_chain_gaps_total").await;
    assert_eq!(
        send_link(&s, &s.base, &a, to, cmids[0], &ids, 0).await.0,
        200
    );
    let (st, body) = send_link(&s, &s.base, &a, to, cmids[2], &ids, 2).await;
    assert_eq!((st, error_code(&body)), (409, "chain_gap"), "{body}");
    assert_eq!(
        magpie_proto::errors::chain_expected(error_message(&body)),
        Some(ids[1].as_str())
    );
    assert!(counter(&s, "magpie_chain_gaps_total").await >= gaps + 1.0);
    assert_eq!(bodies(&s, &a, to).await, names([0]), "nothing stored");
    // The missing link, then the refused one again, then the rest.
    for (i, cmid) in cmids.iter().enumerate().skip(1) {
        let (st, body) = send_link(&s, &s.base, &a, to, *cmid, &ids, i).await;
        assert_eq!(st, 200, "link {i}: {body}");
    }
    assert_eq!(bodies(&s, &a, to).await, names(0..4));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_that_lost_its_next_id_asks_and_loses_nothing() {
    let s = TestServer::start_with(|c| c.chain.wait_ms = 300).await;
    let [a, b] = s.users(["alice", "bob"]).await;
    let to = b.user_id;
    let ids = chain_ids(&s, &a, 3).await;
    for i in 0..3 {
        let (st, _) = send_link(&s, &s.base, &a, to, ClientMsgId::new_v7(), &ids, i).await;
        assert_eq!(st, 200);
    }
    // The device forgot where it was: the server tells it (without starting
    // a new chain), and it continues from there with no gap.
    let again = chain_ids(&s, &a, 3).await;
    assert_eq!(again[0], ids[3]);
    for i in 0..3 {
        let started = Instant::now();
        let (st, _) = send_link(&s, &s.base, &a, to, ClientMsgId::new_v7(), &again, i).await;
        assert_eq!(st, 200);
        assert!(started.elapsed() < Duration::from_millis(250), "no wait");
    }
    assert_eq!(
        bodies(&s, &a, to).await,
        ["m0", "m1", "m2", "m0", "m1", "m2"]
    );
    // A device that never asked: its first link starts the chain.
    let tl = s.login("alice", "laptop").await;
    let fresh = vec!["x1".to_string(), "x2".into(), "x3".into()];
    for i in 0..2 {
        let started = Instant::now();
        let (st, _) = send_link(&s, &s.base, &tl, to, ClientMsgId::new_v7(), &fresh, i).await;
        assert_eq!(st, 200);
        assert!(started.elapsed() < Duration::from_millis(250), "no wait");
    }
    let (_, body) = s.get(&tl, "/v1/chain").await;
    assert_eq!(body["next"], "x3");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_of_an_accepted_link_answers_the_original_at_once() {
    let s = TestServer::start_with(|c| c.chain.wait_ms = 2_000).await;
    let [a, b] = s.users(["alice", "bob"]).await;
    let to = b.user_id;
    let ids = chain_ids(&s, &a, 3).await;
    let cmids: Vec<ClientMsgId> = (0..3).map(|_| ClientMsgId::new_v7()).collect();
    let mut first = Vec::new();
    for (i, cmid) in cmids.iter().enumerate().take(2) {
        let (st, body) = send_link(&s, &s.base, &a, to, *cmid, &ids, i).await;
        assert_eq!(st, 200);
        first.push(body);
    }
    // Link 0 again: the chain expects link 2, yet the retry does not wait.
    let started = Instant::now();
    let (st, again) = send_link(&s, &s.base, &a, to, cmids[0], &ids, 0).await;
    assert_eq!(st, 200, "{again}");
    assert!(started.elapsed() < Duration::from_millis(1_500), "no wait");
    assert_eq!(again["duplicate"], true);
    assert_eq!(
        (&again["seq"], &again["server_id"]),
        (&first[0]["seq"], &first[0]["server_id"])
    );
    // The chain did not move back.
    let (st, _) = send_link(&s, &s.base, &a, to, cmids[2], &ids, 2).await;
    assert_eq!(st, 200);
    assert_eq!(bodies(&s, &a, to).await, names(0..3));
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_gaps_slow_the_device_down_then_refuse_it_for_a_while() {
    let s = TestServer::start_with(|c| {
        c.chain.wait_ms = 100;
        c.chain.on_gap = magpie_server::config::OnGap::Reject;
        c.chain.gap_limit = 2;
        c.chain.gap_window_ms = 60_000;
        c.chain.penalty_ms = 1_000;
    })
    .await;
    let [a, b] = s.users(["alice", "bob"]).await;
    let to = b.user_id;
    let ids = chain_ids(&s, &a, 3).await;
    // One link accepted before the trouble: its retry is answered with the
    // original even during the penalty below.
    let first = ClientMsgId::new_v7();
    let (st, _) = send_link(&s, &s.base, &a, to, first, &ids, 0).await;
    assert_eq!(st, 200);
    let stray = |n: usize| -> Vec<String> { vec![format!("stray-{n}"), format!("stray-{n}-next")] };
    let mut answers = Vec::new();
    for n in 0..6 {
        let (st, body) = send_link(&s, &s.base, &a, to, ClientMsgId::new_v7(), &stray(n), 0).await;
        answers.push((
            st,
            error_code(&body).to_string(),
            error_message(&body).to_string(),
        ));
    }
    let codes: Vec<&str> = answers.iter().map(|(_, c, _)| c.as_str()).collect();
    // Two gaps (the limit), then "slow down", then (past twice the limit)
    // the penalty, which names its length.
    assert_eq!(
        codes,
        [
            "chain_gap",
            "chain_gap",
            "chain_slow_down",
            "chain_slow_down",
            "chain_slow_down",
            "chain_slow_down"
        ],
        "{answers:?}"
    );
    assert!(answers[2..].iter().all(|(st, _, _)| *st == 429));
    let penalty = magpie_proto::errors::retry_after_ms(&answers[4].2).expect("hint");
    assert!((900..=1_000).contains(&penalty), "{penalty}");
    assert!(magpie_proto::errors::retry_after_ms(&answers[5].2).unwrap() <= 1_000);
    // During the penalty even the right link is refused; unchained sends are not.
    let resp = s
        .http
        .post(format!("{}/v1/messages", s.base))
        .bearer_auth(&a.access_token)
        .json(&link(to, ClientMsgId::new_v7(), &ids, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry_after = resp.headers()["retry-after"].to_str().unwrap().to_string();
    assert_eq!(retry_after, "1", "seconds, rounded up");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "chain_slow_down", "{body}");
    assert_eq!(body["error"]["retryable"], true);
    let (st, _) = s.http_send(&a, to, ClientMsgId::new_v7(), "plain").await;
    assert_eq!(st, 200);
    let (st, body) = send_link(&s, &s.base, &a, to, first, &ids, 0).await;
    assert_eq!(
        (st, body["duplicate"].as_bool()),
        (200, Some(true)),
        "a retry during the penalty: {body}"
    );
    // The hook a ban rule reads: every gap and refusal counted.
    let app = s.app();
    let device = magpie_core::DeviceId::new("phone").unwrap();
    assert!(app.messaging.chain_offences(a.user_id, &device) >= 7);
    assert_eq!(app.messaging.chain_offences(b.user_id, &device), 0);
    // After the penalty, the chain goes on.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (st, body) = send_link(&s, &s.base, &a, to, ClientMsgId::new_v7(), &ids, 1).await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn chained_sends_on_a_socket_are_ordered_and_not_blocking() {
    let s = TestServer::start_with(|c| c.chain.wait_ms = 5_000).await;
    let [a, b] = s.users(["alice", "bob"]).await;
    for transport in ["ws", "tcp"] {
        let mut c = s.conn(&a, transport).await;
        let next = match c.request(ClientOp::Chain).await {
            ServerFrame::ChainResult { next, .. } => next,
            other => panic!("expected chain_result, got {other:?}"),
        };
        let tag = ClientMsgId::new_v7();
        let ids = [
            next,
            format!("{tag}-1"),
            format!("{tag}-2"),
            format!("{tag}-3"),
        ];
        let send = |i: usize| ClientOp::Send {
            reply_to: None,
            recall: None,
            mentions: Vec::new(),
            mention_all: false,
            edit: None,
            traceparent: None,
            sample: false,
            to: b.user_id,
            cmid: ClientMsgId::new_v7(),
            body: format!("{transport}{i}"),
            persistence: None,
            group: None,
            chain: Some(magpie_core::ChainLink::new(&ids[i], &ids[i + 1]).unwrap()),
        };
        // Last link first, each in its own turn of the connection: the held
        // ones must not keep the others from being read.
        for i in [2, 1, 0] {
            c.send_op(Some(100 + i as u64), send(i)).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let mut seqs = [0; 3];
        for _ in 0..3 {
            let f = c
                .expect(|f| matches!(f, ServerFrame::Sent { .. } | ServerFrame::Error { .. }))
                .await;
            let rid = frame_rid(&f).expect("rid") as usize - 100;
            seqs[rid] = sent_seq(&f).1;
        }
        assert!(seqs[0] < seqs[1] && seqs[1] < seqs[2], "{seqs:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn links_split_between_two_nodes_are_stored_in_chain_order() {
    if !backends::needs_shared_store() {
        return;
    }
    let n1 = TestServer::start_with(|c| c.chain.wait_ms = 20_000).await;
    let n2 = second_node_with(&n1, "node-2", 2, |c| c.chain.wait_ms = 20_000).await;
    let [a, b] = n1.users(["alice", "bob"]).await;
    const N: usize = 40;
    let ids = chain_ids(&n1, &a, N).await;
    let mut order: Vec<usize> = (0..N).collect();
    order.shuffle(&mut rand::rng());
    let n1 = std::sync::Arc::new(n1);
    let tasks: Vec<_> = order
        .into_iter()
        .map(|i| {
            let (s, a, ids) = (n1.clone(), a.clone(), ids.clone());
            let base = if i % 2 == 0 {
                n1.base.clone()
            } else {
                n2.base.clone()
            };
            tokio::spawn(async move {
                let cmid = ClientMsgId::new_v7();
                let (st, body) = send_link(&s, &base, &a, b.user_id, cmid, &ids, i).await;
                assert_eq!(st, 200, "link {i}: {body}");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(bodies(&n1, &a, b.user_id).await, names(0..N));
}
