//! Presence watches (docs/protocol.md §5.7): a connection names the users
//! whose presence it wants with `presence_watch` and gets their changes;
//! with `presence.fan_out = "watchers"` nobody else does, whatever the
//! user's number of conversations.

mod common;

use common::*;
use magpie_core::UserId;
use magpie_proto::{ClientOp, ErrorCode, ServerFrame};
use magpie_server::config::FanOut;
use std::time::Duration;

async fn watch(c: &mut Conn, users: &[UserId]) -> Vec<UserId> {
    let op = ClientOp::PresenceWatch {
        users: users.to_vec(),
    };
    match c.request(op).await {
        ServerFrame::PresenceWatchOk { online, .. } => online,
        other => panic!("expected presence_watch_ok, got {other:?}"),
    }
}

fn presence_of(user: UserId, online: bool) -> impl Fn(&ServerFrame) -> bool {
    move |f| matches!(f, ServerFrame::Presence { user: u, online: o, .. } if *u == user && *o == online)
}

/// Reads what arrives for `wait` (answering pings); true if a presence
/// frame about `user` was among it.
async fn heard_of(c: &mut Conn, user: UserId, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    let mut heard = c
        .backlog
        .iter()
        .any(|f| matches!(f, ServerFrame::Presence { user: u, .. } if *u == user));
    while let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) {
        match c.try_recv(left).await {
            Ok(Some(ServerFrame::Ping)) => c.send_op(None, ClientOp::Pong).await,
            Ok(Some(f)) => {
                heard |= matches!(&f, ServerFrame::Presence { user: u, .. } if *u == user);
            }
            Ok(None) | Err(_) => break,
        }
    }
    heard
}

