//! Groups end to end: the permission rules (each refused case), chat over
//! both transports and HTTP, joins and leaves, exact unread counts and
//! read-by lists (a scripted 50-member group, across restarts).

mod common;
use common::*;
use magpie_core::{ConvId, UserId};
use magpie_proto::ServerFrame;
use magpie_proto::http::Tokens;
use serde_json::{Value, json};
use std::collections::BTreeSet;

async fn create(s: &TestServer, owner: &Tokens, members: &[&Tokens]) -> i64 {
    let ids: Vec<i64> = members.iter().map(|t| t.user_id.0).collect();
    let (st, body) = s
        .send_json(
            owner,
            "POST",
            "/v1/groups",
            json!({"name": "team", "members": ids}),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    body["id"].as_i64().unwrap()
}

/// The error code of a refused call, with its status.
fn code(r: &(u16, Value)) -> (u16, &str) {
    (r.0, r.1["error"]["code"].as_str().unwrap_or(""))
}

/// Each call (as whom, method, path, body), in order, is refused with
/// `want` (status, code).
async fn all_refused(
    s: &TestServer,
    want: (u16, &str),
    cases: Vec<(&Tokens, &str, String, Option<Value>)>,
) {
    for (t, method, path, body) in cases {
        let r = s.call(method, &path, Some(&t.access_token), body).await;
        assert_eq!(code(&r), want, "{method} {path}");
    }
}

fn group_send(g: i64, body: &str) -> Value {
    json!({"group": g, "cmid": magpie_core::ClientMsgId::new_v7(), "body": body})
}

#[tokio::test(flavor = "multi_thread")]
async fn only_members_see_and_only_managers_manage() {
    let s = TestServer::start().await;
    let [o, a, b, x] = s.users(["owner", "alice", "bob", "mallory"]).await;
    let g = create(&s, &o, &[&a, &b]).await;
    let path = |p: &str| format!("/v1/groups/{g}{p}");
    let call = |t: &Tokens, m: &'static str, p: String, body: Option<Value>| {
        let token = t.access_token.clone();
        let s = &s;
        async move { s.call(m, &p, Some(&token), body).await }
    };
    let forbidden = (403, "forbidden");
    let msgs = || "/v1/messages".to_string();
    let member = |u: &Tokens| path(&format!("/members/{}", u.user_id));
    // A non-member can neither send, nor read history, nor see the group,
    // its members or a read-by list (edge_findings.rs: as if there were none).
    let cases = vec![(&x, "POST", msgs(), Some(group_send(g, "hi")))];
    all_refused(&s, forbidden, cases).await;
    let ok = call(&o, "POST", msgs(), Some(group_send(g, "m1"))).await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    let conv = ConvId::group(magpie_core::GroupId(g));
    let r = call(
        &x,
        "GET",
        format!("/v1/conversations/{conv}/messages"),
        None,
    )
    .await;
    assert_eq!(r.0, 404, "history of a group one is not in: {}", r.1);
    // The group itself is hidden: it answers like one that does not exist.
    let hidden = ["", "/members", "/messages/1/read_by"].map(|p| (&x, "GET", path(p), None));
    all_refused(&s, (404, "not_found"), hidden.into()).await;
    let read = Some(json!({"seq": 1}));
    let r = call(&x, "POST", format!("/v1/conversations/{conv}/read"), read).await;
    assert_eq!(r.0, 404, "read of a group one is not in: {}", r.1);
    // A plain member does not manage.
    let cases = vec![
        (&a, "PATCH", path(""), Some(json!({"name": "mine"}))),
        (
            &a,
            "POST",
            path("/members"),
            Some(json!({"users": [x.user_id]})),
        ),
        (&a, "DELETE", member(&b), None),
        (&a, "PATCH", member(&b), Some(json!({"muted": true}))),
        (&a, "DELETE", path(""), None),
    ];
    all_refused(&s, forbidden, cases).await;
    // The owner makes alice an admin: she adds and mutes, but cannot touch
    // the owner, change roles, or dissolve.
    let r = call(&o, "PATCH", member(&a), Some(json!({"role": "admin"}))).await;
    assert_eq!((r.0, r.1["role"].as_str()), (200, Some("admin")));
    let add = Some(json!({"users": [x.user_id]}));
    let r = call(&a, "POST", path("/members"), add).await;
    assert_eq!((r.0, r.1["added"].clone()), (200, json!([x.user_id])));
    let r = call(&a, "PATCH", member(&b), Some(json!({"muted": true}))).await;
    assert_eq!((r.0, r.1["muted"].as_bool()), (200, Some(true)));
    let cases = vec![
        // A muted member cannot send.
        (&b, "POST", msgs(), Some(group_send(g, "muted"))),
        (&a, "DELETE", member(&o), None),
        (&a, "PATCH", member(&b), Some(json!({"role": "admin"}))),
        (&a, "DELETE", path(""), None),
    ];
    all_refused(&s, forbidden, cases).await;
    // No second owner.
    let cases = vec![(&o, "PATCH", member(&b), Some(json!({"role": "owner"})))];
    all_refused(&s, (400, "bad_field"), cases).await;
    // The owner cannot leave; a member can, and is out at once.
    all_refused(&s, forbidden, vec![(&o, "DELETE", member(&o), None)]).await;
    let r = call(&x, "DELETE", member(&x), None).await;
    assert_eq!(r.0, 204, "{}", r.1);
    let cases = vec![(&x, "POST", msgs(), Some(group_send(g, "back?")))];
    all_refused(&s, forbidden, cases).await;
    // Dissolved: nobody sends, the owner included.
    let r = call(&o, "DELETE", path(""), None).await;
    assert_eq!(r.0, 204, "{}", r.1);
    let cases = vec![(&o, "POST", msgs(), Some(group_send(g, "anyone?")))];
    all_refused(&s, forbidden, cases).await;
    let r = call(&o, "GET", path(""), None).await;
    assert_eq!((r.0, r.1["dissolved"].as_bool()), (200, Some(true)));
}

