//! State cases for the offline index's time buckets (`crate::offline`):
//! reads across segments answer as one sorted set, the cap holds per
//! segment, segments expire whole, trims and removals span them.

use crate::{Bucket, BucketUnit, OfflineOptions, State};
use magpie_core::{ConvId, Seq, ServerMsgId, UserId, now_ms};
use std::collections::BTreeMap;

pub(super) const DAY: i64 = 86_400_000;

/// A server message id taken at `ms` (`MsgIdGen`'s layout: 41 bits of ms
/// since 2024-01-01, 22 bits of node and counter, here `n`).
pub fn server_id_at(ms: i64, n: i64) -> String {
    let id = ServerMsgId(((ms - 1_704_067_200_000) << 22) | (n & 0x3f_ffff));
    assert_eq!(id.unix_ms(), Some(ms), "an id of {ms}");
    id.0.to_string()
}

pub(super) fn opts(unit: BucketUnit, cap: usize, keep_ms: i64) -> OfflineOptions {
    OfflineOptions {
        unit,
        cap,
        keep_ms: keep_ms as u64,
    }
}

pub(super) type Model = BTreeMap<Seq, String>;

/// What `newest` and `after` must answer, read off a plain sorted map.
pub(super) async fn check_reads(st: &State, user: UserId, c: &ConvId, model: &Model) {
    let all: Vec<(Seq, String)> = model.iter().map(|(s, p)| (*s, p.clone())).collect();
    let len = all.len();
    for n in [0, 1, 7, len.saturating_sub(1), len, len + 5] {
        let newest = st.offline_newest(user, c, n).await.expect("newest");
        let want: Vec<_> = all.iter().rev().take(n).cloned().collect();
        assert_eq!(newest, want, "newest {n}");
    }
    let cuts = [0, 1, len / 3, len / 2, len.saturating_sub(2)];
    for after in cuts
        .iter()
        .filter_map(|&i| all.get(i).map(|e| e.0))
        .chain([0])
    {
        for n in [1, 5, len + 1] {
            let got = st.offline_after(user, c, after, n).await.expect("after");
            let want: Vec<_> = model
                .range(after + 1..)
                .take(n)
                .map(|(s, p)| (*s, p.clone()))
                .collect();
            assert_eq!(got, want, "after {after}, {n}");
        }
    }
}

/// Entries whose messages span months land in one segment per week; read
/// back, they are one queue in seq order whatever order they came in and
/// whatever their times (a late seq with an early time is fine); a seq
/// re-added with another time moves to that bucket, keeping one entry;
/// segments of another unit (the option changed) join the same reads.
pub async fn offline_reads_in_order_across_buckets(st: State) {
    let st = st.with_offline(opts(BucketUnit::Week, 1_000, 400 * DAY));
    let (user, c) = (UserId(2), ConvId::direct(UserId(1), UserId(2)));
    let now = now_ms();
    let mut model = Model::new();
    // Seqs 1..=60 two days apart, then 61..=64 back in older weeks.
    let mut items: Vec<(UserId, ConvId, Seq, String)> = (1..=64)
        .map(|seq| {
            let age = if seq <= 60 { 60 - seq } else { 90 - seq };
            let payload = server_id_at(now - age * 2 * DAY, seq);
            model.insert(seq, payload.clone());
            (user, c.clone(), seq, payload)
        })
        .collect();
    // A fixed shuffle, in batches, with another queue's entries between.
    items.sort_by_key(|i| (i.2 * 37) % 67);
    let other = ConvId::direct(UserId(2), UserId(3));
    for (k, chunk) in items.chunks(9).enumerate() {
        let noise = (user, other.clone(), k as Seq + 1, server_id_at(now, 0));
        st.offline_add(&[chunk, &[noise]].concat())
            .await
            .expect("add");
    }
    let segs = st.offline_segments(user, &c).await.expect("segments");
    assert!(segs.len() >= 17, "{} weekly segments", segs.len());
    assert_eq!(segs.iter().map(|s| s.len).sum::<usize>(), 64);
    let ends: Vec<i64> = segs
        .iter()
        .filter_map(|s| s.bucket.map(Bucket::end_ms))
        .collect();
    assert!(ends.windows(2).all(|w| w[0] > w[1]), "newest first");
    check_reads(&st, user, &c, &model).await;

    // Seq 30 re-added with a message time of today: it leaves its old week.
    let moved = server_id_at(now, 30);
    st.offline_add(&[(user, c.clone(), 30, moved.clone())])
        .await
        .expect("move");
    model.insert(30, moved);
    let after = st.offline_segments(user, &c).await.expect("segments");
    assert_eq!(after.iter().map(|s| s.len).sum::<usize>(), 64);
    assert_eq!(after.len(), segs.len(), "seq 30's old week kept others");
    check_reads(&st, user, &c, &model).await;
    let others = st.offline_after(user, &other, 0, 100).await.expect("other");
    assert_eq!(others.len(), 8, "the other queue is its own");

    // The unit changed (weeks to months): both kinds read as one queue.
    let monthly = st.with_offline(opts(BucketUnit::Month, 1_000, 400 * DAY));
    let late = server_id_at(now, 65);
    monthly
        .offline_add(&[(user, c.clone(), 65, late.clone())])
        .await
        .expect("add monthly");
    model.insert(65, late);
    let units: Vec<_> = st.offline_segments(user, &c).await.expect("segments");
    let units: Vec<_> = units
        .iter()
        .filter_map(|s| s.bucket.map(|b| b.unit))
        .collect();
    assert!(units.contains(&BucketUnit::Month) && units.contains(&BucketUnit::Week));
    check_reads(&st, user, &c, &model).await;
}

