//! Replies, edits and recalls (docs/protocol.md §5.10): sequenced events of
//! their conversation, pushed over both transports, converged on by an
//! offline device through sync, reflected in history and search; refused
//! outside their windows, by anyone but the sender (a group's admins may
//! recall), on a recalled message, and idempotent by client id.

mod common;

use common::*;
use magpie_core::{ClientMsgId, ConvId, GroupId, Message, Seq, UserId};
use magpie_proto::{ClientOp, ErrorCode, ServerFrame};
use serde_json::json;

/// A send op to `to` (or `group`) with references.
fn op(to: UserId, group: Option<i64>, body: &str, refs: [Option<Seq>; 3]) -> ClientOp {
    let [reply_to, edit, recall] = refs;
    ClientOp::Send {
        to,
        cmid: ClientMsgId::new_v7(),
        body: body.into(),
        persistence: None,
        group: group.map(GroupId),
        chain: None,
        traceparent: None,
        sample: false,
        reply_to,
        edit,
        recall,
        mentions: Vec::new(),
        mention_all: false,
    }
}

fn edit(seq: Seq) -> [Option<Seq>; 3] {
    [None, Some(seq), None]
}
fn recall(seq: Seq) -> [Option<Seq>; 3] {
    [None, None, Some(seq)]
}
fn reply(seq: Seq) -> [Option<Seq>; 3] {
    [Some(seq), None, None]
}

fn refused(f: ServerFrame, want: ErrorCode, what: &str) {
    match f {
        ServerFrame::Error { code, fatal, .. } => {
            assert_eq!((code, fatal), (want, false), "{what}")
        }
        other => panic!("{what}: expected {want:?}, got {other:?}"),
    }
}

