//! Mentions and conversation mute (docs/protocol.md §5.11): a group
//! message names members or `@all` (owners and admins only), the mention
//! travels with the message over both transports and sync, and each
//! member's mention count beside unread is exact: raised by a mention,
//! cleared by reading past it or by its recall. Mute is a member's own
//! flag on a conversation.

mod common;

use common::*;
use magpie_core::{ClientMsgId, ConvId, GroupId, Seq, UserId};
use magpie_proto::http::Tokens;
use magpie_proto::{ClientOp, ErrorCode, ServerFrame};
use serde_json::{Value, json};

/// A send to group `g` (or, with `to`, a direct one), mentioning
/// `users` and everyone with `all`, editing or recalling `revise`.
struct Send<'a> {
    g: i64,
    to: Option<UserId>,
    body: &'a str,
    users: &'a [UserId],
    all: bool,
    edit: Option<Seq>,
    recall: Option<Seq>,
}

impl Send<'_> {
    fn op(self) -> ClientOp {
        ClientOp::Send {
            to: self.to.unwrap_or(UserId(0)),
            cmid: ClientMsgId::new_v7(),
            body: self.body.into(),
            persistence: None,
            group: self.to.is_none().then_some(GroupId(self.g)),
            chain: None,
            traceparent: None,
            sample: false,
            reply_to: None,
            edit: self.edit,
            recall: self.recall,
            mentions: self.users.to_vec(),
            mention_all: self.all,
        }
    }
}

fn mention(g: i64, body: &str, users: &[UserId], all: bool) -> ClientOp {
    Send {
        g,
        to: None,
        body,
        users,
        all,
        edit: None,
        recall: None,
    }
    .op()
}

fn refused(f: ServerFrame, want: ErrorCode, what: &str) {
    match f {
        ServerFrame::Error { code, fatal, .. } => {
            assert_eq!((code, fatal), (want, false), "{what}")
        }
        other => panic!("{what}: expected {want:?}, got {other:?}"),
    }
}

