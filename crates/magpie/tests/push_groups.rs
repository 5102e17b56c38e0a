//! The offline push webhook (docs/protocol.md §8) in groups: offline
//! members are called, never the sender or online members; a super group
//! calls only the members it mentions; a muted conversation calls nobody
//! but the members a message mentions.

mod common;
mod push_hook;

use common::*;
use magpie_core::{ClientMsgId, ConvId, GroupId};
use magpie_proto::http::Tokens;
use push_hook::{Hook, QUIET, has_call_for, server, server_with};

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

/// A group message from `from` mentioning `users`, as the pipeline
/// publishes an accepted one. The send path does not take mentions yet
/// (docs/protocol.md §5.11: the stores keep them), so the test publishes
/// the event the worker reads; only the worker is under test here.
async fn publish_mention(s: &TestServer, group: i64, from: &Tokens, users: &[&Tokens]) {
    let conv = ConvId::group(GroupId(group));
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
    let conv = ConvId::group(GroupId(group));
    let muted = s
        .app()
        .store
        .messages()
        .set_muted(carol.user_id, &conv, true);
    assert!(muted.await.expect("mute"), "carol has the conversation");

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

    publish_mention(&s, group, &alice, &[&carol]).await;
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
    // Published after the plain message, in the same conversation (so
    // consumed after it): once carol's call is in, the plain one had none.
    publish_mention(&s, group, &alice, &[&carol]).await;
    hook.until(WAIT, |c| has_call_for(c, carol.user_id.0)).await;
    tokio::time::sleep(QUIET).await;
    let calls = hook.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].body["user"], carol.user_id.0);
    assert_eq!(calls[0].body["mentioned"], true);
}
