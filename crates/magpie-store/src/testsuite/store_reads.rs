//! Store cases for read positions, unread counts and retention.

use super::{new_msg, new_msg_kept, send, users};
use crate::{ConvSummary, RetentionHit, Store};
use magpie_core::{ConvId, Persistence, Seq, UserId};

const DAY_MS: i64 = 86_400_000;

fn hit_seqs(hits: &[RetentionHit]) -> Vec<Seq> {
    let mut v: Vec<Seq> = hits.iter().map(|h| h.seq).collect();
    v.sort_unstable();
    v
}

/// Unread counts only what a member received above its read position, per
/// conversation, through a scripted exchange.
pub async fn conversations_count_unread_exactly(s: Store) {
    let u = users(&s, &["a", "b", "c"]).await;
    let (a, b, c) = (u[0], u[1], u[2]);
    let ab = ConvId::direct(a, b);
    let ac = ConvId::direct(a, c);
    for (from, to) in [(a, b), (a, b), (a, b), (b, a), (a, b)] {
        send(&s, new_msg(from, to, "hi")).await;
    }
    send(&s, new_msg(c, a, "hey")).await;
    send(&s, new_msg(c, a, "there")).await;

    let summary = |conv: &ConvId, peer, last_seq, read_seq, unread| ConvSummary {
        conv: conv.clone(),
        peer,
        last_seq,
        read_seq,
        unread,
    };
    let mut of_a = s.conversations(a).await.expect("list a");
    of_a.sort_by(|x, y| x.conv.cmp(&y.conv));
    let mut want = vec![summary(&ab, b, 5, 0, 1), summary(&ac, c, 2, 0, 2)];
    want.sort_by(|x, y| x.conv.cmp(&y.conv));
    assert_eq!(of_a, want);
    assert_eq!(
        s.conversations(b).await.expect("list b"),
        vec![summary(&ab, a, 5, 0, 4)]
    );
    assert_eq!(
        s.conversation(c, &ac).await.expect("one"),
        Some(summary(&ac, a, 2, 0, 0)),
        "own sends are not unread"
    );
    assert_eq!(
        s.conversation(c, &ab).await.expect("one"),
        None,
        "not a member"
    );

    assert_eq!(s.set_read(b, &ab, 2).await.expect("read"), 2);
    assert_eq!(
        s.conversation(b, &ab).await.expect("one"),
        Some(summary(&ab, a, 5, 2, 2))
    );
    // b's own message (seq 4) never counts; reading to 4 leaves seq 5.
    assert_eq!(s.set_read(b, &ab, 4).await.expect("read"), 4);
    assert_eq!(
        s.conversation(b, &ab).await.expect("one").map(|c| c.unread),
        Some(1)
    );
    assert_eq!(s.set_read(a, &ac, 2).await.expect("read"), 2);
    assert_eq!(
        s.conversation(a, &ac).await.expect("one").map(|c| c.unread),
        Some(0)
    );
    // a new message raises it again
    send(&s, new_msg(c, a, "more")).await;
    assert_eq!(
        s.conversation(a, &ac).await.expect("one"),
        Some(summary(&ac, c, 3, 2, 1))
    );
    assert!(
        s.conversations(UserId(c.0 + 1000))
            .await
            .expect("stranger")
            .is_empty()
    );
}

/// The read position only moves forward and never past the last sequence;
/// a conversation the owner does not have yields 0 and creates nothing.
pub async fn set_read_caps_and_never_moves_back(s: Store) {
    let u = users(&s, &["a", "b", "c"]).await;
    let ab = ConvId::direct(u[0], u[1]);
    for _ in 0..3 {
        send(&s, new_msg(u[0], u[1], "x")).await;
    }
    assert_eq!(
        s.set_read(u[1], &ab, 100).await.expect("read"),
        3,
        "capped at last_seq"
    );
    assert_eq!(
        s.set_read(u[1], &ab, 1).await.expect("read"),
        3,
        "never moves back"
    );
    assert_eq!(s.set_read(u[1], &ab, -5).await.expect("read"), 3);
    assert_eq!(
        s.conversation(u[1], &ab)
            .await
            .expect("one")
            .map(|c| (c.read_seq, c.unread)),
        Some((3, 0))
    );
    send(&s, new_msg(u[0], u[1], "y")).await;
    assert_eq!(
        s.conversation(u[1], &ab)
            .await
            .expect("one")
            .map(|c| (c.read_seq, c.unread)),
        Some((3, 1))
    );
    assert_eq!(s.set_read(u[1], &ab, 4).await.expect("read"), 4);

    assert_eq!(s.set_read(u[2], &ab, 2).await.expect("stranger"), 0);
    assert_eq!(s.conversation(u[2], &ab).await.expect("one"), None);
    let nowhere = ConvId::direct(u[1], u[2]);
    assert_eq!(
        s.set_read(u[1], &nowhere, 7).await.expect("unknown conv"),
        0
    );
    assert!(s.conversations(u[2]).await.expect("list").is_empty());
}