/// Each segment keeps its own newest `cap`; the unit decides the segments:
/// the same three months are 3 monthly segments or 13+ weekly ones.
pub async fn offline_cap_applies_per_segment(st: State) {
    let monthly = st.with_offline(opts(BucketUnit::Month, 5, 400 * DAY));
    let weekly = st.with_offline(opts(BucketUnit::Week, 5, 400 * DAY));
    let c = ConvId::direct(UserId(1), UserId(2));
    let now = now_ms();
    let this_month = Bucket::of(BucketUnit::Month, now);
    let mut model = Model::new();
    let mut items = Vec::new();
    // Eight entries in each of three months, a day apart from the month's
    // 2nd (oldest month first, seqs ascending with time).
    for (k, months_back) in [2i64, 1, 0].into_iter().enumerate() {
        let month = Bucket {
            n: this_month.n - months_back,
            ..this_month
        };
        let start = Bucket {
            n: month.n - 1,
            ..month
        }
        .end_ms()
            + DAY;
        let mut kept = Vec::new();
        for i in 0..8 {
            let seq = k as Seq * 8 + i + 1;
            let at = (start + i * DAY / 2).min(now);
            kept.push((seq, server_id_at(at, seq)));
        }
        model.extend(kept[3..].iter().cloned());
        items.extend(kept);
    }
    for (st, user) in [(&monthly, UserId(2)), (&weekly, UserId(3))] {
        let batch: Vec<_> = items
            .iter()
            .map(|(s, p)| (user, c.clone(), *s, p.clone()))
            .collect();
        for chunk in batch.chunks(5) {
            st.offline_add(chunk).await.expect("add");
        }
    }
    let segs = monthly
        .offline_segments(UserId(2), &c)
        .await
        .expect("segments");
    assert_eq!(segs.iter().map(|s| s.len).collect::<Vec<_>>(), [5, 5, 5]);
    check_reads(&monthly, UserId(2), &c, &model).await;
    let weeks = weekly
        .offline_segments(UserId(3), &c)
        .await
        .expect("segments");
    assert!(
        weeks.len() >= 3 && weeks.iter().all(|s| s.len <= 5),
        "{weeks:?}"
    );
    assert!(
        weeks
            .iter()
            .all(|s| s.bucket.map(|b| b.unit) == Some(BucketUnit::Week)),
        "{weeks:?}"
    );
}

/// A segment goes whole at its deadline (its bucket's end plus `keep_ms`):
/// every entry of the oldest month at once, nothing of the newer ones; an
/// entry for a bucket already past is not kept; trims and removals then
/// count only what is live, across the remaining segments.
pub async fn offline_segments_expire_whole(st: State) {
    let now = now_ms();
    let unit = BucketUnit::Month;
    let current = Bucket::of(unit, now);
    let oldest = Bucket {
        n: current.n - 2,
        ..current
    };
    // The oldest month's segment lives 700 ms more; the next one a month more.
    let keep = now - oldest.end_ms() + 700;
    let st = st.with_offline(opts(unit, 100, keep));
    let (user, c) = (UserId(2), ConvId::direct(UserId(1), UserId(2)));
    let mut items = Vec::new();
    for (k, b) in [
        oldest,
        Bucket {
            n: current.n - 1,
            ..current
        },
        current,
    ]
    .iter()
    .enumerate()
    {
        let start = Bucket { n: b.n - 1, ..*b }.end_ms();
        for i in 0..4 {
            let seq = k as Seq * 4 + i + 1;
            let at = (start + (i + 1) * DAY).min(now);
            items.push((user, c.clone(), seq, server_id_at(at, seq)));
        }
    }
    st.offline_add(&items).await.expect("add");
    let segs = st.offline_segments(user, &c).await.expect("segments");
    assert_eq!(segs.len(), 3);
    assert_eq!(segs[2].bucket, Some(oldest));
    assert_eq!(segs[2].expires_at, Some(now + 700));

    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let segs = st.offline_segments(user, &c).await.expect("segments");
    assert_eq!(
        segs.iter().map(|s| s.len).collect::<Vec<_>>(),
        [4, 4],
        "{segs:?}"
    );
    let seqs = |v: Vec<(Seq, String)>| v.into_iter().map(|e| e.0).collect::<Vec<_>>();
    let live = st.offline_after(user, &c, 0, 100).await.expect("after");
    assert_eq!(seqs(live), (5..=12).collect::<Vec<_>>());
    // A late entry for the expired month is not kept.
    let late = (user, c.clone(), 13, items[0].3.clone());
    st.offline_add(&[late]).await.expect("late add");
    assert_eq!(
        st.offline_newest(user, &c, 1).await.expect("newest")[0].0,
        12
    );

    // Trim through the middle of the second month: only live entries count.
    assert_eq!(st.offline_trim(user, &c, 6).await.expect("trim"), 2);
    st.offline_remove(user, &c, &[7, 10, 99])
        .await
        .expect("remove");
    let live = st.offline_after(user, &c, 0, 100).await.expect("after");
    assert_eq!(seqs(live), [8, 9, 11, 12]);
    assert_eq!(st.offline_trim(user, &c, 8).await.expect("trim"), 1);
    let segs = st.offline_segments(user, &c).await.expect("segments");
    assert_eq!(
        segs.iter().map(|s| s.len).collect::<Vec<_>>(),
        [3],
        "{segs:?}"
    );
    assert_eq!(st.offline_trim(user, &c, 100).await.expect("trim all"), 3);
    assert!(
        st.offline_segments(user, &c)
            .await
            .expect("segments")
            .is_empty()
    );
}
