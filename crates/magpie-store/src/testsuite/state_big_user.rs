//! The big-user case of issue 12: one receiver with many offline entries
//! (50,000 in the suite, 1,000,000 in the mem, Redis and Redis Cluster
//! test binaries) spread over 12
//! months in one conversation, the worst case for a single key.

use super::state_buckets::{DAY, Model, check_reads, opts, server_id_at};
use crate::{Bucket, BucketUnit, State};
use magpie_core::{ConvId, Seq, UserId, now_ms};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Entries one segment keeps in this case.
pub const BIG_CAP: usize = 2_000;

/// What a big-user run leaves, for checks only a backend can make (Redis:
/// the size of every key of the user).
pub struct BigUser {
    pub user: UserId,
    pub conv: ConvId,
    /// The month whose segment expired at the end of the run.
    pub expired: Bucket,
    /// The segments left.
    pub live: usize,
}

/// The suite's size: 50,000 entries.
pub async fn offline_big_user(st: State) {
    offline_big_user_of(&st, 50_000).await;
}

/// `total` entries, seqs ascending with their messages' times, evenly over
/// the current month and the eleven before it, written in batches of
/// 2,000. Then: every segment holds at most [`BIG_CAP`] (the newest of its
/// month), reads answer as one sorted set of what was kept, and when the
/// oldest segment's deadline passes it goes whole, the rest untouched.
pub async fn offline_big_user_of(st: &State, total: i64) -> BigUser {
    let unit = BucketUnit::Month;
    let (user, conv) = (UserId(7), ConvId::direct(UserId(7), UserId(8)));
    let now = now_ms();
    let current = Bucket::of(unit, now);
    let first = Bucket {
        n: current.n - 11,
        ..current
    };
    let start = Bucket {
        n: first.n - 1,
        ..first
    }
    .end_ms();
    let at = |seq: Seq| start + ((now - start) as i128 * (seq - 1) as i128 / total as i128) as i64;

    // What must be kept: the newest BIG_CAP of each month.
    let mut kept: BTreeMap<Bucket, VecDeque<(Seq, String)>> = BTreeMap::new();
    let long = st.with_offline(opts(unit, BIG_CAP, 400 * DAY));
    let mut batch = Vec::with_capacity(2_000);
    for seq in 1..=total {
        let payload = server_id_at(at(seq), seq);
        let month = kept.entry(Bucket::of(unit, at(seq))).or_default();
        month.push_back((seq, payload.clone()));
        if month.len() > BIG_CAP {
            month.pop_front();
        }
        batch.push((user, conv.clone(), seq, payload));
        if batch.len() == 2_000 || seq == total {
            long.offline_add(&batch).await.expect("add");
            batch.clear();
        }
    }
    assert_eq!(kept.len(), 12, "twelve months");
    let model: Model = kept.values().flatten().cloned().collect();

    let segs = st.offline_segments(user, &conv).await.expect("segments");
    let sizes: Vec<usize> = segs.iter().map(|s| s.len).collect();
    let want: Vec<usize> = kept.values().rev().map(VecDeque::len).collect();
    assert_eq!(
        sizes, want,
        "one segment a month, newest first, each capped"
    );
    assert!(sizes.iter().all(|n| *n <= BIG_CAP));
    check_reads(st, user, &conv, &model).await;
    // Paging through all of it crosses every segment boundary in order.
    let (mut after, mut paged) = (0, Vec::new());
    loop {
        let page = st
            .offline_after(user, &conv, after, 1_500)
            .await
            .expect("page");
        let Some(last) = page.last() else { break };
        after = last.0;
        paged.extend(page);
    }
    assert!(paged.iter().cloned().eq(model.clone()), "paged in order");

    // The oldest month's segment is re-dated to 800 ms from now (its newest
    // entry written again under a shorter keep), then goes as a whole.
    let oldest = &kept[&first];
    let (seq, payload) = oldest.back().cloned().expect("entries");
    let keep = now_ms() - first.end_ms() + 800;
    let short = st.with_offline(opts(unit, BIG_CAP, keep));
    short
        .offline_add(&[(user, conv.clone(), seq, payload)])
        .await
        .expect("re-add");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let segs = st.offline_segments(user, &conv).await.expect("segments");
    assert_eq!(segs.len(), 11);
    assert!(segs.iter().all(|s| s.bucket != Some(first)));
    assert_eq!(segs.iter().map(|s| s.len).collect::<Vec<_>>(), want[..11]);
    let newer: Model = model
        .range(oldest.back().expect("entries").0 + 1..)
        .map(|(s, p)| (*s, p.clone()))
        .collect();
    let got = st
        .offline_after(user, &conv, 0, model.len())
        .await
        .expect("after");
    assert!(got.into_iter().eq(newer), "the oldest month is gone whole");
    BigUser {
        user,
        conv,
        expired: first,
        live: segs.len(),
    }
}
