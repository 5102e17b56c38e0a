//! Feed inbox cases (docs/feeds.md): pushes reach only materialised
//! inboxes, pages are newest first below a cursor, the cap keeps the
//! newest keys and the materialisation, removals take keys out.

use crate::State;
use magpie_core::{PostId, UserId};

const HOUR: u64 = 3_600_000;

/// Post ids past 2^53 (a real id's size), which a double would round.
fn key(author: i64, post: i64) -> (UserId, PostId) {
    (UserId(author), PostId((1 << 60) + post))
}

/// An inbox takes pushes only once filled; its pages are newest first,
/// below the cursor, and the fill and later pushes merge.
pub async fn feed_inbox_fills_then_takes_pushes(s: State) {
    let (reader, other) = (UserId(7), UserId(8));
    let push = |keys: &[(UserId, PostId)], to: UserId| -> Vec<(UserId, UserId, PostId)> {
        keys.iter().map(|(a, p)| (to, *a, *p)).collect()
    };
    s.feed_push(&push(&[key(1, 10)], reader), 10)
        .await
        .expect("push");
    assert_eq!(
        s.feed_page(reader, None, 10).await.unwrap(),
        None,
        "not materialised"
    );

    s.feed_fill(reader, &[key(1, 5), key(2, 3)], 10, HOUR)
        .await
        .expect("fill");
    assert_eq!(
        s.feed_page(reader, None, 10).await.unwrap(),
        Some(vec![key(1, 5), key(2, 3)]),
        "the earlier push went nowhere"
    );
    s.feed_fill(other, &[], 10, HOUR)
        .await
        .expect("an empty feed");
    assert_eq!(s.feed_page(other, None, 10).await.unwrap(), Some(vec![]));

    let mut both = push(&[key(3, 9), key(1, 4)], reader);
    both.extend(push(&[key(3, 9)], other));
    s.feed_push(&both, 10).await.expect("push");
    let all = s.feed_page(reader, None, 10).await.unwrap().expect("inbox");
    assert_eq!(all, [key(3, 9), key(1, 5), key(1, 4), key(2, 3)]);
    assert_eq!(
        s.feed_page(other, None, 10).await.unwrap(),
        Some(vec![key(3, 9)])
    );
    let below = s.feed_page(reader, Some(key(1, 5).1), 2).await.unwrap();
    assert_eq!(
        below,
        Some(vec![key(1, 4), key(2, 3)]),
        "below the cursor, limited"
    );

    s.feed_remove(reader, &[key(1, 5), key(9, 9)])
        .await
        .expect("remove");
    let left = s.feed_page(reader, None, 10).await.unwrap().expect("inbox");
    assert_eq!(left, [key(3, 9), key(1, 4), key(2, 3)]);
}

/// The cap keeps the newest keys and the inbox stays materialised.
pub async fn feed_inbox_is_capped(s: State) {
    let reader = UserId(11);
    s.feed_fill(reader, &[key(1, 1), key(1, 2), key(1, 3)], 4, HOUR)
        .await
        .expect("fill");
    let more: Vec<(UserId, UserId, PostId)> = (4..=7)
        .map(|p| {
            let (a, post) = key(2, p);
            (reader, a, post)
        })
        .collect();
    s.feed_push(&more, 4).await.expect("push");
    let kept = s
        .feed_page(reader, None, 100)
        .await
        .unwrap()
        .expect("still materialised");
    assert_eq!(kept, [key(2, 7), key(2, 6), key(2, 5), key(2, 4)]);
}

/// An inbox lives `ttl_ms` from its last fill, whatever is pushed to it.
pub async fn feed_inbox_expires_unless_filled(s: State) {
    let reader = UserId(21);
    s.feed_fill(reader, &[key(1, 1)], 10, 300)
        .await
        .expect("fill");
    for p in 2..5 {
        let (a, post) = key(1, p);
        s.feed_push(&[(reader, a, post)], 10).await.expect("push");
    }
    assert!(s.feed_page(reader, None, 10).await.unwrap().is_some());
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    assert_eq!(
        s.feed_page(reader, None, 10).await.unwrap(),
        None,
        "expired"
    );
    s.feed_push(&[(reader, UserId(1), key(1, 9).1)], 10)
        .await
        .expect("push");
    assert_eq!(
        s.feed_page(reader, None, 10).await.unwrap(),
        None,
        "a push revives nothing"
    );
    s.feed_fill(reader, &[], 10, HOUR)
        .await
        .expect("fill again");
    assert_eq!(
        s.feed_page(reader, None, 10).await.unwrap(),
        Some(vec![]),
        "fresh"
    );
}
