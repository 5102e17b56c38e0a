//! State cases for offline queues and the unread-count cache.

use crate::{State, UnreadCache};
use magpie_core::{ConvId, Seq, UserId};

fn conv(a: i64, b: i64) -> ConvId {
    ConvId::direct(UserId(a), UserId(b))
}

fn item(user: i64, c: &ConvId, seq: Seq, payload: &str) -> (UserId, ConvId, Seq, String) {
    (UserId(user), c.clone(), seq, payload.to_string())
}

fn entries(v: &[(Seq, &str)]) -> Vec<(Seq, String)> {
    v.iter().map(|(s, p)| (*s, p.to_string())).collect()
}

async fn per_conv(st: &State, user: i64, c: &ConvId) -> Option<(i64, Seq)> {
    st.unread_get(UserId(user))
        .await
        .expect("get")?
        .per_conv
        .get(c)
        .copied()
}

/// Queues are ordered by seq whatever the insertion order, separate per
/// (user, conversation); `newest` and `after` respect their limits.
pub async fn offline_queue_order_and_limits(st: State) {
    let (c12, c13) = (conv(1, 2), conv(1, 3));
    st.offline_add(&[
        item(2, &c12, 3, "c"),
        item(2, &c12, 1, "a"),
        item(2, &c12, 5, "e"),
        item(1, &c12, 4, "mine"),
    ])
    .await
    .expect("add");
    st.offline_add(&[item(2, &c12, 2, "b"), item(2, &c13, 1, "other conv")])
        .await
        .expect("add");

    assert_eq!(
        st.offline_newest(UserId(2), &c12, 2).await.expect("newest"),
        entries(&[(5, "e"), (3, "c")])
    );
    assert_eq!(
        st.offline_newest(UserId(2), &c12, 10)
            .await
            .expect("newest")
            .len(),
        4
    );
    assert_eq!(
        st.offline_after(UserId(2), &c12, 0, 10)
            .await
            .expect("after"),
        entries(&[(1, "a"), (2, "b"), (3, "c"), (5, "e")])
    );
    assert_eq!(
        st.offline_after(UserId(2), &c12, 1, 2)
            .await
            .expect("after"),
        entries(&[(2, "b"), (3, "c")])
    );
    assert_eq!(
        st.offline_after(UserId(2), &c12, 3, 10)
            .await
            .expect("after"),
        entries(&[(5, "e")])
    );
    assert!(
        st.offline_after(UserId(2), &c12, 5, 10)
            .await
            .expect("after")
            .is_empty()
    );
    assert_eq!(
        st.offline_after(UserId(1), &c12, 0, 10)
            .await
            .expect("after"),
        entries(&[(4, "mine")])
    );
    assert_eq!(
        st.offline_after(UserId(2), &c13, 0, 10)
            .await
            .expect("after"),
        entries(&[(1, "other conv")])
    );
    assert!(
        st.offline_newest(UserId(3), &c13, 5)
            .await
            .expect("empty")
            .is_empty()
    );

    // Re-adding a seq replaces its entry rather than duplicating it.
    st.offline_add(&[item(2, &c12, 3, "c2")])
        .await
        .expect("replace");
    assert_eq!(
        st.offline_after(UserId(2), &c12, 2, 1)
            .await
            .expect("after"),
        entries(&[(3, "c2")])
    );
    assert_eq!(
        st.offline_newest(UserId(2), &c12, 10)
            .await
            .expect("newest")
            .len(),
        4
    );
}

