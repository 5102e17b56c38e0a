//! The offline push webhook (docs/protocol.md §8) in groups: offline
//! members are called, never the sender, online members or for member
//! events; a super group
//! calls only the members it mentions; a muted conversation calls nobody
//! but the members a message mentions.

mod common;
mod push_hook;

use common::*;
use magpie_core::{ClientMsgId, ConvId, GroupId, UserId};
use magpie_proto::http::Tokens;
use magpie_proto::{ClientOp, ServerFrame};
use push_hook::{Hook, QUIET, has_call_for, server, server_with};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_group_calls_its_offline_members_but_not_the_sender_or_online_ones() {
    let hook = Hook::start(0).await;
    let s = server(&hook, 100, 5).await;
    let [alice, bob, carol, dave] = s.users(["alice", "bob", "carol", "dave"]).await;
    let group = s.create_group(&alice, &[bob.user_id, carol.user_id]).await;
    let mut b = s.conn(&bob, "ws").await;
    let mut a = s.conn(&alice, "ws").await;
    // dave joins: a member event (system user) in the conversation first.
    let path = format!("/v1/groups/{group}/members");
    let add = json!({"users": [dave.user_id]});
    let (st, body) = s.send_json(&alice, "POST", &path, add).await;
    assert_eq!(st, 200, "{body}");
    a.send_group(group, "hello all").await;
    loop {
        if b.expect_msg().await.body == "hello all" {
            break;
        }
    }
    let offline = [carol.user_id.0, dave.user_id.0];
    hook.until(WAIT, |c| offline.iter().all(|u| has_call_for(c, *u)))
        .await;
    tokio::time::sleep(QUIET).await;
    let calls = hook.calls();
    // One call each for carol and dave, for alice's message alone (the
    // member event notifies nobody); none for bob (online) or alice.
    assert_eq!(calls.len(), 2, "{calls:?}");
    for c in &calls {
        assert!(offline.contains(&c.body["user"].as_i64().unwrap()), "{c:?}");
        assert_eq!(c.body["conv"], format!("g:{group}"));
        assert_eq!(c.body["count"], 1, "{c:?}");
        assert_eq!(c.body["last"]["preview"], "hello all");
    }
}

/// A group message over the socket mentioning `users` (docs/protocol.md
/// §5.11), which must be accepted.
async fn send_mention(c: &mut Conn, group: i64, users: &[&Tokens], body: &str) {
    let answer = c
        .request(ClientOp::Send {
            to: UserId(0),
            cmid: ClientMsgId::new_v7(),
            body: body.into(),
            persistence: None,
            group: Some(GroupId(group)),
            chain: None,
            traceparent: None,
            sample: false,
            reply_to: None,
            edit: None,
            recall: None,
            mentions: users.iter().map(|t| t.user_id).collect(),
            mention_all: false,
        })
        .await;
    assert!(matches!(answer, ServerFrame::Sent { .. }), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_muted_conversation_gets_no_call_but_a_mention_in_it_does() {
    let hook = Hook::start(0).await;
    let s = server(&hook, 100, 5).await;
    let [alice, bob, carol] = s.users(["alice", "bob", "carol"]).await;
    let group = s.create_group(&alice, &[bob.user_id, carol.user_id]).await;
    let conv = ConvId::group(GroupId(group));
    let path = format!("/v1/conversations/{conv}/mute");
    let (st, body) = s
        .send_json(&carol, "PUT", &path, json!({"muted": true}))
        .await;
    assert_eq!(st, 200, "mute: {body}");

    let mut a = s.conn(&alice, "ws").await;
    a.send_group(group, "plain").await;
    let calls = hook.until(WAIT, |c| has_call_for(c, bob.user_id.0)).await;
    assert_eq!(calls[0].body["mentioned"], false);
    tokio::time::sleep(QUIET).await;
    assert!(
        hook.delivered_to(carol.user_id.0).is_empty(),
        "muted: {:?}",
        hook.calls()
    );

    send_mention(&mut a, group, &[&carol], "look here").await;
    let calls = hook.until(WAIT, |c| has_call_for(c, carol.user_id.0)).await;
    let to_carol: Vec<_> = calls
        .iter()
        .filter(|c| c.body["user"] == carol.user_id.0)
        .collect();
    assert_eq!(to_carol.len(), 1, "the mention goes through the mute");
    assert_eq!(to_carol[0].body["mentioned"], true);
    assert_eq!(to_carol[0].body["last"]["preview"], "look here");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_super_group_calls_only_the_members_it_mentions() {
    let hook = Hook::start(0).await;
    let s = server_with(&hook, 100, 5, |cfg| cfg.groups.super_threshold = 2).await;
    let [alice, bob, carol, dave] = s.users(["alice", "bob", "carol", "dave"]).await;
    let members = [bob.user_id, carol.user_id, dave.user_id];
    let group = s.create_group(&alice, &members).await;
    let mut a = s.conn(&alice, "ws").await;
    a.send_group(group, "to everyone, nobody called").await;
    // After the plain message, in the same conversation (so consumed after
    // it): once carol's call is in, the plain one had none.
    send_mention(&mut a, group, &[&carol], "look here").await;
    hook.until(WAIT, |c| has_call_for(c, carol.user_id.0)).await;
    tokio::time::sleep(QUIET).await;
    let calls = hook.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].body["user"], carol.user_id.0);
    assert_eq!(calls[0].body["mentioned"], true);
}
