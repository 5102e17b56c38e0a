//! Feed inbox cases (docs/feeds.md): pushes reach only marked inboxes,
//! pages are newest first below a cursor with the floor, the cap keeps the
//! newest keys and raises the floor, an inbox lives from its last fill.

use crate::{Floor, InboxPage, State};
use magpie_core::{PostId, UserId};

const HOUR: u64 = 3_600_000;

/// Post ids past 2^53 (a real id's size), which a double would round.
fn key(author: i64, post: i64) -> (UserId, PostId) {
    (UserId(author), PostId((1 << 60) + post))
}

fn pushes(keys: &[(UserId, PostId)], to: UserId) -> Vec<(UserId, UserId, PostId)> {
    keys.iter().map(|(a, p)| (to, *a, *p)).collect()
}

fn page(keys: Vec<(UserId, PostId)>, floor: PostId) -> Option<InboxPage> {
    Some(InboxPage { keys, floor })
}

/// An inbox takes pushes only once marked; its pages are newest first,
/// below the cursor, with the floor it was marked with.
pub async fn feed_inbox_is_marked_then_pushed_to(s: State) {
    let (reader, other) = (UserId(7), UserId(8));
    s.feed_push(&pushes(&[key(1, 10)], reader), 10)
        .await
        .expect("push");
    assert_eq!(
        s.feed_page(reader, None, 10).await.unwrap(),
        None,
        "not marked"
    );
    s.feed_fill(other, &[key(1, 1)], Floor::Keep, 10, HOUR)
        .await
        .expect("fill");
    assert_eq!(
        s.feed_page(other, None, 10).await.unwrap(),
        None,
        "a fill marks nothing"
    );

    let two = [key(1, 5), key(2, 3)];
    s.feed_fill(reader, &two, Floor::Unknown, 10, HOUR)
        .await
        .expect("mark");
    let got = s.feed_page(reader, None, 10).await.unwrap();
    assert_eq!(got, page(vec![key(1, 5), key(2, 3)], PostId(i64::MAX)));
    s.feed_fill(reader, &[], Floor::Set(key(2, 3).1), 10, HOUR)
        .await
        .expect("floor");
    s.feed_fill(other, &[], Floor::Set(PostId(0)), 10, HOUR)
        .await
        .expect("mark");
    assert_eq!(
        s.feed_page(other, None, 10).await.unwrap(),
        page(vec![], PostId(0))
    );

    let mut both = pushes(&[key(3, 9), key(1, 4)], reader);
    both.extend(pushes(&[key(3, 9)], other));
    s.feed_push(&both, 10).await.expect("push");
    s.feed_fill(reader, &[key(4, 8)], Floor::Keep, 10, HOUR)
        .await
        .expect("fill");
    let all = s.feed_page(reader, None, 10).await.unwrap().expect("inbox");
    assert_eq!(
        all.keys,
        [key(3, 9), key(4, 8), key(1, 5), key(1, 4), key(2, 3)]
    );
    assert_eq!(all.floor, key(2, 3).1, "the floor set last");
    let theirs = s.feed_page(other, None, 10).await.unwrap();
    assert_eq!(theirs, page(vec![key(3, 9)], PostId(0)));
    let below = s.feed_page(reader, Some(key(1, 5).1), 2).await.unwrap();
    assert_eq!(below.map(|p| p.keys), Some(vec![key(1, 4), key(2, 3)]));

    s.feed_remove(reader, &[key(1, 5), key(9, 9)])
        .await
        .expect("remove");
    let left = s.feed_page(reader, None, 10).await.unwrap().expect("inbox");
    assert_eq!(left.keys, [key(3, 9), key(4, 8), key(1, 4), key(2, 3)]);
    s.feed_drop(reader).await.expect("drop");
    assert_eq!(
        s.feed_page(reader, None, 10).await.unwrap(),
        None,
        "dropped"
    );
    let theirs = s.feed_page(other, None, 10).await.unwrap();
    assert_eq!(theirs, page(vec![key(3, 9)], PostId(0)), "only that inbox");
}

/// The cap keeps the newest keys; the floor rises to the oldest kept.
pub async fn feed_inbox_is_capped(s: State) {
    let reader = UserId(11);
    let first = [key(1, 1), key(1, 2), key(1, 3)];
    s.feed_fill(reader, &first, Floor::Set(PostId(0)), 4, HOUR)
        .await
        .expect("mark");
    let more: Vec<(UserId, PostId)> = (4..=7).map(|p| key(2, p)).collect();
    s.feed_push(&pushes(&more, reader), 4).await.expect("push");
    let kept = s
        .feed_page(reader, None, 100)
        .await
        .unwrap()
        .expect("inbox");
    assert_eq!(kept.keys, [key(2, 7), key(2, 6), key(2, 5), key(2, 4)]);
    assert_eq!(kept.floor, key(2, 4).1, "what fell off is below the floor");
}

/// An inbox lives `ttl_ms` from its last fill, whatever is pushed to it.
pub async fn feed_inbox_expires_unless_filled(s: State) {
    let reader = UserId(21);
    s.feed_fill(reader, &[key(1, 1)], Floor::Set(PostId(0)), 10, 300)
        .await
        .expect("mark");
    for p in 2..5 {
        s.feed_push(&pushes(&[key(1, p)], reader), 10)
            .await
            .expect("push");
    }
    assert!(s.feed_page(reader, None, 10).await.unwrap().is_some());
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    assert_eq!(
        s.feed_page(reader, None, 10).await.unwrap(),
        None,
        "expired"
    );
    s.feed_push(&pushes(&[key(1, 9)], reader), 10)
        .await
        .expect("push");
    s.feed_fill(reader, &[key(1, 9)], Floor::Keep, 10, HOUR)
        .await
        .expect("fill");
    assert_eq!(
        s.feed_page(reader, None, 10).await.unwrap(),
        None,
        "nothing revives it"
    );
    s.feed_fill(reader, &[], Floor::Unknown, 10, HOUR)
        .await
        .expect("mark again");
    let fresh = s.feed_page(reader, None, 10).await.unwrap();
    assert_eq!(fresh, page(vec![], PostId(i64::MAX)), "fresh");
}

/// A settle sets the floor only while the inbox knows nothing: not on an
/// inbox that is gone (dropped meanwhile), not over another's settle.
pub async fn feed_inbox_settles_once(s: State) {
    let reader = UserId(31);
    let settle = Floor::Settle(PostId(0));
    s.feed_fill(reader, &[key(1, 5)], settle, 10, HOUR)
        .await
        .expect("settle");
    assert_eq!(
        s.feed_page(reader, None, 10).await.unwrap(),
        None,
        "nothing to settle"
    );
    s.feed_fill(reader, &[], Floor::Unknown, 10, HOUR)
        .await
        .expect("mark");
    let unknown = s
        .feed_page(reader, None, 10)
        .await
        .unwrap()
        .expect("marked");
    assert_eq!(unknown.floor, PostId(i64::MAX));
    let first = Floor::Settle(key(1, 5).1);
    s.feed_fill(reader, &[key(1, 5)], first, 10, HOUR)
        .await
        .expect("settle");
    let second = Floor::Settle(key(1, 2).1);
    s.feed_fill(reader, &[key(1, 2)], second, 10, HOUR)
        .await
        .expect("again");
    let settled = s.feed_page(reader, None, 10).await.unwrap();
    let want = page(vec![key(1, 5), key(1, 2)], key(1, 5).1);
    assert_eq!(settled, want, "the first settle wins");
}