#[tokio::test(flavor = "multi_thread")]
async fn group_chat_reaches_members_on_both_transports() {
    // Sequences are counted message by message: membership changes are not
    // announced here (`member_events_are_sequenced_messages_of_the_group`).
    let s = TestServer::start_with(|c| c.groups.member_events = false).await;
    let [o, a, b] = s.users(["owner", "alice", "bob"]).await;
    let g = create(&s, &o, &[&a]).await;
    let conv = ConvId::group(magpie_core::GroupId(g));
    let mut co = s.conn(&o, "ws").await;
    let mut ca = s.conn(&a, "tcp").await;
    let o2 = s.login("owner", "laptop").await;
    let mut co2 = s.conn(&o2, "tcp").await;
    let (_, seq, _) = sent_seq(&co.send_group(g, "hello group").await);
    assert_eq!(seq, 1);
    for c in [&mut ca, &mut co2] {
        let m = c.expect_msg().await;
        assert_eq!(
            (m.conv.clone(), m.seq, m.from, m.body.as_str()),
            (conv.clone(), 1, o.user_id, "hello group")
        );
    }
    let (_, seq, _) = sent_seq(&ca.send_group(g, "hi from alice").await);
    assert_eq!(seq, 2);
    assert_eq!(co.expect_msg().await.body, "hi from alice");
    // Bob joins later: he sees from his join on, and nothing before.
    let (st, _) = s
        .send_json(
            &o,
            "POST",
            &format!("/v1/groups/{g}/members"),
            json!({"users": [b.user_id]}),
        )
        .await;
    assert_eq!(st, 200);
    let mut cb = s.conn(&b, "ws").await;
    sent_seq(&co.send_group(g, "welcome bob").await);
    assert_eq!(cb.expect_msg().await.body, "welcome bob");
    assert_eq!(ca.expect_msg().await.body, "welcome bob");
    let convs = cb.sync(&[], 10).await;
    let mine = convs
        .iter()
        .find(|c| c.conv == conv)
        .expect("group in sync");
    let seqs: Vec<i64> = mine.messages.iter().map(|m| m.seq).collect();
    assert_eq!((seqs, mine.unavailable.clone()), (vec![3], vec![]));
    // Unread: alice has read her own and nothing since; bob has one.
    let unread = |t: &Tokens| {
        let token = t.access_token.clone();
        let s = &s;
        async move { s.call("GET", "/v1/unread", Some(&token), None).await.1["total"].as_i64() }
    };
    assert_eq!(unread(&a).await, Some(1));
    assert_eq!(unread(&b).await, Some(1));
    assert_eq!(unread(&o).await, Some(0));
    let r = ca
        .request(magpie_proto::ClientOp::Read {
            conv: conv.clone(),
            seq: 3,
        })
        .await;
    assert!(matches!(r, ServerFrame::ReadOk { seq: 3, .. }), "{r:?}");
    assert_eq!(unread(&a).await, Some(0));
    // The owner hears of it once, coalesced, with the counts.
    let f = co
        .expect(|f| matches!(f, ServerFrame::GroupReceipt { .. }))
        .await;
    assert_eq!(
        f,
        ServerFrame::GroupReceipt {
            conv: conv.clone(),
            seq: 3,
            read: 2,
            unread: 1
        }
    );
    // Read-by of message 3: the owner (sender) and alice; bob has not.
    let (_, rb) = s
        .get(&b, &format!("/v1/groups/{g}/messages/3/read_by"))
        .await;
    assert_eq!(
        (rb["read"].as_i64(), rb["unread"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(rb["users"], json!([o.user_id, a.user_id]));
    // History over HTTP, newest first, from each member's join on.
    for (t, want) in [(&a, vec![3, 2, 1]), (&b, vec![3])] {
        let (st, page) = s.history(t, &conv, "?limit=10").await;
        assert_eq!(st, 200, "{page}");
        let seqs: Vec<i64> = page_seqs(&page);
        assert_eq!(seqs, want);
    }
    // Bob leaves: the next message no longer reaches him.
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/groups/{g}/members/{}", b.user_id),
            Some(&b.access_token),
            None,
        )
        .await;
    assert_eq!(st, 204);
    sent_seq(&co.send_group(g, "after bob").await);
    assert_eq!(ca.expect_msg().await.body, "after bob");
    assert!(
        !matches!(
            cb.try_recv(std::time::Duration::from_millis(300)).await,
            Ok(Some(ServerFrame::Msg { .. }))
        ),
        "a member who left still got a push"
    );
}

/// 50 members, 10 messages, reads scripted in an interleaved order; every
/// read-by list and count is checked against the script, before and after a
/// restart.
#[tokio::test(flavor = "multi_thread")]
async fn read_by_lists_are_exact_in_a_50_member_group_across_restarts() {
    const MEMBERS: usize = 50;
    const MSGS: i64 = 10;
    let mut s = TestServer::start().await;
    let mut users = Vec::new();
    for i in 0..MEMBERS {
        users.push(s.user(&format!("m{i:02}"), "phone").await);
    }
    let others: Vec<&Tokens> = users[1..].iter().collect();
    let g = create(&s, &users[0], &others).await;
    let conv = ConvId::group(magpie_core::GroupId(g));
    for i in 0..MSGS {
        let (st, body) = s
            .call(
                "POST",
                "/v1/messages",
                Some(&users[0].access_token),
                Some(group_send(g, &format!("m{i}"))),
            )
            .await;
        assert_eq!((st, body["seq"].as_i64()), (200, Some(i + 1)));
    }
    // Member i reads up to (i * 7) % 11 (0 = not at all), in a shuffled order,
    // some twice (a lower second read must not move them back).
    let mut pos = vec![0i64; MEMBERS];
    pos[0] = MSGS; // the sender
    let order: Vec<usize> = (1..MEMBERS).map(|k| (k * 17) % (MEMBERS - 1) + 1).collect();
    for &i in &order {
        let target = ((i * 7) % 11) as i64;
        for seq in [target, target / 2] {
            if seq == 0 {
                continue;
            }
            let (st, body) = s
                .call(
                    "POST",
                    &format!("/v1/conversations/{conv}/read"),
                    Some(&users[i].access_token),
                    Some(json!({"seq": seq})),
                )
                .await;
            assert_eq!(st, 200, "{body}");
            pos[i] = pos[i].max(seq);
        }
    }
    for round in 0..2 {
        for seq in 1..=MSGS {
            let want: BTreeSet<i64> = (0..MEMBERS)
                .filter(|&i| pos[i] >= seq)
                .map(|i| users[i].user_id.0)
                .collect();
            let mut got = BTreeSet::new();
            let mut after = 0;
            loop {
                let (st, body) = s
                    .call(
                        "GET",
                        &format!("/v1/groups/{g}/messages/{seq}/read_by?limit=7&after={after}"),
                        Some(&users[3].access_token),
                        None,
                    )
                    .await;
                assert_eq!(st, 200, "{body}");
                assert_eq!(
                    body["read"].as_i64(),
                    Some(want.len() as i64),
                    "count of readers of {seq}"
                );
                assert_eq!(body["unread"].as_i64(), Some((MEMBERS - want.len()) as i64));
                got.extend(
                    body["users"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|u| u.as_i64().unwrap()),
                );
                match body["next"].as_i64() {
                    Some(n) => after = n,
                    None => break,
                }
            }
            assert_eq!(got, want, "readers of message {seq} (round {round})");
        }
        for (i, t) in users.iter().enumerate() {
            let (_, u) = s.get(t, "/v1/unread").await;
            assert_eq!(
                u["total"].as_i64(),
                Some(MSGS - pos[i]),
                "unread of member {i}"
            );
        }
        s.restart().await;
    }
    let _ = UserId(0);
}

/// Group unread counts in the total whatever the device's unread mode (the
/// total-only answer reads group positions beside the direct-chat cache).
#[tokio::test(flavor = "multi_thread")]
async fn group_unread_counts_in_every_unread_mode() {
    let s = TestServer::start().await;
    let [a, b] = s.users(["alice", "bob"]).await;
    let g = create(&s, &a, &[&b]).await;
    for body in ["g1", "g2"] {
        let (st, _) = s
            .send_json(&a, "POST", "/v1/messages", group_send(g, body))
            .await;
        assert_eq!(st, 200);
    }
    s.http_send(&a, b.user_id, magpie_core::ClientMsgId::new_v7(), "direct")
        .await;
    // Both a receiver and a group, or neither: refused, nothing stored.
    let mut both = group_send(g, "both");
    both["to"] = json!(b.user_id);
    let r = s.send_json(&a, "POST", "/v1/messages", both).await;
    assert_eq!(code(&r), (400, "bad_field"), "{}", r.1);
    let neither = json!({"cmid": magpie_core::ClientMsgId::new_v7(), "body": "x"});
    let r = s.send_json(&a, "POST", "/v1/messages", neither).await;
    assert_eq!(code(&r), (400, "bad_field"), "{}", r.1);
    for (mode, convs) in [("per_conversation", 2), ("total_only", 0)] {
        s.set_settings(&b, "", json!({"unread_mode": mode})).await;
        let (_, u) = s.get(&b, "/v1/unread").await;
        assert_eq!(
            (u["total"].as_i64(), u["convs"].as_array().unwrap().len()),
            (Some(3), convs),
            "{mode}: {u}"
        );
    }
}

/// The owner hands the group to a member (docs/protocol.md §3.14): the new
/// owner manages it as owner, the old one is an admin; nobody else may.
#[tokio::test(flavor = "multi_thread")]
async fn ownership_is_handed_to_a_member() {
    let s = TestServer::start().await;
    let [to, tm, tx] = s.users(["owner", "member", "outsider"]).await;
    let g = s.create_group(&to, &[tm.user_id]).await;
    let path = format!("/v1/groups/{g}/owner");
    let (st, body) = s
        .send_json(&tm, "PUT", &path, json!({"user": tm.user_id}))
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (st, body) = s
        .send_json(&to, "PUT", &path, json!({"user": tx.user_id}))
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (st, body) = s
        .send_json(&to, "PUT", &path, json!({"user": tm.user_id}))
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["owner"], tm.user_id.0);
    let (_, me) = s.get(&to, &format!("/v1/groups/{g}/members?after=0")).await;
    let roles: Vec<(i64, String)> = me["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["user"].as_i64().unwrap(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(roles.contains(&(to.user_id.0, "admin".into())), "{roles:?}");
    assert!(roles.contains(&(tm.user_id.0, "owner".into())), "{roles:?}");
    // Only the owner dissolves: now the member, not the former owner.
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/groups/{g}"),
            Some(&to.access_token),
            None,
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/groups/{g}"),
            Some(&tm.access_token),
            None,
        )
        .await;
    assert_eq!(st, 204);
}
