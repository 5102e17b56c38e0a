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
    Some(InboxPage {
        keys,
        floor,
        big_seen: 0,
    })
}

async fn inbox(s: &State, user: UserId, before: Option<PostId>, n: usize) -> Option<InboxPage> {
    s.feed_page(user, before, n).await.expect("page")
}

/// An inbox takes pushes only once marked; its pages are newest first,
/// below the cursor, with the floor it was marked with.
pub async fn feed_inbox_is_marked_then_pushed_to(s: State) {
    let (reader, other) = (UserId(7), UserId(8));
    s.feed_push(&pushes(&[key(1, 10)], reader), 10)
        .await
        .expect("push");
    assert_eq!(inbox(&s, reader, None, 10).await, None, "not marked");
    s.feed_fill(other, &[key(1, 1)], Floor::Keep, 10, HOUR)
        .await
        .expect("fill");
    assert_eq!(
        inbox(&s, other, None, 10).await,
        None,
        "a fill marks nothing"
    );

    let two = [key(1, 5), key(2, 3)];
    s.feed_fill(reader, &two, Floor::Unknown, 10, HOUR)
        .await
        .expect("mark");
    let got = inbox(&s, reader, None, 10).await;
    assert_eq!(got, page(vec![key(1, 5), key(2, 3)], PostId(i64::MAX)));
    s.feed_fill(reader, &[], Floor::Set(key(2, 3).1), 10, HOUR)
        .await
        .expect("floor");
    s.feed_fill(other, &[], Floor::Set(PostId(0)), 10, HOUR)
        .await
        .expect("mark");
    assert_eq!(inbox(&s, other, None, 10).await, page(vec![], PostId(0)));

    let mut both = pushes(&[key(3, 9), key(1, 4)], reader);
    both.extend(pushes(&[key(3, 9)], other));
    s.feed_push(&both, 10).await.expect("push");
    s.feed_fill(reader, &[key(4, 8)], Floor::Keep, 10, HOUR)
        .await
        .expect("fill");
    let all = inbox(&s, reader, None, 10).await.expect("inbox");
    assert_eq!(
        all.keys,
        [key(3, 9), key(4, 8), key(1, 5), key(1, 4), key(2, 3)]
    );
    assert_eq!(all.floor, key(2, 3).1, "the floor set last");
    let theirs = inbox(&s, other, None, 10).await;
    assert_eq!(theirs, page(vec![key(3, 9)], PostId(0)));
    let below = s.feed_page(reader, Some(key(1, 5).1), 2).await.unwrap();
    assert_eq!(below.map(|p| p.keys), Some(vec![key(1, 4), key(2, 3)]));

    s.feed_remove(reader, &[key(1, 5), key(9, 9)])
        .await
        .expect("remove");
    let left = inbox(&s, reader, None, 10).await.expect("inbox");
    assert_eq!(left.keys, [key(3, 9), key(4, 8), key(1, 4), key(2, 3)]);
    s.feed_drop(reader).await.expect("drop");
    assert_eq!(inbox(&s, reader, None, 10).await, None, "dropped");
    let theirs = inbox(&s, other, None, 10).await;
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
    let kept = inbox(&s, reader, None, 100).await.expect("inbox");
    assert_eq!(kept.keys, [key(2, 7), key(2, 6), key(2, 5), key(2, 4)]);
    assert_eq!(kept.floor, key(2, 4).1, "what fell off is below the floor");

    // Full, but nothing dropped: the floor stays.
    let full = UserId(12);
    s.feed_fill(full, &[key(1, 1)], Floor::Set(PostId(0)), 2, HOUR)
        .await
        .expect("mark");
    s.feed_push(&pushes(&[key(1, 2)], full), 2)
        .await
        .expect("push");
    let kept = inbox(&s, full, None, 10).await.expect("inbox");
    assert_eq!((kept.keys.len(), kept.floor), (2, PostId(0)));
    s.feed_push(&pushes(&[key(1, 3)], full), 2)
        .await
        .expect("push");
    let kept = inbox(&s, full, None, 10).await.expect("inbox");
    assert_eq!(kept.keys, [key(1, 3), key(1, 2)]);
    assert_eq!(kept.floor, key(1, 2).1, "one dropped: the floor rises");
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
    assert!(inbox(&s, reader, None, 10).await.is_some());
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    assert_eq!(inbox(&s, reader, None, 10).await, None, "expired");
    s.feed_push(&pushes(&[key(1, 9)], reader), 10)
        .await
        .expect("push");
    s.feed_fill(reader, &[key(1, 9)], Floor::Keep, 10, HOUR)
        .await
        .expect("fill");
    assert_eq!(
        inbox(&s, reader, None, 10).await,
        None,
        "nothing revives it"
    );
    s.feed_fill(reader, &[], Floor::Unknown, 10, HOUR)
        .await
        .expect("mark again");
    let fresh = inbox(&s, reader, None, 10).await;
    assert_eq!(fresh, page(vec![], PostId(i64::MAX)), "fresh");
}

