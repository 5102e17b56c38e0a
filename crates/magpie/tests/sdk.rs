//! The Rust SDK (`magpie-sdk`) against a real node: two clients chatting over
//! both transports, reconnect + resync across a server restart, idempotent
//! sends.

mod common;
use common::*;
use magpie_core::{ClientMsgId, ConvId, Message, Transport};
use magpie_proto::http::Tokens;
use magpie_sdk::{Client, ClientOptions, Event, HttpClient};
use std::collections::HashSet;
use std::time::Duration;

/// Generous: covers the SDK's reconnect backoff (up to 5 s) on a loaded machine.
const LONG: Duration = Duration::from_secs(30);

async fn connect(s: &TestServer, t: &Tokens, transport: Transport) -> Client {
    Client::connect(&s.base, t.clone(), Some(transport))
        .await
        .expect("sdk connect")
}

async fn connect_with(
    s: &TestServer,
    t: &Tokens,
    transport: Transport,
    opts: ClientOptions,
) -> Client {
    let http = HttpClient::new(&s.base).unwrap();
    http.set_tokens(t.clone());
    Client::connect_http(http, Some(transport), opts)
        .await
        .expect("sdk connect")
}

/// Skips events until `pred` matches; returns everything skipped plus the match.
async fn wait_for(c: &Client, wait: Duration, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ev = tokio::time::timeout(left, c.next_event())
            .await
            .unwrap_or_else(|_| panic!("timed out; events so far: {seen:?}"))
            .expect("client event stream ended");
        let done = pred(&ev);
        seen.push(ev);
        if done {
            return seen;
        }
    }
}

/// The next `Event::Message`, skipping presence/receipt/resync events.
async fn next_message(c: &Client) -> Message {
    match wait_for(c, WAIT, |e| matches!(e, Event::Message(_)))
        .await
        .pop()
    {
        Some(Event::Message(m)) => m,
        _ => unreachable!(),
    }
}

