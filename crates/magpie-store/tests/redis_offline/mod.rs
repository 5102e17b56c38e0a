//! The segmented offline index on Redis and Redis Cluster, checked from
//! outside the backend: a queue of the unsegmented layout (written before
//! buckets) is read, cut and drained, never written; a big user's keys,
//! read with SCAN and ZCARD on every primary, all stay under the cap.

use super::{Cleanup, ClusterCleanup, cluster_url, random_prefix, redis_url};
use magpie_core::{ConvId, Seq, UserId};
use magpie_store::redis_state::RedisState;
use magpie_store::testsuite::state_cases::{BIG_CAP, offline_big_user_of, server_id_at};
use magpie_store::{BucketUnit, OfflineOptions, State};
use std::any::Any;

/// A state under a fresh prefix, the hosts holding its keys and the guard
/// deleting them; `cluster` picks the cluster. `None`: skip (never in CI).
async fn open(cluster: bool) -> Option<(State, Vec<String>, String, Box<dyn Any>)> {
    let prefix = random_prefix();
    let (url, hosts, guard): (String, Vec<String>, Box<dyn Any>) = if cluster {
        let url = cluster_url()?;
        let list = url
            .trim_start_matches("redis+cluster://")
            .trim_end_matches('/');
        let hosts = list.split(',').map(|h| format!("redis://{h}/")).collect();
        let guard = ClusterCleanup {
            url: url.clone(),
            prefix: prefix.clone(),
        };
        (format!("{url}?prefix={prefix}"), hosts, Box::new(guard))
    } else {
        let url = redis_url()?;
        let guard = Cleanup {
            url: url.clone(),
            prefix: prefix.clone(),
        };
        (format!("{url}?prefix={prefix}"), vec![url], Box::new(guard))
    };
    let st = RedisState::open_url(&url).await.expect("connect");
    Some((State::new(st), hosts, prefix, guard))
}

