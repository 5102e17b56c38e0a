//! The offline push webhook (docs/protocol.md §8), direct conversations: a
//! recipient with no device online gets one signed call per conversation
//! and coalescing window, retried on failure and counted when given up;
//! online recipients, the sender, edits and opted-out devices get none.
//! Groups, super groups, mutes and mentions: `tests/push_groups.rs`.

mod common;
mod push_hook;

use common::*;
use magpie_core::{ClientMsgId, ConvId};
use push_hook::{Hook, QUIET, SECRET, has_call_for, send, server};
use serde_json::json;
use std::time::Duration;

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
    hook.until(WAIT, |c| has_call_for(c, carol.user_id.0)).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        hook.delivered_to(bob.user_id.0).len(),
        1,
        "{:?}",
        hook.calls()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_makes_no_call() {
    let hook = Hook::start(0).await;
    let s = server(&hook, 100, 5).await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    let first = send(&s, &alice, &bob, "see you at 5").await;
    hook.until(WAIT, |c| !c.is_empty()).await;
    let mut a = s.conn(&alice, "ws").await;
    let edit = a
        .request(magpie_proto::ClientOp::Send {
            to: bob.user_id,
            cmid: ClientMsgId::new_v7(),
            body: "see you at 6".into(),
            persistence: None,
            group: None,
            chain: None,
            traceparent: None,
            sample: false,
            reply_to: None,
            edit: Some(first),
            recall: None,
            mentions: Vec::new(),
            mention_all: false,
        })
        .await;
    let (_, edit_seq, _) = sent_seq(&edit);
    // A later message in the same conversation: its call proves the
    // worker went past the edit (one conversation's events in order).
    let after = send(&s, &alice, &bob, "bring cake").await;
    let calls = hook
        .until(WAIT, |c| c.iter().any(|r| r.body["last"]["seq"] == after))
        .await;
    let seqs: Vec<_> = calls
        .iter()
        .map(|c| c.body["last"]["seq"].clone())
        .collect();
    assert_eq!(
        seqs,
        [json!(first), json!(after)],
        "none for edit {edit_seq}"
    );
}
