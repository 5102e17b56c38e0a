//! The offline push webhook (docs/protocol.md, "Offline push webhook"): a
//! recipient with no device online gets one signed call per conversation
//! and coalescing window, retried on failure and counted when given up;
//! online recipients, the sender and opted-out devices get none.

mod common;
mod push_hook;

use common::*;
use magpie_core::{ClientMsgId, ConvId};
use magpie_proto::http::Tokens;
use push_hook::{Hook, SECRET};
use serde_json::json;
use std::time::Duration;

/// Long enough for a call that was going to come (a coalescing window and
/// the worker's fetch), not a performance bound.
const QUIET: Duration = Duration::from_millis(1_500);

async fn server(hook: &Hook, coalesce_ms: u64, max_attempts: u32) -> TestServer {
    let url = hook.url.clone();
    TestServer::start_with(move |cfg| {
        cfg.push.webhook_url = url;
        cfg.push.secret = SECRET.into();
        cfg.push.coalesce_ms = coalesce_ms;
        cfg.push.max_attempts = max_attempts;
        cfg.push.backoff_ms = 20;
        cfg.push.max_backoff_ms = 50;
        cfg.push.timeout_ms = 2_000;
    })
    .await
}

async fn send(s: &TestServer, from: &Tokens, to: &Tokens, body: &str) -> i64 {
    let (st, resp) = s
        .http_send(from, to.user_id, ClientMsgId::new_v7(), body)
        .await;
    assert_eq!(st, 200, "send: {resp}");
    resp["seq"].as_i64().expect("seq")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offline_recipient_gets_one_signed_call_with_the_message() {
    let hook = Hook::start(0).await;
    let s = server(&hook, 200, 5).await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    // bob's phone is known to the store (settings of its own).
    s.set_settings(&bob, "?scope=device", json!({"offline_push": true}))
        .await;
    let body = "x".repeat(150);
    let seq = send(&s, &alice, &bob, &body).await;

    let calls = hook.until(WAIT, |c| !c.is_empty()).await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert!(call.signed_with(SECRET), "the signature verifies: {call:?}");
    assert!(!call.signed_with("another secret"));
    let ts: i64 = call.timestamp.parse().expect("unix seconds");
    let now = magpie_core::now_ms() / 1000;
    assert!((now - ts).abs() < 60, "a current timestamp: {ts}");
    let p = &call.body;
    assert_eq!(p["user"], bob.user_id.0);
    assert_eq!(p["devices"], json!(["phone"]));
    assert_eq!(
        p["conv"],
        ConvId::direct(alice.user_id, bob.user_id).as_str()
    );
    assert_eq!(p["count"], 1);
    assert_eq!(p["mentioned"], false);
    assert_eq!(p["last"]["seq"], seq);
    assert_eq!(p["last"]["from"], alice.user_id.0);
    assert_eq!(p["last"]["from_name"], "alice");
    assert_eq!(
        p["last"]["preview"],
        "x".repeat(100),
        "cut to 100 characters"
    );
    assert!(p["last"]["sent_at"].as_i64().unwrap() > 0);
    assert!(!p["id"].as_str().unwrap().is_empty());
    // The sender gets nothing.
    tokio::time::sleep(QUIET).await;
    assert!(hook.delivered_to(alice.user_id.0).is_empty());
    assert_eq!(hook.calls().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_online_recipient_gets_no_call() {
    let hook = Hook::start(0).await;
    let s = server(&hook, 100, 5).await;
    let [alice, bob, carol] = s.users(["alice", "bob", "carol"]).await;
    let mut b = s.conn(&bob, "ws").await;
    send(&s, &alice, &bob, "you are here").await;
    assert_eq!(b.expect_msg().await.body, "you are here");
    // carol, offline, is the proof the worker went past bob's message.
    send(&s, &alice, &carol, "and you are not").await;
    hook.until(WAIT, |c| !c.is_empty()).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(hook.delivered_to(carol.user_id.0).len(), 1);
    assert!(
        hook.delivered_to(bob.user_id.0).is_empty(),
        "{:?}",
        hook.calls()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_calls_its_offline_members_but_not_the_sender_or_online_ones() {
    let hook = Hook::start(0).await;
    let s = server(&hook, 100, 5).await;
    let [alice, bob, carol] = s.users(["alice", "bob", "carol"]).await;
    let group = s.create_group(&alice, &[bob.user_id, carol.user_id]).await;
    let mut b = s.conn(&bob, "ws").await;
    let mut a = s.conn(&alice, "ws").await;
    a.send_group(group, "hello all").await;
    assert_eq!(b.expect_msg().await.body, "hello all");
    let calls = hook.until(WAIT, |c| !c.is_empty()).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(calls[0].body["user"], carol.user_id.0);
    assert_eq!(calls[0].body["conv"], format!("g:{group}"));
    assert_eq!(hook.calls().len(), 1, "{:?}", hook.calls());
}

#[tokio::test(flavor = "multi_thread")]
async fn quick_messages_coalesce_into_one_call_with_their_count() {
    let hook = Hook::start(0).await;
    let s = server(&hook, 1_500, 5).await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    send(&s, &alice, &bob, "one").await;
    let second = send(&s, &alice, &bob, "two").await;
    hook.until(WAIT, |c| !c.is_empty()).await;
    tokio::time::sleep(QUIET).await;
    let calls = hook.calls();
    assert_eq!(calls.len(), 1, "one call for both: {calls:?}");
    assert_eq!(calls[0].body["count"], 2);
    assert_eq!(calls[0].body["last"]["seq"], second);
    assert_eq!(calls[0].body["last"]["preview"], "two");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_receiver_gets_the_call_again_until_it_answers() {
    let hook = Hook::start(2).await;
    let s = server(&hook, 100, 5).await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    send(&s, &alice, &bob, "third time lucky").await;
    let calls = hook
        .until(WAIT, |c| c.iter().any(|r| r.status == 200))
        .await;
    let statuses: Vec<u16> = calls.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [500, 500, 200], "{calls:?}");
    assert!(
        calls.iter().all(|c| c.body == calls[0].body),
        "the same call each time"
    );
    assert!(calls.iter().all(|c| c.signed_with(SECRET)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_that_keeps_failing_ends_in_the_dead_letter_counter() {
    let hook = Hook::start(usize::MAX).await;
    let s = server(&hook, 100, 3).await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    // The counter is the process's: other tests of this binary share it.
    let before = counter(&s, "magpie_push_dead_letters_total").await;
    send(&s, &alice, &bob, "nobody listens").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while counter(&s, "magpie_push_dead_letters_total").await < before + 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed = r#"magpie_push_calls_total{outcome="failed"}"#;
    assert!(counter(&s, failed).await >= 1.0);
    tokio::time::sleep(QUIET).await;
    assert_eq!(hook.calls().len(), 3, "max_attempts attempts, then no more");
}

#[tokio::test(flavor = "multi_thread")]
async fn devices_that_opted_out_are_left_out_and_none_left_means_no_call() {
    let hook = Hook::start(0).await;
    let s = server(&hook, 100, 5).await;
    let [alice, bob, carol] = s.users(["alice", "bob", "carol"]).await;
    let tablet = s.login("bob", "tablet").await;
    s.set_settings(&bob, "?scope=device", json!({"offline_push": false}))
        .await;
    s.set_settings(&tablet, "?scope=device", json!({"offline_push": true}))
        .await;
    send(&s, &alice, &bob, "to the tablet").await;
    let calls = hook.until(WAIT, |c| !c.is_empty()).await;
    assert_eq!(calls[0].body["devices"], json!(["tablet"]), "{calls:?}");
    assert_eq!(calls[0].body["others"], true, "the user default allows it");

    // Every device out, the user default too: no call at all.
    s.set_settings(&tablet, "?scope=device", json!({"offline_push": false}))
        .await;
    s.set_settings(&bob, "?scope=user", json!({"offline_push": false}))
        .await;
    send(&s, &alice, &bob, "to nobody").await;
    send(&s, &alice, &carol, "control").await;
    hook.until(WAIT, |c| hook_has(c, carol.user_id.0)).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        hook.delivered_to(bob.user_id.0).len(),
        1,
        "{:?}",
        hook.calls()
    );
}

fn hook_has(calls: &[push_hook::Recorded], user: i64) -> bool {
    calls.iter().any(|r| r.body["user"] == user)
}

/// A group message from `from` mentioning `users`, as the pipeline
/// publishes an accepted one. The send path does not take mentions yet
/// (docs/protocol.md §5.11: the stores keep them), so the test publishes
/// the event the worker reads; only the worker is under test here.
async fn publish_mention(s: &TestServer, group: i64, from: &Tokens, users: &[&Tokens]) {
    let conv = ConvId::group(magpie_core::GroupId(group));
    let msg = magpie_core::Message {
        server_id: magpie_core::MsgIdGen::new(999).next(),
        conv,
        seq: 1_000,
        from: from.user_id,
        to: magpie_core::UserId(0),
        cmid: ClientMsgId::new_v7(),
        body: "look here".into(),
        persistence: Default::default(),
        sent_at: magpie_core::now_ms(),
        search: false,
        trace: None,
        meta: magpie_core::MessageMeta::with_mentions(
            None,
            users.iter().map(|t| t.user_id).collect(),
            false,
        ),
    };
    let id = magpie_core::EventId::Messages {
        first: msg.server_id,
        count: 1,
    };
    let event = magpie_core::BusEvent::Messages { msgs: vec![msg] };
    s.app().events.publish(event, id).await.expect("published");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_muted_conversation_gets_no_call_but_a_mention_in_it_does() {
    let hook = Hook::start(0).await;
    let s = server(&hook, 100, 5).await;
    let [alice, bob, carol] = s.users(["alice", "bob", "carol"]).await;
    let group = s.create_group(&alice, &[bob.user_id, carol.user_id]).await;
    let conv = ConvId::group(magpie_core::GroupId(group));
    let muted = s
        .app()
        .store
        .messages()
        .set_muted(carol.user_id, &conv, true);
    assert!(muted.await.expect("mute"), "carol has the conversation");

    let mut a = s.conn(&alice, "ws").await;
    a.send_group(group, "plain").await;
    let calls = hook.until(WAIT, |c| hook_has(c, bob.user_id.0)).await;
    assert_eq!(calls[0].body["mentioned"], false);
    tokio::time::sleep(QUIET).await;
    assert!(
        hook.delivered_to(carol.user_id.0).is_empty(),
        "muted: {:?}",
        hook.calls()
    );

    publish_mention(&s, group, &alice, &[&carol]).await;
    let calls = hook.until(WAIT, |c| hook_has(c, carol.user_id.0)).await;
    let to_carol: Vec<_> = calls
        .iter()
        .filter(|c| c.body["user"] == carol.user_id.0)
        .collect();
    assert_eq!(to_carol.len(), 1, "the mention goes through the mute");
    assert_eq!(to_carol[0].body["mentioned"], true);
    assert_eq!(to_carol[0].body["last"]["preview"], "look here");
}