/// The pushed message with sequence `seq` (earlier pushes acknowledged).
async fn pushed(c: &mut Conn, seq: Seq) -> Message {
    loop {
        let m = c.expect_msg().await;
        if m.seq == seq {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_recalls_and_replies_reach_the_peer_and_an_offline_device_by_sync() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let (alice, bob) = (ta.user_id, tb.user_id);
    let conv = ConvId::direct(alice, bob);
    let mut next = 0;
    for (from, to) in [("ws", "tcp"), ("tcp", "ws")] {
        let mut a = s.conn(&ta, from).await;
        let mut b = s.conn(&tb, to).await;
        let (_, first, _) = sent_seq(&a.send_msg(bob, "teh plan").await);
        let (_, second, _) = sent_seq(&a.send_msg(bob, "oops, wrong chat").await);
        assert_eq!((first, second), (next + 1, next + 2));
        pushed(&mut b, second).await;

        let (_, e, _) = sent_seq(&a.request(op(bob, None, "the plan", edit(first))).await);
        let got = pushed(&mut b, e).await;
        assert_eq!(got.body, "the plan");
        assert_eq!(got.meta.as_ref().and_then(|m| m.edit_of), Some(first));

        let (_, r, _) = sent_seq(&a.request(op(bob, None, "", recall(second))).await);
        let got = pushed(&mut b, r).await;
        assert_eq!(got.meta.as_ref().and_then(|m| m.recall_of), Some(second));

        let (_, re, _) = sent_seq(&b.request(op(alice, None, "agreed", reply(first))).await);
        let got = pushed(&mut a, re).await;
        assert_eq!(got.meta.as_ref().and_then(|m| m.reply_to), Some(first));
        assert_eq!((e, r, re), (next + 3, next + 4, next + 5), "{from}→{to}");
        next = re;
    }

    // A device that was offline throughout converges by sync alone: the
    // revised messages as they are now, and the events that revised them.
    let mut late = s.conn(&tb, "ws").await;
    let all = late.sync_all(&conv, 0).await;
    assert_eq!(all.len(), 10);
    let (edited, recalled) = (&all[0], &all[1]);
    assert_eq!(edited.body, "the plan");
    assert!(edited.meta.as_ref().unwrap().edited_at.is_some());
    assert_eq!(recalled.body, "", "a recalled text is gone");
    assert!(recalled.meta.as_ref().unwrap().recalled);
    assert_eq!(all[2].meta.as_ref().unwrap().edit_of, Some(1));
    assert_eq!(all[3].meta.as_ref().unwrap().recall_of, Some(2));
    assert_eq!(all[4].meta.as_ref().unwrap().reply_to, Some(1));
    assert!(all[4].meta.as_ref().unwrap().edited_at.is_none());

    // History over HTTP says the same.
    let (st, page) = s.history(&ta, &conv, "?after=0&limit=100").await;
    assert_eq!(st, 200, "{page}");
    let msgs = page["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["body"], "the plan");
    assert!(msgs[0]["meta"]["edited_at"].as_i64().is_some(), "{page}");
    assert_eq!(msgs[1]["meta"]["recalled"], true);
    assert_eq!(msgs[2]["meta"]["edit_of"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn revisions_are_refused_outside_their_rules_and_a_retry_is_idempotent() {
    let s = TestServer::start_with(|c| c.messages.edit_window_secs = 0).await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let bob = tb.user_id;
    let mut a = s.conn(&ta, "tcp").await;
    let mut b = s.conn(&tb, "ws").await;
    let (_, m, _) = sent_seq(&a.send_msg(bob, "hello").await);

    refused(
        a.request(op(bob, None, "hi", edit(m))).await,
        ErrorCode::Forbidden,
        "an edit after edit_window_secs (0)",
    );
    refused(
        b.request(op(ta.user_id, None, "", recall(m))).await,
        ErrorCode::Forbidden,
        "a recall by the receiver",
    );
    refused(
        a.request(op(bob, None, "not empty", recall(m))).await,
        ErrorCode::BadField,
        "a recall with a body",
    );
    refused(
        a.request(op(bob, None, "x", [Some(m), None, Some(m)]))
            .await,
        ErrorCode::BadField,
        "a reply and a recall at once",
    );
    refused(
        a.request(op(bob, None, "x", reply(m + 50))).await,
        ErrorCode::NotFound,
        "a reply to no message",
    );

    // A recall within the window, retried with the same client id: one
    // event, the original answer.
    let again = op(bob, None, "", recall(m));
    let (id, r, dup) = sent_seq(&a.request(again.clone()).await);
    assert!(!dup);
    let (id2, r2, dup2) = sent_seq(&a.request(again).await);
    assert_eq!((id2, r2, dup2), (id, r, true));
    refused(
        a.request(op(bob, None, "", recall(m))).await,
        ErrorCode::Conflict,
        "a second recall of a recalled message",
    );
    refused(
        a.request(op(bob, None, "", recall(r))).await,
        ErrorCode::BadField,
        "a recall of a recall event",
    );
    let conv = ConvId::direct(ta.user_id, bob);
    assert_eq!(
        b.sync_all(&conv, 0).await.len(),
        2,
        "nothing refused was stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn group_admins_recall_any_message_members_only_their_own() {
    let s = TestServer::start_with(|c| c.messages.recall_window_secs = 0).await;
    let [to, tm, tn] = s.users(["owner", "member", "other"]).await;
    let g = s.create_group(&to, &[tm.user_id, tn.user_id]).await;
    let conv = ConvId::group(GroupId(g));
    let mut m = s.conn(&tm, "ws").await;
    let mut n = s.conn(&tn, "tcp").await;
    let (_, seq, _) = sent_seq(&m.send_group(g, "spam").await);
    refused(
        n.request(op(UserId(0), Some(g), "", recall(seq))).await,
        ErrorCode::Forbidden,
        "a member recalling another's message",
    );
    refused(
        m.request(op(UserId(0), Some(g), "", recall(seq))).await,
        ErrorCode::Forbidden,
        "the sender after recall_window_secs (0)",
    );
    // The owner moderates, over HTTP, whatever the window.
    let body = json!({"group": g, "cmid": ClientMsgId::new_v7(), "body": "", "recall": seq});
    let (st, sent) = s.send_json(&to, "POST", "/v1/messages", body).await;
    assert_eq!(st, 200, "{sent}");
    let recall_seq = sent["seq"].as_i64().unwrap();
    let got = pushed(&mut n, recall_seq).await;
    assert_eq!(got.meta.unwrap().recall_of, Some(seq));
    let all = n.sync_all(&conv, 0).await;
    assert!(all[0].meta.as_ref().unwrap().recalled);
    assert_eq!(all[0].body, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn search_follows_edits_and_recalls() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let bob = tb.user_id;
    let mut a = s.conn(&ta, "ws").await;
    let (_, first, _) = sent_seq(&a.send_msg(bob, "meet at the harbour").await);
    let (_, second, _) = sent_seq(&a.send_msg(bob, "secret password 鲍勃").await);
    a.request(op(bob, None, "meet at the station", edit(first)))
        .await;
    a.request(op(bob, None, "", recall(second))).await;
    let found = |text: &'static str| {
        let (s, tb) = (&s, &tb);
        async move {
            let (st, page) = s.get(tb, &format!("/v1/search?text={text}")).await;
            assert_eq!(st, 200, "{page}");
            page["hits"].as_array().unwrap().len()
        }
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = (
            found("station").await,
            found("harbour").await,
            found("password").await,
        );
        if now == (1, 0, 0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "station, harbour, password found {now:?} times; (1, 0, 0) expected"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
