//! Typing indicators and read sync between a user's devices
//! (docs/protocol.md, "Typing" and `read_sync`): ephemeral pushes, over
//! both transports, checked against the conversation's members,
//! throttled and rate-limited; never stored.

mod common;

use common::*;
use magpie_core::{ConvId, UserId};
use magpie_proto::{ClientOp, ErrorCode, ServerFrame};
use magpie_server::guard::config::Rate;
use std::time::Duration;

/// A quiet spell long enough for a push that was going to come.
const QUIET: Duration = Duration::from_millis(600);

fn typing(conv: &ConvId, active: bool) -> ClientOp {
    ClientOp::Typing {
        conv: conv.clone(),
        active,
    }
}

fn typing_of(user: UserId, active: bool) -> impl Fn(&ServerFrame) -> bool {
    move |f| matches!(f, ServerFrame::Typing { user: u, active: a, .. } if *u == user && *a == active)
}

/// Reads what arrives for `wait` (answering pings), backlog included; the
/// frames matching `pred`.
async fn heard(c: &mut Conn, wait: Duration, pred: impl Fn(&ServerFrame) -> bool) -> usize {
    let mut n = c.backlog.iter().filter(|f| pred(f)).count();
    c.backlog.clear();
    let deadline = tokio::time::Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) {
        match c.try_recv(left).await {
            Ok(Some(ServerFrame::Ping)) => c.send_op(None, ClientOp::Pong).await,
            Ok(Some(f)) => n += usize::from(pred(&f)),
            Ok(None) | Err(_) => break,
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn the_peer_sees_typing_start_and_stop_over_both_transports() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let (alice, bob) = (ta.user_id, tb.user_id);
    let conv = ConvId::direct(alice, bob);
    for (from, to) in [("ws", "tcp"), ("tcp", "ws")] {
        let mut a = s.conn(&ta, from).await;
        let mut b = s.conn(&tb, to).await;
        a.send_op(None, typing(&conv, true)).await;
        match b.expect(typing_of(alice, true)).await {
            ServerFrame::Typing {
                conv: c,
                ttl_ms,
                name,
                ..
            } => {
                assert_eq!(c, conv);
                assert_eq!(name, "alice", "no display name: the username");
                assert_eq!(ttl_ms, 6_000, "the default typing.ttl_ms");
            }
            other => unreachable!("{other:?}"),
        }
        // A repeat within typing.repeat_ms is not forwarded; a stop is, and
        // lets the next start through at once.
        a.send_op(None, typing(&conv, true)).await;
        a.send_op(None, typing(&conv, false)).await;
        b.expect(typing_of(alice, false)).await;
        assert_eq!(
            heard(&mut b, QUIET, typing_of(alice, true)).await,
            0,
            "{from}→{to}"
        );
        a.send_op(None, typing(&conv, true)).await;
        b.expect(typing_of(alice, true)).await;
        // Never to the typist's own devices, never stored.
        assert_eq!(
            heard(&mut a, QUIET, |f| matches!(f, ServerFrame::Typing { .. })).await,
            0
        );
        assert!(
            b.sync_all(&conv, 0).await.is_empty(),
            "typing is not a message"
        );
        a.send_op(None, typing(&conv, false)).await;
        b.expect(typing_of(alice, false)).await;
    }
    // A display name, once set, is what the frame shows.
    let body = serde_json::json!({"display_name": "Alice A."});
    assert_eq!(s.send_json(&ta, "PUT", "/v1/profile", body).await.0, 200);
    let mut a = s.conn(&ta, "ws").await;
    let mut b = s.conn(&tb, "tcp").await;
    a.send_op(None, typing(&conv, true)).await;
    match b.expect(typing_of(alice, true)).await {
        ServerFrame::Typing { name, .. } => assert_eq!(name, "Alice A."),
        other => unreachable!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn typing_outside_ones_conversations_is_refused() {
    let s = TestServer::start().await;
    let [ta, tb, tc] = s.users(["alice", "bob", "carol"]).await;
    let g = s.create_group(&ta, &[tb.user_id]).await;
    let mut c = s.conn(&tc, "ws").await;
    for conv in [
        ConvId::direct(ta.user_id, tb.user_id),
        ConvId::group(magpie_core::GroupId(g)),
        ConvId::group(magpie_core::GroupId(g + 1_000_000)),
    ] {
        match c.request(typing(&conv, true)).await {
            ServerFrame::Error { code, fatal, .. } => {
                assert_eq!((code, fatal), (ErrorCode::NotFound, false), "{conv}");
            }
            other => panic!("{conv}: expected not_found, got {other:?}"),
        }
    }
    let mut b = s.conn(&tb, "tcp").await;
    assert_eq!(
        heard(&mut b, QUIET, |f| matches!(f, ServerFrame::Typing { .. })).await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn members_of_a_small_group_see_typing_and_a_larger_one_stays_quiet() {
    let s = TestServer::start_with(|c| c.typing.max_group_members = 3).await;
    let [ta, tb, tc, td] = s.users(["alice", "bob", "carol", "dave"]).await;
    let small = s.create_group(&ta, &[tb.user_id, tc.user_id]).await;
    let large = s
        .create_group(&ta, &[tb.user_id, tc.user_id, td.user_id])
        .await;
    let mut a = s.conn(&ta, "ws").await;
    let mut b = s.conn(&tb, "tcp").await;
    let mut c = s.conn(&tc, "ws").await;
    let small_conv = ConvId::group(magpie_core::GroupId(small));
    a.send_op(None, typing(&small_conv, true)).await;
    for m in [&mut b, &mut c] {
        match m.expect(typing_of(ta.user_id, true)).await {
            ServerFrame::Typing { conv, .. } => assert_eq!(conv, small_conv),
            other => unreachable!("{other:?}"),
        }
    }
    // Four members, over typing.max_group_members: accepted, told to nobody.
    let large_conv = ConvId::group(magpie_core::GroupId(large));
    a.send_op(Some(7), typing(&large_conv, true)).await;
    let refused = |f: &ServerFrame| matches!(f, ServerFrame::Error { .. });
    assert_eq!(heard(&mut a, QUIET, refused).await, 0, "accepted");
    for m in [&mut b, &mut c] {
        let n = heard(
            m,
            QUIET,
            |f| matches!(f, ServerFrame::Typing { conv, .. } if *conv == large_conv),
        )
        .await;
        assert_eq!(n, 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn typing_over_the_rate_is_refused_with_a_wait() {
    let s = TestServer::start_with(|c| {
        c.typing.repeat_ms = 0;
        c.guard.rates.typing_user = Rate::new(1.0, 2);
    })
    .await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    let mut a = s.conn(&ta, "ws").await;
    let mut b = s.conn(&tb, "ws").await;
    let mut limited = 0;
    for _ in 0..4 {
        a.send_op(Some(99), typing(&conv, true)).await;
    }
    while let Ok(Some(f)) = a.try_recv(QUIET).await {
        if let ServerFrame::Error {
            code: ErrorCode::RateLimited,
            retry_after_ms: Some(ms),
            fatal: false,
            ..
        } = f
        {
            assert!(ms > 0);
            limited += 1;
        }
    }
    assert_eq!(limited, 2, "a burst of 2 goes through, the rest is refused");
    assert_eq!(heard(&mut b, QUIET, typing_of(ta.user_id, true)).await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_on_one_device_clears_the_others_at_once() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let laptop = s.user("alice", "laptop").await;
    let web = s.user("alice", "web").await;
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    let mut phone = s.conn(&ta, "ws").await;
    let mut lap = s.conn(&laptop, "tcp").await;
    let mut b = s.conn(&tb, "ws").await;
    b.send_msg(ta.user_id, "one").await;
    b.send_msg(ta.user_id, "two").await;
    for d in [&mut phone, &mut lap] {
        d.expect_msg().await;
        d.expect_msg().await;
    }
    let read_sync = |seq| {
        let conv = conv.clone();
        move |f: &ServerFrame| matches!(f, ServerFrame::ReadSync { conv: c, seq: s } if *c == conv && *s == seq)
    };
    // Over the socket: the laptop hears of it, the phone that read does not.
    phone.read(&conv, 1).await;
    lap.expect(read_sync(1)).await;
    assert_eq!(
        heard(&mut phone, QUIET, |f| matches!(
            f,
            ServerFrame::ReadSync { .. }
        ))
        .await,
        0
    );
    // Over HTTP from a third device: both hear of it.
    let (st, _) = s.read(&web, &conv, 2).await;
    assert_eq!(st, 200);
    lap.expect(read_sync(2)).await;
    phone.expect(read_sync(2)).await;
    // A position that does not move tells nobody.
    phone.read(&conv, 1).await;
    assert_eq!(
        heard(&mut lap, QUIET, |f| matches!(
            f,
            ServerFrame::ReadSync { .. }
        ))
        .await,
        0
    );
    match lap.request(ClientOp::Unread).await {
        ServerFrame::UnreadResult { total, .. } => assert_eq!(total, 0),
        other => panic!("{other:?}"),
    }
}

/// Across nodes: the indicator and the read sync reach a device connected
/// to another node over the relay.
#[tokio::test(flavor = "multi_thread")]
async fn typing_and_read_sync_cross_nodes() {
    if !backends::needs_shared_store() {
        return;
    }
    let s1 = TestServer::start().await;
    let s2 = second_node(&s1, "node-2", 2).await;
    let [ta, tb] = s1.users(["alice", "bob"]).await;
    let laptop = s1.user("alice", "laptop").await;
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    let mut a = s1.conn_here(&ta, "ws").await;
    let mut lap = s2.conn_here(&laptop, "tcp").await;
    let mut b = s2.conn_here(&tb, "ws").await;
    a.send_op(None, typing(&conv, true)).await;
    b.expect(typing_of(ta.user_id, true)).await;
    b.send_msg(ta.user_id, "hi").await;
    a.expect_msg().await;
    a.read(&conv, 1).await;
    lap.expect(|f| matches!(f, ServerFrame::ReadSync { seq: 1, .. }))
        .await;
}