/// `who`'s entry for `conv` in `GET /v1/unread`.
async fn unread_of(s: &TestServer, who: &Tokens, conv: &ConvId) -> Value {
    let (st, body) = s.get(who, "/v1/unread").await;
    assert_eq!(st, 200, "{body}");
    let convs = body["convs"].as_array().expect("convs").clone();
    convs
        .into_iter()
        .find(|c| c["conv"] == conv.as_str())
        .unwrap_or_else(|| panic!("{conv} not in {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn mentions_raise_an_exact_count_beside_unread_on_both_transports() {
    let s = TestServer::start().await;
    let [to, tb, tc] = s.users(["owner", "bob", "carol"]).await;
    let (bob, carol) = (tb.user_id, tc.user_id);
    let g = s.create_group(&to, &[bob, carol]).await;
    let conv = ConvId::group(GroupId(g));
    let mut o = s.conn(&to, "ws").await;
    let mut b = s.conn(&tb, "tcp").await;
    let mut c = s.conn(&tc, "ws").await;

    // A named mention, pushed to a TCP device with its meta.
    let (_, first, _) = sent_seq(&o.request(mention(g, "@bob look", &[bob, bob], false)).await);
    let got = b.expect_msg().await;
    assert_eq!(got.seq, first);
    assert_eq!(got.meta.as_ref().expect("meta").mentions, vec![bob]);
    // `@all` from the owner over HTTP: one mention each, however named.
    let body = json!({"group": g, "cmid": ClientMsgId::new_v7(), "body": "@all meeting",
                      "mentions": [bob], "mention_all": true});
    let (st, sent) = s.send_json(&to, "POST", "/v1/messages", body).await;
    assert_eq!(st, 200, "{sent}");
    let all_seq: Seq = sent["seq"].as_i64().unwrap();
    let got = loop {
        let m = c.expect_msg().await;
        if m.seq == all_seq {
            break m;
        }
    };
    assert!(got.meta.as_ref().expect("meta").mention_all);

    let bu = unread_of(&s, &tb, &conv).await;
    assert_eq!(
        (bu["unread"].as_i64(), bu["mentions"].as_i64()),
        (Some(2), Some(2))
    );
    let cu = unread_of(&s, &tc, &conv).await;
    assert_eq!(
        (cu["unread"].as_i64(), cu["mentions"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        unread_of(&s, &to, &conv).await["mentions"],
        0,
        "not one's own"
    );

    // Reading past a mention clears it; a recall takes it back.
    let (st, _) = s
        .send_json(
            &tb,
            "POST",
            &format!("/v1/conversations/{conv}/read"),
            json!({"seq": first}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(unread_of(&s, &tb, &conv).await["mentions"], 1);
    let recall = Send {
        g,
        to: None,
        body: "",
        users: &[],
        all: false,
        edit: None,
        recall: Some(all_seq),
    }
    .op();
    sent_seq(&o.request(recall).await);
    assert_eq!(unread_of(&s, &tb, &conv).await["mentions"], 0, "recalled");
    assert_eq!(unread_of(&s, &tc, &conv).await["mentions"], 0, "recalled");

    // A device that was offline sees the mentions by sync.
    let mut late = s.conn(&tc, "tcp").await;
    let synced = late.sync_all(&conv, 0).await;
    assert_eq!(synced[0].meta.as_ref().expect("kept").mentions, vec![bob]);
}

#[tokio::test(flavor = "multi_thread")]
async fn mentions_are_refused_outside_their_rules() {
    let s = TestServer::start().await;
    let [to, tb, tc] = s.users(["owner", "bob", "carol"]).await;
    let (bob, carol) = (tb.user_id, tc.user_id);
    let g = s.create_group(&to, &[bob, carol]).await;
    let mut b = s.conn(&tb, "ws").await;
    let mut o = s.conn(&to, "tcp").await;
    refused(
        b.request(mention(g, "@all hi", &[], true)).await,
        ErrorCode::Forbidden,
        "@all by a plain member",
    );
    let direct = Send {
        g,
        to: Some(carol),
        body: "@carol",
        users: &[carol],
        all: false,
        edit: None,
        recall: None,
    }
    .op();
    refused(
        b.request(direct).await,
        ErrorCode::BadField,
        "a mention in a direct chat",
    );
    let many: Vec<UserId> = (1..=101).map(UserId).collect();
    refused(
        o.request(mention(g, "crowd", &many, false)).await,
        ErrorCode::BadField,
        "more than 100 names",
    );
    let (_, seq, _) = sent_seq(&b.request(mention(g, "@carol", &[carol], false)).await);
    let edit = Send {
        g,
        to: None,
        body: "@carol!",
        users: &[carol],
        all: false,
        edit: Some(seq),
        recall: None,
    }
    .op();
    refused(
        b.request(edit).await,
        ErrorCode::BadField,
        "mentions in an edit",
    );
    // Admins may: the owner makes bob one.
    let path = format!("/v1/groups/{g}/members/{bob}");
    let (st, body) = s
        .send_json(&to, "PATCH", &path, json!({"role": "admin"}))
        .await;
    assert_eq!(st, 200, "{body}");
    sent_seq(&b.request(mention(g, "@all now", &[], true)).await);
    let conv = ConvId::group(GroupId(g));
    assert_eq!(unread_of(&s, &tc, &conv).await["mentions"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_mutes_a_conversation_of_theirs_only() {
    let s = TestServer::start().await;
    let [ta, tb, tc] = s.users(["alice", "bob", "carol"]).await;
    let g = s.create_group(&ta, &[tb.user_id]).await;
    let group = ConvId::group(GroupId(g));
    let direct = ConvId::direct(ta.user_id, tb.user_id);
    let mut a = s.conn(&ta, "ws").await;
    sent_seq(&a.send_msg(tb.user_id, "hi").await);
    let mute = |t: &Tokens, conv: &ConvId, on: bool| {
        let (s, t, path) = (&s, t.clone(), format!("/v1/conversations/{conv}/mute"));
        async move { s.send_json(&t, "PUT", &path, json!({"muted": on})).await }
    };
    for conv in [&group, &direct] {
        let (st, body) = mute(&tb, conv, true).await;
        assert_eq!((st, body["muted"].as_bool()), (200, Some(true)), "{body}");
        assert_eq!(unread_of(&s, &tb, conv).await["muted"], true);
        assert_eq!(
            unread_of(&s, &ta, conv).await["muted"],
            false,
            "bob's alone"
        );
    }
    assert_eq!(mute(&tb, &direct, false).await.0, 200);
    assert_eq!(unread_of(&s, &tb, &direct).await["muted"], false);
    assert_eq!(mute(&tc, &group, true).await.0, 404, "not carol's group");
    assert_eq!(mute(&tc, &direct, true).await.0, 404, "not carol's chat");
}