/// Trim removes everything up to and including a seq and says how many;
/// remove drops single entries; both leave other queues alone.
pub async fn offline_trim_and_remove(st: State) {
    let (c12, c13) = (conv(1, 2), conv(1, 3));
    let items: Vec<_> = (1..=6)
        .map(|s| item(2, &c12, s, "p"))
        .chain([item(2, &c13, 1, "q")])
        .collect();
    st.offline_add(&items).await.expect("add");

    assert_eq!(st.offline_trim(UserId(2), &c12, 3).await.expect("trim"), 3);
    assert_eq!(
        st.offline_trim(UserId(2), &c12, 3)
            .await
            .expect("trim again"),
        0
    );
    assert_eq!(
        st.offline_trim(UserId(9), &c12, 3)
            .await
            .expect("trim unknown"),
        0
    );
    let seqs = |v: Vec<(Seq, String)>| v.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
    assert_eq!(
        seqs(
            st.offline_after(UserId(2), &c12, 0, 10)
                .await
                .expect("after")
        ),
        vec![4, 5, 6]
    );

    st.offline_remove(UserId(2), &c12, &[5, 99])
        .await
        .expect("remove");
    assert_eq!(
        seqs(
            st.offline_after(UserId(2), &c12, 0, 10)
                .await
                .expect("after")
        ),
        vec![4, 6]
    );
    assert_eq!(
        st.offline_trim(UserId(2), &c12, 100)
            .await
            .expect("trim all"),
        2
    );
    assert!(
        st.offline_newest(UserId(2), &c12, 10)
            .await
            .expect("newest")
            .is_empty()
    );
    assert_eq!(
        seqs(
            st.offline_after(UserId(2), &c13, 0, 10)
                .await
                .expect("other conv")
        ),
        vec![1]
    );
}

/// A queue keeps only its newest `OFFLINE_CAP` entries, whatever the order
/// they came in; the other queues are untouched.
pub async fn offline_queue_is_capped(st: State) {
    let (c12, c13) = (conv(1, 2), conv(1, 3));
    let n = crate::OFFLINE_CAP as Seq + 10;
    let items: Vec<_> = (1..=n).rev().map(|s| item(2, &c12, s, "id")).collect();
    for chunk in items.chunks(7) {
        st.offline_add(chunk).await.expect("add");
    }
    st.offline_add(&[item(2, &c13, 1, "other")])
        .await
        .expect("add");
    let kept = st
        .offline_after(UserId(2), &c12, 0, 1000)
        .await
        .expect("after");
    assert_eq!(kept.len(), crate::OFFLINE_CAP);
    assert_eq!(kept.first().map(|e| e.0), Some(11), "the oldest fell off");
    assert_eq!(kept.last().map(|e| e.0), Some(n));
    assert_eq!(
        st.offline_after(UserId(2), &c13, 0, 10)
            .await
            .expect("other")
            .len(),
        1
    );
}

/// Counting and resetting do nothing for a user whose cache is not loaded
/// (the next read rebuilds it from the store).
pub async fn unread_ignored_without_cache(st: State) {
    let c = conv(1, 2);
    assert_eq!(st.unread_get(UserId(2)).await.expect("get"), None);
    st.unread_count(&[(UserId(2), c.clone(), 1)])
        .await
        .expect("count");
    st.unread_reset(UserId(2), &c, 3, 1).await.expect("reset");
    assert_eq!(st.unread_get(UserId(2)).await.expect("get"), None);
}

/// A redelivered message (same or lower seq) is not counted twice.
pub async fn unread_watermark_prevents_double_count(st: State) {
    let (c12, c23) = (conv(1, 2), conv(2, 3));
    st.unread_load(UserId(2), &UnreadCache::default())
        .await
        .expect("load");
    let two = UserId(2);
    st.unread_count(&[
        (two, c12.clone(), 1),
        (two, c12.clone(), 2),
        (two, c12.clone(), 2),
        (UserId(5), c12.clone(), 9),
    ])
    .await
    .expect("count");
    assert_eq!(per_conv(&st, 2, &c12).await, Some((2, 2)));
    st.unread_count(&[(two, c12.clone(), 1), (two, c12.clone(), 2)])
        .await
        .expect("redelivered");
    assert_eq!(per_conv(&st, 2, &c12).await, Some((2, 2)));
    st.unread_count(&[(two, c12.clone(), 7), (two, c23.clone(), 4)])
        .await
        .expect("count");
    assert_eq!(
        per_conv(&st, 2, &c12).await,
        Some((3, 7)),
        "gaps are fine: watermark jumps"
    );
    let cache = st.unread_get(two).await.expect("get").expect("loaded");
    assert_eq!(cache.per_conv.get(&c23), Some(&(1, 4)));
    assert_eq!(cache.total(), 4);
    assert_eq!(
        st.unread_get(UserId(5)).await.expect("get"),
        None,
        "no cache, no count"
    );
}