#[tokio::test(flavor = "multi_thread")]
async fn only_watchers_hear_of_a_user_in_watchers_mode() {
    let s = TestServer::start_with(|c| c.presence.fan_out = FanOut::Watchers).await;
    let [ta, tb, tc] = s.users(["alice", "bob", "carol"]).await;
    let alice = ta.user_id;
    // Bob and carol are both alice's contacts.
    let mut b = s.conn(&tb, "ws").await;
    b.send_msg(alice, "hi alice").await;
    let mut c = s.conn(&tc, "tcp").await;
    c.send_msg(alice, "hello").await;
    assert_eq!(watch(&mut c, &[alice]).await, vec![], "alice is offline");

    let mut a = s.conn(&ta, "ws").await;
    c.expect(presence_of(alice, true)).await;
    assert!(
        !heard_of(&mut b, alice, Duration::from_millis(500)).await,
        "a contact who does not watch hears nothing"
    );
    let mut both = watch(&mut c, &[alice, tb.user_id]).await;
    both.sort_by_key(|u| u.0);
    let mut expected = vec![alice, tb.user_id];
    expected.sort_by_key(|u| u.0);
    assert_eq!(both, expected, "both online now");

    // Watching nothing: alice's logout reaches nobody.
    assert_eq!(watch(&mut c, &[]).await, vec![]);
    a.send_op(None, ClientOp::Logout).await;
    assert!(!heard_of(&mut c, alice, Duration::from_millis(500)).await);

    // Too many at once is refused, and the watch set stays as it was.
    let many: Vec<UserId> = (1..=1001).map(UserId).collect();
    let refused = c.request(ClientOp::PresenceWatch { users: many }).await;
    assert!(
        matches!(
            refused,
            ServerFrame::Error {
                code: ErrorCode::BadField,
                fatal: false,
                ..
            }
        ),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn contacts_mode_tells_contacts_and_watchers_once_each() {
    let s = TestServer::start().await;
    let [ta, tb, td] = s.users(["alice", "bob", "dave"]).await;
    let alice = ta.user_id;
    let mut b = s.conn(&tb, "ws").await;
    b.send_msg(alice, "hi alice").await;
    // Dave shares no conversation with alice but watches her; bob watches
    // her too, and is a contact: he hears each change once.
    let mut d = s.conn(&td, "ws").await;
    watch(&mut d, &[alice]).await;
    watch(&mut b, &[alice]).await;
    let _a = s.conn(&ta, "tcp").await;
    d.expect(presence_of(alice, true)).await;
    b.expect(presence_of(alice, true)).await;
    assert!(
        !heard_of(&mut b, alice, Duration::from_millis(500)).await,
        "a contact who watches is told once"
    );
}

/// A conversation begun after a user's contacts were cached: its first
/// message (received over a socket, or sent over HTTP) drops the cached
/// lists, so the user's next change reaches the new peer at once, not
/// after `presence.peer_cache_ms`.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_conversation_hears_the_peers_next_change() {
    let s = TestServer::start().await;
    let [ta, tb, tc] = s.users(["alice", "bob", "carol"]).await;
    // Bob and carol come online with no contact: their empty lists are cached.
    let mut b = s.conn(&tb, "tcp").await;
    let mut c = s.conn(&tc, "ws").await;
    // Alice writes to bob over the socket (bob receives it pushed), carol
    // writes to alice over HTTP.
    let mut a = s.conn(&ta, "ws").await;
    sent_seq(&a.send_msg(tb.user_id, "hello bob").await);
    b.expect_msg().await;
    let (st, body) = s
        .http_send(
            &tc,
            ta.user_id,
            magpie_core::ClientMsgId::new_v7(),
            "hi alice",
        )
        .await;
    assert_eq!(st, 200, "{body}");
    a.expect_msg().await;
    b.send_op(None, ClientOp::Logout).await;
    a.expect(presence_of(tb.user_id, false)).await;
    c.send_op(None, ClientOp::Logout).await;
    a.expect(presence_of(tc.user_id, false)).await;
}

/// A watch ends with its connection: a new connection of the same device
/// hears nothing until it watches again.
#[tokio::test(flavor = "multi_thread")]
async fn a_watch_ends_with_its_connection() {
    let s = TestServer::start_with(|c| c.presence.fan_out = FanOut::Watchers).await;
    let [ta, tc] = s.users(["alice", "carol"]).await;
    let alice = ta.user_id;
    let mut c = s.conn(&tc, "ws").await;
    watch(&mut c, &[alice]).await;
    c.send_op(None, ClientOp::Logout).await;
    let mut c2 = s.conn(&tc, "ws").await;
    // The old connection's entry is removed when it closes.
    let watched_by = || async { s.app().state.presence_watchers(alice).await.unwrap() };
    for _ in 0..100 {
        if watched_by().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(watched_by().await.is_empty(), "{:?}", watched_by().await);
    let _a = s.conn(&ta, "ws").await;
    assert!(!heard_of(&mut c2, alice, Duration::from_millis(500)).await);
}

/// Across nodes: the watcher's connection is addressed directly on its
/// node, with no route lookup.
#[tokio::test(flavor = "multi_thread")]
async fn a_watcher_on_another_node_hears_of_the_user() {
    if !backends::needs_shared_store() {
        return;
    }
    let s1 = TestServer::start_with(|c| c.presence.fan_out = FanOut::Watchers).await;
    let s2 = second_node_with(&s1, "node-2", 2, |c| c.presence.fan_out = FanOut::Watchers).await;
    let [ta, tc] = s1.users(["alice", "carol"]).await;
    let mut c = s2.conn_here(&tc, "ws").await;
    watch(&mut c, &[ta.user_id]).await;
    let _a = s1.conn_here(&ta, "ws").await;
    c.expect(presence_of(ta.user_id, true)).await;
}

/// A device that drops and is back within `presence.debounce_ms` shows its
/// watchers nothing; one that stays away shows offline after the wait.
#[tokio::test(flavor = "multi_thread")]
async fn a_device_back_at_once_shows_no_change() {
    let s = TestServer::start_with(|c| {
        c.presence.fan_out = FanOut::Watchers;
        c.presence.debounce_ms = 300;
    })
    .await;
    let [ta, tc] = s.users(["alice", "carol"]).await;
    let alice = ta.user_id;
    let mut c = s.conn(&tc, "ws").await;
    watch(&mut c, &[alice]).await;
    let a1 = s.conn(&ta, "tcp").await;
    c.expect(presence_of(alice, true)).await;

    drop(a1);
    let a2 = s.conn(&ta, "tcp").await;
    assert!(
        !heard_of(&mut c, alice, Duration::from_millis(1000)).await,
        "a blip shows nothing"
    );
    drop(a2);
    c.expect(presence_of(alice, false)).await;
}
