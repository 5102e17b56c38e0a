//! A sender's view of its direct messages (docs/protocol.md, `delivered`
//! and §3.10): a `delivered` frame once a device of the peer acknowledged
//! them, merged per conversation, over both transports; and the peer's read
//! position in history, so "read" survives a reload.

mod common;

use common::*;
use magpie_core::{ClientMsgId, ConvId, Seq, UserId};
use magpie_proto::{ClientOp, ServerFrame};
use std::time::Duration;

fn delivered_by(receiver: UserId) -> impl Fn(&ServerFrame) -> bool {
    move |f| matches!(f, ServerFrame::Delivered { receiver: r, .. } if *r == receiver)
}

/// The first `delivered` frame heard within `wait`, if any.
async fn delivered_within(c: &mut Conn, wait: Duration) -> Option<ServerFrame> {
    let deadline = tokio::time::Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) {
        match c.try_recv(left).await {
            Ok(Some(f @ ServerFrame::Delivered { .. })) => return Some(f),
            Ok(Some(ServerFrame::Ping)) => c.send_op(None, ClientOp::Pong).await,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    None
}

fn delivered_seq(f: &ServerFrame) -> Seq {
    match f {
        ServerFrame::Delivered { seq, .. } => *seq,
        other => unreachable!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sender_learns_what_a_device_of_the_peer_received() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let (alice, bob) = (ta.user_id, tb.user_id);
    let conv = ConvId::direct(alice, bob);
    let mut last = 0;
    for (from, to) in [("ws", "tcp"), ("tcp", "ws")] {
        let mut a = s.conn(&ta, from).await;
        let mut b = s.conn(&tb, to).await;
        // One message, acknowledged: told at once.
        let (_, seq, _) = sent_seq(&a.send_msg(bob, "one").await);
        let m = b.expect_msg().await;
        assert_eq!(m.seq, seq);
        let f = a.expect(delivered_by(bob)).await;
        assert_eq!(delivered_seq(&f), seq, "{from}→{to}");
        assert!(matches!(&f, ServerFrame::Delivered { conv: c, .. } if *c == conv));
        // A burst: receipts are merged, and the last one always comes.
        for i in 0..20 {
            a.send_msg(bob, &format!("burst {i}")).await;
        }
        for _ in 0..20 {
            last = b.expect_msg().await.seq;
        }
        loop {
            let got = delivered_seq(&a.expect(delivered_by(bob)).await);
            assert!(got <= last);
            if got == last {
                break;
            }
        }
        // The other way round: Alice's device acknowledging tells Bob,
        // never Alice herself.
        b.send_msg(alice, "back").await;
        a.expect_msg().await;
        b.expect(delivered_by(alice)).await;
        let late = delivered_within(&mut a, Duration::from_millis(600)).await;
        assert!(late.is_none(), "{late:?}");
    }
    assert!(last > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unacknowledged_push_is_not_delivered() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let mut a = s.conn(&ta, "ws").await;
    let mut b = s.conn(&tb, "ws").await;
    a.send_msg(tb.user_id, "unheard").await;
    // Bob's device receives the push but does not acknowledge it.
    assert!(matches!(b.next().await, ServerFrame::Msg { .. }));
    let quiet = delivered_within(&mut a, Duration::from_millis(800)).await;
    assert!(quiet.is_none(), "{quiet:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn history_tells_the_peers_read_position() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    for i in 0..3 {
        s.send_until_accepted(&ta, tb.user_id, ClientMsgId::new_v7(), &format!("m{i}"))
            .await;
    }
    let (status, page) = s.history(&ta, &conv, "").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["peer_read_seq"], 0, "nothing read yet: {page}");
    assert_eq!(s.read(&tb, &conv, 2).await.0, 200);
    let (_, page) = s.history(&ta, &conv, "?after=0").await;
    assert_eq!(page["peer_read_seq"], 2, "{page}");
    // Bob sees Alice's position the same way, over the socket too.
    let mut b = s.conn(&tb, "tcp").await;
    let f = b
        .request(ClientOp::History {
            conv: conv.clone(),
            before: None,
            limit: None,
        })
        .await;
    match f {
        ServerFrame::HistoryResult { peer_read_seq, .. } => assert_eq!(peer_read_seq, Some(0)),
        other => unreachable!("{other:?}"),
    }
    // A group has no one peer: no field.
    let g = s.create_group(&ta, &[tb.user_id]).await;
    let gconv = ConvId::parse(&format!("g:{g}")).unwrap();
    let (status, page) = s.history(&ta, &gconv, "").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.get("peer_read_seq").is_none(), "{page}");
}