/// Asserts no message event arrives within `quiet`.
async fn no_more_messages(c: &Client, quiet: Duration) {
    let deadline = tokio::time::Instant::now() + quiet;
    while let Ok(ev) = tokio::time::timeout_at(deadline, c.next_event()).await {
        match ev {
            Some(Event::Message(m)) => panic!("unexpected (duplicate?) message {m:?}"),
            Some(Event::Closed { code, reason }) => panic!("closed: {code:?} {reason}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ws_and_tcp_sdk_clients_exchange_messages_exactly_once() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let alice = connect(&s, &ta, Transport::Ws).await;
    let bob = connect(&s, &tb, Transport::Tcp).await;
    // The initial sync must be done, or it could hand back our own sends.
    wait_for(&alice, WAIT, |e| *e == Event::Resynced).await;
    wait_for(&bob, WAIT, |e| *e == Event::Resynced).await;
    let conv = ConvId::direct(ta.user_id, tb.user_id);

    let r = alice.send(tb.user_id, "hi bob").await.unwrap();
    assert_eq!((r.seq, r.duplicate, &r.conv), (1, false, &conv));
    let m = next_message(&bob).await;
    assert_eq!(
        (m.body.as_str(), m.seq, m.from, m.server_id),
        ("hi bob", 1, ta.user_id, r.server_id)
    );

    let r = bob.send(ta.user_id, "hi alice").await.unwrap();
    assert_eq!(r.seq, 2);
    let m = next_message(&alice).await;
    assert_eq!(
        (m.body.as_str(), m.seq, m.from),
        ("hi alice", 2, tb.user_id)
    );

    // A second round: the next message each side sees is the new one, not a
    // repeat of the first (and the sender never gets its own message back).
    alice.send(tb.user_id, "again").await.unwrap();
    let m = next_message(&bob).await;
    assert_eq!((m.body.as_str(), m.seq), ("again", 3));
    bob.send(ta.user_id, "and again").await.unwrap();
    let m = next_message(&alice).await;
    assert_eq!((m.body.as_str(), m.seq), ("and again", 4));
    no_more_messages(&alice, Duration::from_millis(500)).await;
    no_more_messages(&bob, Duration::from_millis(500)).await;

    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

/// Starts a node on fixed ports in `dir`, retrying the bind for a while
/// (the previous node's sockets may take a moment to go away).
async fn start_fixed(dir: &std::path::Path, http: u16, tcp: u16) -> magpie_server::Running {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut cfg = test_config(dir);
        cfg.http.listen = format!("127.0.0.1:{http}");
        cfg.tcp.listen = format!("127.0.0.1:{tcp}");
        match magpie_server::start(cfg).await {
            Ok(r) => return r,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("restart failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("server did not restart: {e}"),
        }
    }
}

/// A node on fixed ports (so it can come back where clients look for it),
/// with those ports.
async fn restartable() -> (TestServer, u16, u16) {
    let dir = tempfile::tempdir().unwrap();
    let (http_port, tcp_port) = (free_port(), free_port());
    let ns = backends::namespace(dir.path());
    let s = TestServer {
        running: Some(start_fixed(dir.path(), http_port, tcp_port).await),
        base: format!("http://127.0.0.1:{http_port}"),
        dir,
        http: reqwest::Client::new(),
        ns,
    };
    (s, http_port, tcp_port)
}

async fn reconnects_and_resyncs_after_restart(transport: Transport) {
    let (mut s, http_port, tcp_port) = restartable().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let opts = ClientOptions {
        // Short, so the "cannot send while down" check below fails fast.
        request_timeout: Duration::from_secs(2),
        send_attempts: 1,
        ..ClientOptions::default()
    };
    let bob = connect_with(&s, &tb, transport, opts).await;
    wait_for(&bob, WAIT, |e| *e == Event::Resynced).await;

    // One message before the restart so bob has a position to resync from.
    let (st, body) = s
        .http_send(&ta, tb.user_id, ClientMsgId::new_v7(), "before")
        .await;
    assert_eq!(st, 200, "{body}");
    let m = next_message(&bob).await;
    assert_eq!((m.body.as_str(), m.seq), ("before", 1));

    s.stop().await;
    let skipped = wait_for(&bob, WAIT, |e| matches!(e, Event::Reconnecting { .. })).await;
    assert!(
        !skipped.iter().any(|e| matches!(e, Event::Message(_))),
        "{skipped:?}"
    );

    // Down: neither HTTP nor the socket accepts a message.
    let down = s
        .http
        .post(format!("{}/v1/messages", s.base))
        .bearer_auth(&ta.access_token)
        .json(&serde_json::json!({"to": tb.user_id, "cmid": ClientMsgId::new_v7(), "body": "lost"}))
        .send()
        .await;
    assert!(down.is_err(), "server still answering: {down:?}");
    let err = bob
        .send(ta.user_id, "while down")
        .await
        .expect_err("send while the server is down");
    assert!(err.is_retryable(), "{err:?}");

    // Back up on the same data directory and ports.
    s.running = Some(start_fixed(s.dir.path(), http_port, tcp_port).await);
    let mut sent = Vec::new();
    for i in 0..20 {
        let (st, body) = s
            .http_send(&ta, tb.user_id, ClientMsgId::new_v7(), &format!("m{i}"))
            .await;
        assert_eq!(st, 200, "{body}");
        sent.push(body["seq"].as_i64().unwrap());
    }
    assert_eq!(sent, (2..=21).collect::<Vec<_>>());

    // Bob reconnects by itself and gets all 20, in order, exactly once.
    let deadline = tokio::time::Instant::now() + LONG;
    let mut got: Vec<Message> = Vec::new();
    let mut events = Vec::new();
    while got.len() < 20 {
        let ev = tokio::time::timeout_at(deadline, bob.next_event())
            .await
            .unwrap_or_else(|_| panic!("timed out with {} messages; events {events:?}", got.len()))
            .expect("client event stream ended");
        match &ev {
            Event::Message(m) => got.push(m.clone()),
            Event::Closed { .. } | Event::Unavailable { .. } => panic!("unexpected {ev:?}"),
            _ => {}
        }
        events.push(ev);
    }
    let seqs: Vec<i64> = got.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (2..=21).collect::<Vec<_>>(), "events {events:?}");
    let bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    let want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, want);
    let ids: HashSet<_> = got.iter().map(|m| m.server_id).collect();
    assert_eq!(ids.len(), 20, "duplicate server ids");
    no_more_messages(&bob, Duration::from_millis(500)).await;

    // The socket works again, and the failed send was never stored.
    let r = bob.send(ta.user_id, "after").await.unwrap();
    assert_eq!(r.seq, 22);
    // Its own send counts as delivered: no gap, nothing handed back.
    assert_eq!(bob.positions().get(&m.conv), Some(&22));
    no_more_messages(&bob, Duration::from_millis(300)).await;

    bob.close().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_client_reconnects_and_resyncs_after_a_restart() {
    reconnects_and_resyncs_after_restart(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ws_client_reconnects_and_resyncs_after_a_restart() {
    reconnects_and_resyncs_after_restart(Transport::Ws).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_send_with_the_same_cmid_is_idempotent() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let alice = connect(&s, &ta, Transport::Ws).await;
    let cmid = ClientMsgId::new_v7();
    let first = alice
        .send_with(tb.user_id, cmid, "once".into(), None)
        .await
        .unwrap();
    assert!(!first.duplicate);
    let again = alice
        .send_with(tb.user_id, cmid, "once".into(), None)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(
        (again.server_id, again.seq, &again.conv, again.cmid),
        (first.server_id, first.seq, &first.conv, cmid)
    );
    // Stored once.
    let page = alice.history(&first.conv, None, Some(10)).await.unwrap();
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].server_id, first.server_id);
    // A fresh cmid is a new message.
    let other = alice.send(tb.user_id, "twice").await.unwrap();
    assert_eq!((other.seq, other.duplicate), (first.seq + 1, false));
    alice.close().await.unwrap();
}

/// A group over the SDK: a group send reaches the other member once (not the
/// sender as an event), and the sender hears of the read as a group receipt.
#[tokio::test(flavor = "multi_thread")]
async fn sdk_group_send_read_and_receipt() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let g = magpie_core::GroupId(s.create_group(&ta, &[tb.user_id]).await);
    let a = connect(&s, &ta, Transport::Ws).await;
    let b = connect(&s, &tb, Transport::Tcp).await;
    let sent = a.send_group(g, "hello group").await.unwrap();
    assert_eq!((sent.conv.clone(), sent.seq), (ConvId::group(g), 1));
    let m = next_message(&b).await;
    assert_eq!(
        (m.body.as_str(), m.seq, m.from),
        ("hello group", 1, ta.user_id)
    );
    b.read(&ConvId::group(g), 1).await.unwrap();
    let seen = wait_for(&a, LONG, |e| matches!(e, Event::GroupReceipt { .. })).await;
    assert!(
        !seen.iter().any(|e| matches!(e, Event::Message(_))),
        "the sender got its own group message as an event: {seen:?}"
    );
    assert_eq!(
        seen.last(),
        Some(&Event::GroupReceipt {
            conv: ConvId::group(g),
            seq: 1,
            read: 2,
            unread: 0
        })
    );
}

/// The SDK repeats the application's presence watch on every new
/// connection: after a restart, a watched user's change still arrives.
#[tokio::test(flavor = "multi_thread")]
async fn a_presence_watch_survives_a_reconnect() {
    let (mut s, http_port, tcp_port) = restartable().await;
    // Not contacts: only the watch can bring carol alice's presence.
    let [ta, tc] = s.users(["alice", "carol"]).await;
    let carol = connect(&s, &tc, Transport::Ws).await;
    assert_eq!(carol.watch_presence(&[ta.user_id]).await.unwrap(), vec![]);

    s.stop().await;
    wait_for(&carol, WAIT, |e| matches!(e, Event::Reconnecting { .. })).await;
    s.running = Some(start_fixed(s.dir.path(), http_port, tcp_port).await);
    wait_for(&carol, LONG, |e| *e == Event::Resynced).await;

    let _alice = s.conn(&ta, "tcp").await;
    let alice = ta.user_id;
    wait_for(
        &carol,
        LONG,
        |e| matches!(e, Event::Presence { user, online: true, .. } if *user == alice),
    )
    .await;
}

/// Feeds over the SDK's HTTP client: follow, post (a retry is the same
/// post), the home feed page by page, delete, unfollow, counts.
#[tokio::test(flavor = "multi_thread")]
async fn sdk_follow_post_and_feed() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let (alice, bob) = (
        HttpClient::new(&s.base).unwrap(),
        HttpClient::new(&s.base).unwrap(),
    );
    alice.set_tokens(ta.clone());
    bob.set_tokens(tb.clone());
    assert!(bob.follow(ta.user_id).await.unwrap());
    assert!(!bob.follow(ta.user_id).await.unwrap(), "already");
    let cmid = ClientMsgId::new_v7();
    let first = alice.post(cmid, "one").await.unwrap();
    assert!(alice.post(cmid, "one").await.unwrap().duplicate);
    let second = alice.post(ClientMsgId::new_v7(), "two").await.unwrap();
    let deadline = tokio::time::Instant::now() + LONG;
    let mut seen = Vec::new();
    while seen.len() < 2 && tokio::time::Instant::now() < deadline {
        let page = bob.feed(None, Some(1)).await.unwrap();
        let rest = match page.next {
            Some(next) => bob.feed(Some(next), Some(5)).await.unwrap().posts,
            None => Vec::new(),
        };
        seen = page.posts.into_iter().chain(rest).map(|p| p.id).collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, [second.post.id, first.post.id]);
    alice.delete_post(first.post.id).await.unwrap();
    let left: Vec<_> = bob
        .feed(None, None)
        .await
        .unwrap()
        .posts
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(left, [second.post.id]);
    let counts = alice.follow_counts(ta.user_id).await.unwrap();
    assert_eq!((counts.followers, counts.following), (1, 0));
    let followers = alice.follows(ta.user_id, false, None).await.unwrap();
    assert_eq!(followers.users, [tb.user_id]);
    bob.unfollow(ta.user_id).await.unwrap();
    assert!(bob.feed(None, None).await.unwrap().posts.is_empty());
}

/// The same over the SDK's socket client: follow, post (a retry is the
/// same post), the `post` event, the home feed, delete, unfollow.
#[tokio::test(flavor = "multi_thread")]
async fn sdk_socket_follow_post_and_feed() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let alice = connect(&s, &ta, Transport::Tcp).await;
    let bob = connect(&s, &tb, Transport::Ws).await;
    assert!(bob.follow(ta.user_id).await.unwrap());
    assert!(!bob.follow(ta.user_id).await.unwrap(), "already");
    let cmid = ClientMsgId::new_v7();
    let first = alice.post(cmid, "one").await.unwrap();
    assert_eq!(alice.post(cmid, "one").await.unwrap().post, first.post);
    wait_for(
        &bob,
        LONG,
        |e| matches!(e, Event::Post(p) if p.id == first.post.id),
    )
    .await;
    let second = alice.post(ClientMsgId::new_v7(), "two").await.unwrap();
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let page = bob.feed(None, Some(5)).await.unwrap();
        let seen: Vec<_> = page.posts.iter().map(|p| p.id).collect();
        if seen == [second.post.id, first.post.id] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    alice.delete_post(first.post.id).await.unwrap();
    assert!(alice.delete_post(first.post.id).await.is_err(), "gone");
    let left: Vec<_> = bob.feed(None, None).await.unwrap().posts;
    assert_eq!(
        left.iter().map(|p| p.id).collect::<Vec<_>>(),
        [second.post.id]
    );
    assert!(bob.unfollow(ta.user_id).await.unwrap());
    assert!(bob.feed(None, None).await.unwrap().posts.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_replies_edits_and_recalls_and_manages_a_group() {
    let s = TestServer::start().await;
    let [ta, tb, tc] = s.users(["alice", "bob", "carol"]).await;
    let alice = connect(&s, &ta, Transport::Tcp).await;
    let bob = connect(&s, &tb, Transport::Ws).await;
    wait_for(&alice, WAIT, |e| *e == Event::Resynced).await;
    wait_for(&bob, WAIT, |e| *e == Event::Resynced).await;
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    let first = alice.send(tb.user_id, "lunch at 12?").await.unwrap();
    assert_eq!(next_message(&bob).await.seq, first.seq);
    let reply = bob.reply(&conv, first.seq, "yes").await.unwrap();
    let m = next_message(&alice).await;
    assert_eq!(m.meta.unwrap().reply_to, Some(first.seq));
    let edit = alice.edit(&conv, first.seq, "lunch at 1?").await.unwrap();
    let m = next_message(&bob).await;
    assert_eq!((m.seq, m.body.as_str()), (edit.seq, "lunch at 1?"));
    assert_eq!(m.meta.unwrap().edit_of, Some(first.seq));
    let err = alice.recall(&conv, reply.seq).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(magpie_proto::ErrorCode::Forbidden),
        "{err}"
    );
    let other = ConvId::direct(tb.user_id, tc.user_id);
    let err = alice.recall(&other, 1).await.unwrap_err();
    assert_eq!(err.code_str(), "usage", "not alice's conversation: {err}");

    // Groups over HTTP: create, a role, members, leave.
    let http = HttpClient::new(&s.base).unwrap();
    http.set_tokens(ta.clone());
    let req = magpie_proto::http::CreateGroupRequest {
        name: "lunch".into(),
        members: vec![tb.user_id],
        history: 0,
    };
    let g = http.create_group(&req).await.unwrap();
    assert_eq!(
        http.add_members(g.id, &[tc.user_id]).await.unwrap(),
        [tc.user_id]
    );
    let m = http
        .set_role(g.id, tb.user_id, magpie_core::GroupRole::Admin)
        .await
        .unwrap();
    assert_eq!(m.role, magpie_core::GroupRole::Admin);
    let sent = bob.send_group(g.id, "in the group").await.unwrap();
    // The owner recalls a member's message, whatever the window.
    alice.recall(&sent.conv, sent.seq).await.unwrap();
    http.remove_member(g.id, tc.user_id).await.unwrap();
    let members: Vec<_> = http.members(g.id).await.unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(http.my_groups().await.unwrap().len(), 1);
}

/// Live rooms over the SDK: join (the recent messages), say, hear, and
/// after a restart the client is in its rooms again without asking; a
/// room left is heard no more.
#[tokio::test(flavor = "multi_thread")]
async fn sdk_live_rooms_survive_a_reconnect() {
    let (mut s, http_port, tcp_port) = restartable().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let alice = connect(&s, &ta, Transport::Ws).await;
    let bob = connect(&s, &tb, Transport::Tcp).await;
    assert!(alice.join_room("stage").await.unwrap().is_empty());
    let sent = bob.room_send("stage", "not joined").await;
    assert!(sent.is_err(), "saying something needs a join: {sent:?}");
    bob.join_room("stage").await.unwrap();
    let sent = bob.room_send("stage", "hello room").await.unwrap();
    assert!(!sent.shed);
    let heard = wait_for(&alice, WAIT, |e| matches!(e, Event::Room(_))).await;
    let Some(Event::Room(m)) = heard.last() else {
        unreachable!()
    };
    assert_eq!(
        (m.body.as_str(), m.from, &m.id),
        ("hello room", tb.user_id, &sent.id)
    );

    s.stop().await;
    wait_for(&alice, WAIT, |e| matches!(e, Event::Reconnecting { .. })).await;
    s.running = Some(start_fixed(s.dir.path(), http_port, tcp_port).await);
    wait_for(&alice, LONG, |e| *e == Event::Resynced).await;
    wait_for(&bob, LONG, |e| *e == Event::Resynced).await;
    // Alice's join went out with her new connection; bob's may land first
    // on the server, so he says it until she hears one.
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice never heard bob again"
        );
        let said = bob.room_send("stage", "after the restart").await.unwrap();
        let heard = tokio::time::timeout(Duration::from_millis(300), async {
            loop {
                if let Some(Event::Room(m)) = alice.next_event().await {
                    return m;
                }
            }
        })
        .await;
        if let Ok(m) = heard {
            assert_eq!(m.id, said.id);
            break;
        }
    }
    alice.leave_room("stage").await.unwrap();
    bob.room_send("stage", "anyone?").await.unwrap();
    let more = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            if let Some(Event::Room(m)) = alice.next_event().await {
                return m;
            }
        }
    })
    .await;
    assert!(more.is_err(), "a room left is heard no more: {more:?}");
}
