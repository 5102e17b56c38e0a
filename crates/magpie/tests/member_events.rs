//! Member events (docs/protocol.md §3.14, "Member events"): every change of
//! a group's members, roles, name or owner is a message of the system user
//! in the group's conversation — sequenced in order with the members'
//! messages, pushed over both transports, synced to a device that was
//! away, counted as unread — and never something a client can send.

mod common;

use common::*;
use magpie_core::{ConvId, GroupId, GroupRole, MemberEvent, Message, UserId};
use serde_json::json;

/// The next message pushed to `c` (earlier pushes acknowledged).
async fn next_event(c: &mut Conn) -> (i64, MemberEvent) {
    let m: Message = c.expect_msg().await;
    assert_eq!(m.from, UserId::SYSTEM, "{m:?}");
    let event = m.meta.and_then(|m| m.event).expect("a member event");
    (m.seq, event)
}

#[tokio::test(flavor = "multi_thread")]
async fn member_events_are_sequenced_messages_of_the_group() {
    let s = TestServer::start().await;
    let [to, ta, tb] = s.users(["owner", "alice", "bob"]).await;
    let (o, a, b) = (to.user_id, ta.user_id, tb.user_id);
    let g = s.create_group(&to, &[a]).await;
    let conv = ConvId::group(GroupId(g));
    let mut ca = s.conn(&ta, "tcp").await;
    let mut co = s.conn(&to, "ws").await;
    let call = |t: &magpie_proto::http::Tokens, method: &'static str, path: String, body| {
        let (s, t) = (&s, t.clone());
        async move { s.send_json(&t, method, &path, body).await }
    };

    let (st, r) = call(
        &to,
        "POST",
        format!("/v1/groups/{g}/members"),
        json!({"users": [b]}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        next_event(&mut ca).await,
        (
            1,
            MemberEvent::Joined {
                users: vec![b],
                by: o
            }
        )
    );
    let (_, seq, _) = sent_seq(&co.send_group(g, "welcome").await);
    assert_eq!(seq, 2, "events and messages share one sequence");

    let member = |u: UserId| format!("/v1/groups/{g}/members/{u}");
    assert_eq!(
        call(&to, "PATCH", member(a), json!({"role": "admin"}))
            .await
            .0,
        200
    );
    let role = MemberEvent::Role {
        user: a,
        role: GroupRole::Admin,
        by: o,
    };
    // The owner's device: the events, not its own message.
    let joined = MemberEvent::Joined {
        users: vec![b],
        by: o,
    };
    assert_eq!(next_event(&mut co).await, (1, joined));
    assert_eq!(next_event(&mut co).await, (3, role));
    assert_eq!(
        call(
            &ta,
            "PATCH",
            format!("/v1/groups/{g}"),
            json!({"name": "trip"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&ta, "DELETE", member(b), serde_json::Value::Null)
            .await
            .0,
        204
    );
    let (st, _) = call(
        &to,
        "POST",
        format!("/v1/groups/{g}/members"),
        json!({"users": [b]}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        call(&tb, "DELETE", member(b), serde_json::Value::Null)
            .await
            .0,
        204
    );
    assert_eq!(
        call(
            &to,
            "PUT",
            format!("/v1/groups/{g}/owner"),
            json!({"user": a})
        )
        .await
        .0,
        200
    );
    // Nothing changed, nothing announced: a role set to what it is.
    assert_eq!(
        call(&ta, "PATCH", member(o), json!({"role": "admin"}))
            .await
            .0,
        200
    );

    let want = vec![
        MemberEvent::Joined {
            users: vec![b],
            by: o,
        },
        MemberEvent::Role {
            user: a,
            role: GroupRole::Admin,
            by: o,
        },
        MemberEvent::Renamed {
            name: "trip".into(),
            by: a,
        },
        MemberEvent::Removed { user: b, by: a },
        MemberEvent::Joined {
            users: vec![b],
            by: o,
        },
        MemberEvent::Left { user: b },
        MemberEvent::Owner { from: o, to: a },
    ];
    // A device that was away converges by sync: every event in order.
    let o2 = s.login("owner", "laptop").await;
    let mut late = s.conn(&o2, "tcp").await;
    let all = late.sync_all(&conv, 0).await;
    let events: Vec<MemberEvent> = all.iter().filter_map(|m| m.meta.clone()?.event).collect();
    assert_eq!(events, want);
    let seqs: Vec<i64> = all.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>(), "contiguous");
    assert_eq!(
        all[2].body, "owner made alice admin",
        "names as frames show them"
    );
    // Alice heard them live, in order, over TCP.
    for (i, e) in want.iter().enumerate().skip(1) {
        let seq = if i == 1 { 3 } else { i as i64 + 2 };
        if i == 1 {
            assert_eq!(ca.expect_msg().await.body, "welcome");
        }
        assert_eq!(next_event(&mut ca).await, (seq, e.clone()));
    }
    // Events count as unread like messages: the owner read nothing since
    // "welcome" (2), so six are unread.
    let (_, u) = s.get(&to, "/v1/unread").await;
    let entry = u["convs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conv"] == conv.as_str());
    assert_eq!(entry.expect("the group")["unread"], 6, "{u}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_cannot_send_a_member_event() {
    let s = TestServer::start().await;
    let [to, ta] = s.users(["owner", "alice"]).await;
    let g = s.create_group(&to, &[ta.user_id]).await;
    let forged = json!({"group": g, "cmid": magpie_core::ClientMsgId::new_v7(), "body": "x",
                        "meta": {"event": {"kind": "left", "user": ta.user_id}},
                        "event": {"kind": "left", "user": ta.user_id}});
    let (st, body) = s.send_json(&to, "POST", "/v1/messages", forged).await;
    // Unknown fields are ignored (docs/protocol.md §4): a plain message.
    assert_eq!(st, 200, "{body}");
    let conv = ConvId::group(GroupId(g));
    let (_, page) = s.history(&ta, &conv, "?limit=5").await;
    assert!(page["messages"][0]["meta"].is_null(), "{page}");
    assert_eq!(page["messages"][0]["from"], to.user_id.0);
}