/// Every key matching `pattern` on every host, with its ZCARD (each key is
/// read on the host that holds it: SCAN is per node on a cluster).
fn zcards(hosts: &[String], pattern: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for host in hosts {
        let mut con = redis::Client::open(host.as_str())
            .and_then(|c| c.get_connection())
            .expect("connect to a primary");
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1_000)
                .query(&mut con)
                .expect("scan");
            for key in keys {
                let n: usize = redis::cmd("ZCARD")
                    .arg(&key)
                    .query(&mut con)
                    .expect("zcard");
                out.push((key, n));
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    out.sort();
    out
}

/// Runs a command on whichever host holds `key` (the others answer MOVED).
fn on_owner(hosts: &[String], cmd: &redis::Cmd) -> redis::Value {
    let mut last = None;
    for host in hosts {
        let mut con = redis::Client::open(host.as_str())
            .and_then(|c| c.get_connection())
            .expect("connect");
        match cmd.query::<redis::Value>(&mut con) {
            Ok(v) => return v,
            Err(e) => last = Some(e),
        }
    }
    panic!("no host took the command: {last:?}")
}

fn seqs(v: Vec<(Seq, String)>) -> Vec<Seq> {
    v.into_iter().map(|e| e.0).collect()
}

/// A queue written by the unsegmented version (`P:offline:{uid}:conv`,
/// its 30-day idle expiry running) reads as the oldest segment before any
/// write; the first add holds it to the cap and takes a re-added seq out
/// of it, without extending its life; trims and removals reach it; once
/// empty it is gone, and so is every key of the queue.
async fn old_queue_is_read_and_drained(cluster: bool) {
    let Some((st, hosts, p, _guard)) = open(cluster).await else {
        return;
    };
    let opts = OfflineOptions {
        cap: 3,
        ..OfflineOptions::default()
    };
    let st = st.with_offline(opts);
    let (user, c) = (UserId(2), ConvId::direct(UserId(1), UserId(2)));
    let old = format!("{p}:offline:{{2}}:{c}");
    let mut zadd = redis::cmd("ZADD");
    zadd.arg(&old);
    for s in 1..=5 {
        zadd.arg(s).arg(format!("{s}:old{s}"));
    }
    on_owner(&hosts, &zadd);
    on_owner(&hosts, redis::cmd("PEXPIRE").arg(&old).arg(10 * 86_400_000));

    let all = st.offline_after(user, &c, 0, 10).await.expect("after");
    assert_eq!(
        all,
        (1..=5).map(|s| (s, format!("old{s}"))).collect::<Vec<_>>()
    );
    let segs = st.offline_segments(user, &c).await.expect("segments");
    assert_eq!((segs.len(), segs[0].bucket, segs[0].len), (1, None, 5));

    let now = magpie_core::now_ms();
    let new = |s: Seq| (user, c.clone(), s, server_id_at(now, s));
    st.offline_add(&[new(6), new(3), new(7)])
        .await
        .expect("add");
    assert_eq!(
        seqs(st.offline_after(user, &c, 0, 10).await.expect("after")),
        [2, 3, 4, 5, 6, 7]
    );
    assert_eq!(
        st.offline_newest(user, &c, 2).await.expect("newest"),
        [new(7), new(6)].map(|i| (i.2, i.3))
    );
    let segs = st.offline_segments(user, &c).await.expect("segments");
    let lens: Vec<_> = segs
        .iter()
        .map(|s| (s.bucket.map(|b| b.unit), s.len))
        .collect();
    assert_eq!(
        lens,
        [(Some(BucketUnit::Week), 3), (None, 3)],
        "old key capped, seq 3 moved"
    );
    let pttl = on_owner(&hosts, redis::cmd("PTTL").arg(&old));
    let redis::Value::Int(ttl) = pttl else {
        panic!("{pttl:?}")
    };
    assert!(ttl <= 10 * 86_400_000, "never extended: {ttl}");

    assert_eq!(st.offline_trim(user, &c, 2).await.expect("trim"), 1);
    st.offline_remove(user, &c, &[4]).await.expect("remove");
    assert_eq!(
        seqs(st.offline_after(user, &c, 0, 10).await.expect("after")),
        [3, 5, 6, 7]
    );
    assert_eq!(st.offline_trim(user, &c, 100).await.expect("trim all"), 4);
    assert!(
        zcards(&hosts, &format!("{p}:*")).is_empty(),
        "every key of the queue is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_queue_is_read_and_drained_on_redis() {
    old_queue_is_read_and_drained(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_queue_is_read_and_drained_on_a_cluster() {
    old_queue_is_read_and_drained(true).await;
}

/// The big-user case, then every key of the user as Redis sees it: the
/// segments under the cap, none left of the expired month, and the index
/// pruned by the next write to the queue.
async fn big_user_keys_stay_under_the_cap(cluster: bool, total: i64) {
    let Some((st, hosts, p, _guard)) = open(cluster).await else {
        return;
    };
    let big = offline_big_user_of(&st, total).await;
    let keys = zcards(&hosts, &format!("{p}:*{{{}}}*", big.user.0));
    let segments: Vec<_> = keys.iter().filter(|(k, _)| k.contains(":offb:")).collect();
    assert_eq!(segments.len(), big.live, "{keys:?}");
    assert!(segments.iter().all(|(_, n)| *n <= BIG_CAP), "{keys:?}");
    let expired = format!(":{}", big.expired.id());
    assert!(keys.iter().all(|(k, _)| !k.ends_with(&expired)), "{keys:?}");
    assert_eq!(
        st.offline_trim(big.user, &big.conv, 0)
            .await
            .expect("no-op trim"),
        0
    );
    let index = format!("{p}:offix:{{{}}}:{}", big.user.0, big.conv);
    assert_eq!(zcards(&hosts, &index), [(index.clone(), big.live)]);
    assert_eq!(
        keys.len(),
        big.live + 1,
        "segments and the index, nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_user_keys_stay_under_the_cap_on_redis() {
    big_user_keys_stay_under_the_cap(false, 50_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_user_keys_stay_under_the_cap_on_a_cluster() {
    big_user_keys_stay_under_the_cap(true, 50_000).await;
}

/// Issue 12's figure: 1,000,000 entries over 12 months (a few seconds
/// each, written in batches by the Lua scripts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn million_entries_keys_stay_under_the_cap_on_redis() {
    big_user_keys_stay_under_the_cap(false, 1_000_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn million_entries_keys_stay_under_the_cap_on_a_cluster() {
    big_user_keys_stay_under_the_cap(true, 1_000_000).await;
}