/// Reset sets count and watermark unless newer messages were already counted.
pub async fn unread_reset_respects_newer_counts(st: State) {
    let (c12, c23) = (conv(1, 2), conv(2, 3));
    let two = UserId(2);
    st.unread_load(
        two,
        &UnreadCache {
            per_conv: [(c12.clone(), (5, 7))].into(),
        },
    )
    .await
    .expect("load");

    st.unread_reset(two, &c12, 0, 7).await.expect("read all");
    assert_eq!(per_conv(&st, 2, &c12).await, Some((0, 7)));
    st.unread_count(&[(two, c12.clone(), 8)])
        .await
        .expect("count");
    assert_eq!(per_conv(&st, 2, &c12).await, Some((1, 8)));
    // A reset computed before seq 8 arrived must not wipe it out.
    st.unread_reset(two, &c12, 0, 7).await.expect("stale reset");
    assert_eq!(per_conv(&st, 2, &c12).await, Some((1, 8)));
    st.unread_reset(two, &c12, 0, 8)
        .await
        .expect("reset at watermark");
    assert_eq!(per_conv(&st, 2, &c12).await, Some((0, 8)));
    // A conversation not yet in the cache takes the reset as is.
    st.unread_reset(two, &c23, 2, 4).await.expect("new conv");
    assert_eq!(per_conv(&st, 2, &c23).await, Some((2, 4)));
    st.unread_count(&[(two, c23.clone(), 4)])
        .await
        .expect("already counted");
    assert_eq!(per_conv(&st, 2, &c23).await, Some((2, 4)));
}

/// Load replaces the whole cache; get returns it; total sums the counts.
pub async fn unread_load_replaces_and_totals(st: State) {
    let (c12, c23, c24) = (conv(1, 2), conv(2, 3), conv(2, 4));
    let first = UnreadCache {
        per_conv: [(c12.clone(), (2, 2)), (c23.clone(), (3, 9))].into(),
    };
    st.unread_load(UserId(2), &first).await.expect("load");
    let got = st
        .unread_get(UserId(2))
        .await
        .expect("get")
        .expect("loaded");
    assert_eq!(got, first);
    assert_eq!(got.total(), 5);

    let second = UnreadCache {
        per_conv: [(c24.clone(), (1, 1))].into(),
    };
    st.unread_load(UserId(2), &second).await.expect("reload");
    assert_eq!(st.unread_get(UserId(2)).await.expect("get"), Some(second));
    assert_eq!(st.unread_get(UserId(3)).await.expect("other user"), None);

    st.unread_load(UserId(3), &UnreadCache::default())
        .await
        .expect("load empty");
    let empty = st
        .unread_get(UserId(3))
        .await
        .expect("get")
        .expect("loaded even if empty");
    assert_eq!(empty.total(), 0);
}

/// `arrived` is `offline_add` and `unread_count` together: queue entries
/// for every receiver, a count only where a cache is loaded, and a
/// redelivered arrival neither queued twice nor counted twice.
pub async fn arrivals_queue_and_count_once(st: State) {
    let (c12, c32) = (conv(1, 2), conv(3, 2));
    st.unread_load(UserId(2), &UnreadCache::default())
        .await
        .expect("load");
    let batch = [
        item(2, &c12, 1, "a"),
        item(2, &c12, 2, "b"),
        item(2, &c32, 1, "c"),
        item(4, &c12, 1, "d"),
    ];
    st.arrived(&batch).await.expect("arrived");
    st.arrived(&batch[..2]).await.expect("redelivered");
    assert_eq!(
        st.offline_after(UserId(2), &c12, 0, 10)
            .await
            .expect("queue"),
        entries(&[(1, "a"), (2, "b")])
    );
    assert_eq!(
        st.offline_after(UserId(4), &c12, 0, 10)
            .await
            .expect("queue")
            .len(),
        1,
        "queued without a cache"
    );
    assert_eq!(per_conv(&st, 2, &c12).await, Some((2, 2)));
    assert_eq!(per_conv(&st, 2, &c32).await, Some((1, 1)));
    assert_eq!(st.unread_get(UserId(4)).await.expect("get"), None);
    st.arrived(&[]).await.expect("nothing");
}
