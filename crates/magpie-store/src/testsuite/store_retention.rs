//! Retention store cases: expiry by age, `none` on delivery, `offline` on read.

use super::{new_msg, new_msg_kept, send, users};
use crate::{RetentionHit, Store};
use magpie_core::{ConvId, Persistence, Seq};

const DAY_MS: i64 = 86_400_000;

fn hit_seqs(hits: &[RetentionHit]) -> Vec<Seq> {
    let mut v: Vec<Seq> = hits.iter().map(|h| h.seq).collect();
    v.sort_unstable();
    v
}

/// `days:N` messages expire N days after sending, `forever` ones never; the
/// limit bounds one sweep; expired messages vanish for both parties.
pub async fn retention_days_expire(s: Store) {
    let messages = s.messages();
    let retention = s.retention();
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
        retention
            .delete_expired(base + DAY_MS, 100)
            .await
            .expect("sweep")
            .is_empty(),
        "not yet"
    );
    let first = retention
        .delete_expired(base + 3 * DAY_MS, 2)
        .await
        .expect("sweep");
    assert_eq!(first.len(), 2, "limit respected");
    let rest = retention
        .delete_expired(base + 3 * DAY_MS, 100)
        .await
        .expect("sweep");
    let all: Vec<RetentionHit> = first.into_iter().chain(rest).collect();
    assert_eq!(hit_seqs(&all), vec![1, 2, 3]);
    assert!(all.iter().all(|h| h.conv == conv && h.to == u[1]));

    let far = base + 100 * 365 * DAY_MS;
    assert!(
        retention
            .delete_expired(far, 100)
            .await
            .expect("sweep")
            .is_empty(),
        "forever stays"
    );
    for owner in [u[0], u[1]] {
        let left = messages
            .messages_after(owner, &conv, 0, 10)
            .await
            .expect("read");
        assert_eq!(left.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![4]);
    }
}

/// `none` messages go when delivered (only those named, only to their
/// receiver); `offline` and `forever` ones stay; `none` also expires.
pub async fn retention_none_goes_on_delivery(s: Store) {
    let messages = s.messages();
    let retention = s.retention();
    let u = users(&s, &["a", "b"]).await;
    let conv = ConvId::direct(u[0], u[1]);
    send(&s, new_msg_kept(u[0], u[1], "n1", Persistence::None)).await;
    send(&s, new_msg_kept(u[0], u[1], "off", Persistence::Offline)).await;
    send(&s, new_msg(u[0], u[1], "keep")).await;
    send(&s, new_msg_kept(u[0], u[1], "n4", Persistence::None)).await;
    send(&s, new_msg_kept(u[1], u[0], "n5 to a", Persistence::None)).await;

    assert!(
        retention
            .delete_delivered(u[0], &conv, &[1, 2, 3, 4])
            .await
            .expect("wrong receiver")
            .is_empty()
    );
    let hits = retention
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
        retention
            .delete_delivered(u[1], &conv, &[1])
            .await
            .expect("again")
            .is_empty(),
        "already gone"
    );
    let left = messages
        .messages_after(u[1], &conv, 0, 10)
        .await
        .expect("read");
    assert_eq!(
        left.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![2, 3, 4, 5]
    );

    let far = left[0].sent_at + 100 * 365 * DAY_MS;
    let expired = retention.delete_expired(far, 100).await.expect("sweep");
    assert_eq!(
        hit_seqs(&expired),
        vec![2, 4, 5],
        "none and offline expire, forever stays"
    );
    assert_eq!(
        messages
            .messages_after(u[0], &conv, 0, 10)
            .await
            .expect("read")
            .len(),
        1
    );
}

/// `offline` and `none` messages to the reader go once read up to a point;
/// later ones, `forever` ones and the other direction stay.
pub async fn retention_offline_goes_on_read(s: Store) {
    let messages = s.messages();
    let retention = s.retention();
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

    let hits = retention.delete_read(u[1], &conv, 4).await.expect("read");
    assert_eq!(hit_seqs(&hits), vec![1, 3]);
    assert!(hits.iter().all(|h| h.to == u[1] && h.conv == conv));
    assert!(
        retention
            .delete_read(u[1], &conv, 4)
            .await
            .expect("again")
            .is_empty()
    );
    for owner in [u[0], u[1]] {
        let left = messages
            .messages_after(owner, &conv, 0, 10)
            .await
            .expect("read");
        assert_eq!(
            left.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![2, 4, 5]
        );
    }
    // Retention does not rewind the conversation: the next seq is still 6.
    assert_eq!(send(&s, new_msg(u[0], u[1], "next")).await, 6);
}