/// `days:N` messages expire N days after sending, `forever` ones never; the
/// limit bounds one sweep; expired messages vanish for both parties.
pub async fn retention_days_expire(s: Store) {
    let u = users(&s, &["a", "b"]).await;
    let conv = ConvId::direct(u[0], u[1]);
    let base = new_msg(u[0], u[1], "x").sent_at;
    for _ in 0..3 {
        send(
            &s,
            new_msg_kept(u[0], u[1], "two days", Persistence::Days(2)),
        )
        .await;
    }
    send(&s, new_msg(u[0], u[1], "forever")).await;

    assert!(
        s.delete_expired(base + DAY_MS, 100)
            .await
            .expect("sweep")
            .is_empty(),
        "not yet"
    );
    let first = s.delete_expired(base + 3 * DAY_MS, 2).await.expect("sweep");
    assert_eq!(first.len(), 2, "limit respected");
    let rest = s
        .delete_expired(base + 3 * DAY_MS, 100)
        .await
        .expect("sweep");
    let all: Vec<RetentionHit> = first.into_iter().chain(rest).collect();
    assert_eq!(hit_seqs(&all), vec![1, 2, 3]);
    assert!(all.iter().all(|h| h.conv == conv && h.to == u[1]));

    let far = base + 100 * 365 * DAY_MS;
    assert!(
        s.delete_expired(far, 100).await.expect("sweep").is_empty(),
        "forever stays"
    );
    for owner in [u[0], u[1]] {
        let left = s.messages_after(owner, &conv, 0, 10).await.expect("read");
        assert_eq!(left.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![4]);
    }
}

/// `none` messages go when delivered (only those named, only to their
/// receiver); `offline` and `forever` ones stay; `none` also expires.
pub async fn retention_none_goes_on_delivery(s: Store) {
    let u = users(&s, &["a", "b"]).await;
    let conv = ConvId::direct(u[0], u[1]);
    send(&s, new_msg_kept(u[0], u[1], "n1", Persistence::None)).await;
    send(&s, new_msg_kept(u[0], u[1], "off", Persistence::Offline)).await;
    send(&s, new_msg(u[0], u[1], "keep")).await;
    send(&s, new_msg_kept(u[0], u[1], "n4", Persistence::None)).await;
    send(&s, new_msg_kept(u[1], u[0], "n5 to a", Persistence::None)).await;

    assert!(
        s.delete_delivered(u[0], &conv, &[1, 2, 3, 4])
            .await
            .expect("wrong receiver")
            .is_empty()
    );
    let hits = s
        .delete_delivered(u[1], &conv, &[1, 2, 3, 5])
        .await
        .expect("delivered");
    assert_eq!(
        hits,
        vec![RetentionHit {
            conv: conv.clone(),
            seq: 1,
            to: u[1]
        }]
    );
    assert!(
        s.delete_delivered(u[1], &conv, &[1])
            .await
            .expect("again")
            .is_empty(),
        "already gone"
    );
    let left = s.messages_after(u[1], &conv, 0, 10).await.expect("read");
    assert_eq!(
        left.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![2, 3, 4, 5]
    );

    let far = left[0].sent_at + 100 * 365 * DAY_MS;
    let expired = s.delete_expired(far, 100).await.expect("sweep");
    assert_eq!(
        hit_seqs(&expired),
        vec![2, 4, 5],
        "none and offline expire, forever stays"
    );
    assert_eq!(
        s.messages_after(u[0], &conv, 0, 10)
            .await
            .expect("read")
            .len(),
        1
    );
}

/// `offline` and `none` messages to the reader go once read up to a point;
/// later ones, `forever` ones and the other direction stay.
pub async fn retention_offline_goes_on_read(s: Store) {
    let u = users(&s, &["a", "b"]).await;
    let conv = ConvId::direct(u[0], u[1]);
    send(&s, new_msg_kept(u[0], u[1], "o1", Persistence::Offline)).await;
    send(
        &s,
        new_msg_kept(u[1], u[0], "o2 to a", Persistence::Offline),
    )
    .await;
    send(&s, new_msg_kept(u[0], u[1], "n3", Persistence::None)).await;
    send(&s, new_msg_kept(u[0], u[1], "d4", Persistence::Days(3))).await;
    send(&s, new_msg_kept(u[0], u[1], "o5", Persistence::Offline)).await;

    let hits = s.delete_read(u[1], &conv, 4).await.expect("read");
    assert_eq!(hit_seqs(&hits), vec![1, 3]);
    assert!(hits.iter().all(|h| h.to == u[1] && h.conv == conv));
    assert!(
        s.delete_read(u[1], &conv, 4)
            .await
            .expect("again")
            .is_empty()
    );
    for owner in [u[0], u[1]] {
        let left = s.messages_after(owner, &conv, 0, 10).await.expect("read");
        assert_eq!(
            left.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![2, 4, 5]
        );
    }
    // Retention does not rewind the conversation: the next seq is still 6.
    assert_eq!(send(&s, new_msg(u[0], u[1], "next")).await, 6);
}