/// A settle sets the floor only while the inbox knows nothing: not on an
/// inbox that is gone (dropped meanwhile), not over another's settle.
pub async fn feed_inbox_settles_once(s: State) {
    let reader = UserId(31);
    let settle = Floor::Settle(PostId(0), 3);
    s.feed_fill(reader, &[key(1, 5)], settle, 10, HOUR)
        .await
        .expect("settle");
    assert_eq!(inbox(&s, reader, None, 10).await, None, "nothing to settle");
    s.feed_fill(reader, &[], Floor::Unknown, 10, HOUR)
        .await
        .expect("mark");
    let unknown = inbox(&s, reader, None, 10).await.expect("marked");
    assert_eq!(unknown.floor, PostId(i64::MAX));
    let first = Floor::Settle(key(1, 5).1, 7);
    s.feed_fill(reader, &[key(1, 5)], first, 10, HOUR)
        .await
        .expect("settle");
    let second = Floor::Settle(key(1, 2).1, 8);
    s.feed_fill(reader, &[key(1, 2)], second, 10, HOUR)
        .await
        .expect("again");
    let settled = inbox(&s, reader, None, 10).await;
    let mut want = page(vec![key(1, 5), key(1, 2)], key(1, 5).1);
    want.as_mut().unwrap().big_seen = 7;
    assert_eq!(settled, want, "the first settle wins");
    s.feed_push(&pushes(&[key(2, 9)], reader), 10)
        .await
        .unwrap();
    s.feed_fill(reader, &[], Floor::Keep, 10, HOUR)
        .await
        .unwrap();
    let kept = inbox(&s, reader, None, 10).await.expect("inbox");
    assert_eq!(
        (kept.floor, kept.big_seen),
        (key(1, 5).1, 7),
        "kept by pushes and fills"
    );
    s.feed_fill(reader, &[], Floor::Unknown, 10, HOUR)
        .await
        .unwrap();
    let again = inbox(&s, reader, None, 10).await.expect("inbox");
    assert_eq!(
        (again.floor, again.big_seen),
        (PostId(i64::MAX), 0),
        "a mark forgets"
    );
}

/// Flags stay; a subscription is seen by a scan until its deadline; a
/// refresh tells whether every subscription was still there.
pub async fn feed_subscribers_scan_and_expire(s: State) {
    let (big, other) = (UserId(41), UserId(42));
    let none = s.feed_big(&[big, other]).await.unwrap();
    assert_eq!(none.flagged, vec![]);
    let at = s.feed_set_big(big).await.unwrap();
    assert!(at > none.seq, "a later flag has a higher sequence");
    assert_eq!(s.feed_set_big(big).await.unwrap(), at, "it stays");
    let one = s.feed_big(&[big, other]).await.unwrap();
    assert_eq!((one.flagged, one.seq), (vec![(big, at)], at));
    let second = s.feed_set_big(other).await.unwrap();
    assert!(second > at);
    assert_eq!(s.feed_big(&[]).await.unwrap().seq, second);

    let now = magpie_core::now_ms();
    let long = now + HOUR as i64;
    let readers: Vec<UserId> = (1..=250).map(UserId).collect();
    for r in &readers {
        let fresh = s.feed_subscribe(*r, &[big], long).await.unwrap();
        assert!(!fresh, "a first subscription was not there");
    }
    assert!(s.feed_subscribe(UserId(1), &[big], long).await.unwrap());
    assert!(
        !s.feed_subscribe(UserId(1), &[big, other], long)
            .await
            .unwrap(),
        "one of two was not there"
    );
    s.feed_subscribe(UserId(999), &[big], now + 300)
        .await
        .unwrap();

    let scan = |s: State| async move {
        let (mut seen, mut cursor) = (Vec::new(), 0);
        loop {
            let (page, next) = s.feed_subscribers(big, cursor, 40).await.unwrap();
            seen.extend(page);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        seen.sort();
        seen.dedup();
        seen
    };
    let mut with_short = readers.clone();
    with_short.push(UserId(999));
    assert_eq!(scan(s.clone()).await, with_short);
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    assert_eq!(scan(s.clone()).await, readers, "the short one expired");
    assert!(
        !s.feed_subscribe(UserId(999), &[big], long).await.unwrap(),
        "an expired subscription counts as missing"
    );
    let (page, _) = s.feed_subscribers(other, 0, 40).await.unwrap();
    assert_eq!(page, vec![UserId(1)]);
}
