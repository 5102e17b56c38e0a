//! Runs the fast-state conformance suite against a real Redis, plus the
//! checks only Redis needs: key prefixes, TTLs on the server, isolation
//! between runs sharing one server, and the `redis://…?prefix=` URL.
//!
//! The server comes from `MAGPIE_TEST_REDIS_URL` (`eval "$(scripts/services.sh env)"`).
//! Unset, the suite is skipped with a notice, except under `CI`, where a
//! missing service is a failure. Every case gets a fresh random key prefix
//! and a guard that deletes the prefix's keys when the case ends, so cases
//! (and concurrent runs of this binary) share the server without seeing
//! each other's keys.
#![cfg(feature = "redis")]

use magpie_core::{Accepted, ClientMsgId, ConvId, DeviceId, UserId, now_ms};
use magpie_store::redis_state::RedisState;
use magpie_store::testsuite::{next_server_id, state_cases};
use magpie_store::{Bucket, BucketUnit, Route, State, StoreError, TicketClaims, UnreadCache};
use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

/// The test server's URL; `None` means skip (never under `CI`).
fn redis_url() -> Option<String> {
    match std::env::var("MAGPIE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => panic!(
            "MAGPIE_TEST_REDIS_URL is unset under CI: the Redis service must run \
             (scripts/services.sh start, then eval \"$(scripts/services.sh env)\")"
        ),
        _ => {
            // Straight to the process's stderr: the test harness captures
            // `eprintln!`, and the conformance factory exits right after.
            let _ = std::io::stderr()
                .write_all(b"skipping Redis tests: MAGPIE_TEST_REDIS_URL is unset\n");
            None
        }
    }
}

fn random_prefix() -> String {
    format!("test-{:016x}", rand::random::<u64>())
}

/// Deletes every key under its prefix when dropped.
struct Cleanup {
    url: String,
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Drop cannot await, so this uses a blocking connection; it runs once
        // at the end of a case, where blocking a worker briefly is harmless.
        if let Err(e) = delete_prefix(&self.url, &self.prefix) {
            eprintln!("could not delete test keys under {}: {e}", self.prefix);
        }
    }
}

fn delete_prefix(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let mut con = redis::Client::open(url)?.get_connection()?;
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(500)
            .query(&mut con)?;
        if !keys.is_empty() {
            redis::cmd("DEL").arg(&keys).exec(&mut con)?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Every key under `prefix`, read asynchronously.
async fn keys_under(url: &str, prefix: &str) -> BTreeSet<String> {
    let client = redis::Client::open(url).expect("client");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut con)
        .await
        .expect("keys")
}

async fn fresh_at(url: &str) -> (State, Cleanup) {
    let prefix = random_prefix();
    let st = RedisState::connect(url, &prefix)
        .await
        .expect("connect to MAGPIE_TEST_REDIS_URL");
    let guard = Cleanup {
        url: url.to_string(),
        prefix,
    };
    (State::new(st), guard)
}

/// The conformance factory. The suite's macro always runs the case after
/// the factory, so the only way to skip a case from here is to end the test
/// process successfully; every test in this binary needs Redis anyway.
async fn fresh() -> (State, Cleanup) {
    match redis_url() {
        Some(url) => fresh_at(&url).await,
        None => std::process::exit(0),
    }
}

mod conformance {
    magpie_store::state_conformance!(super::fresh);
}

/// The cluster's URL (`redis+cluster://h:p,h:p/`); `None` means skip (never under `CI`).
fn cluster_url() -> Option<String> {
    match std::env::var("MAGPIE_TEST_REDIS_CLUSTER_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("MAGPIE_TEST_REDIS_CLUSTER_URL is unset under CI (scripts/services.sh start)")
        }
        _ => {
            let _ = std::io::stderr().write_all(
                b"skipping Redis Cluster tests: MAGPIE_TEST_REDIS_CLUSTER_URL is unset\n",
            );
            None
        }
    }
}

/// Deletes the prefix's keys on every primary of the cluster, one key per
/// DEL (keys on one node still live in different slots).
struct ClusterCleanup {
    url: String,
    prefix: String,
}

impl Drop for ClusterCleanup {
    fn drop(&mut self) {
        let hosts = self.url.trim_start_matches("redis+cluster://");
        for host in hosts.trim_end_matches('/').split(',') {
            let res = (|| -> redis::RedisResult<()> {
                let mut con = redis::Client::open(format!("redis://{host}/"))?.get_connection()?;
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}:*", self.prefix))
                    .query(&mut con)?;
                for k in keys {
                    redis::cmd("DEL").arg(k).exec(&mut con)?;
                }
                Ok(())
            })();
            if let Err(e) = res {
                eprintln!("could not delete test keys on {host}: {e}");
            }
        }
    }
}

async fn fresh_cluster() -> (State, ClusterCleanup) {
    let Some(url) = cluster_url() else {
        std::process::exit(0)
    };
    let prefix = random_prefix();
    let st = RedisState::open_url(&format!("{url}?prefix={prefix}"))
        .await
        .expect("connect to MAGPIE_TEST_REDIS_CLUSTER_URL");
    (State::new(st), ClusterCleanup { url, prefix })
}

/// The offline index's Redis-only checks: old keys, key sizes.
mod redis_offline;

/// The same promises on a three-primary Redis Cluster: every multi-key
/// update stays in one slot, and batches spanning users are split per slot.
mod cluster_conformance {
    magpie_store::state_conformance!(super::fresh_cluster);
}

/// Every key the backend writes carries the prefix (no other key appears
/// under it), idempotency entries expire on the server, routes do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_carry_the_prefix_and_idem_expires() {
    let Some(url) = redis_url() else { return };
    let prefix = random_prefix();
    let _guard = Cleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let st = RedisState::connect(&url, &prefix).await.expect("connect");
    assert_eq!(st.prefix(), prefix);
    let st = State::new(st);
    assert!(keys_under(&url, &prefix).await.is_empty());

    let (one, two) = (UserId(1), UserId(2));
    let conv = ConvId::direct(one, two);
    let device = DeviceId::new("phone").expect("device");
    let route = Route {
        user: one,
        device: device.clone(),
        node: "n1".into(),
        conn: 1,
        since: 0,
    };
    st.add_route(&route).await.expect("route");
    let cmid = ClientMsgId::new_v7();
    let accepted = Accepted {
        server_id: next_server_id(),
        conv: conv.clone(),
        seq: 1,
        sent_at: 0,
        duplicate: false,
        group: None,
    };
    // Long enough to outlive the checks below on a loaded machine (300 ms
    // did not: the key was gone when its TTL was read).
    st.idem_put(one, cmid, &accepted, 60_000)
        .await
        .expect("idem");
    let claims = TicketClaims { user: one, device };
    st.ticket_put("t", &claims, 60_000).await.expect("ticket");
    st.offline_add(&[(two, conv.clone(), 1, "hi".into())])
        .await
        .expect("offline");
    st.unread_load(two, &UnreadCache::default())
        .await
        .expect("unread");

    let p = &prefix;
    let week = Bucket::of(BucketUnit::Week, now_ms());
    let segment = format!("{p}:offb:{{2}}:{conv}:{}", week.id());
    let idem_key = format!("{p}:idem:{{1}}:{cmid}");
    let expected: BTreeSet<String> = [
        format!("{p}:route:{{1}}"),
        format!("{p}:node:{{n1}}"),
        idem_key.clone(),
        format!("{p}:ticket:t"),
        segment.clone(),
        format!("{p}:offix:{{2}}:{conv}"),
        format!("{p}:unread:{{2}}"),
    ]
    .into();
    assert_eq!(keys_under(&url, p).await, expected);

    let client = redis::Client::open(url.as_str()).expect("client");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let pttl = |key: String| redis::cmd("PTTL").arg(key).to_owned();
    let idem_ttl: i64 = pttl(idem_key.clone())
        .query_async(&mut con)
        .await
        .expect("pttl");
    assert!((1..=60_000).contains(&idem_ttl), "idem ttl {idem_ttl}");
    let route_ttl: i64 = pttl(format!("{p}:route:{{1}}"))
        .query_async(&mut con)
        .await
        .expect("pttl");
    assert_eq!(route_ttl, -1, "routes live until removed");
    // Derived state of users who never come back expires: the unread
    // cache 30 days after it was built, an offline segment (and the index
    // of its queue) 30 days after its week ends.
    let month = 30 * 86_400_000;
    let ttl: i64 = pttl(format!("{p}:unread:{{2}}"))
        .query_async(&mut con)
        .await
        .expect("pttl");
    assert!(
        (month - 60_000..=month).contains(&ttl),
        "unread expires in {ttl} ms"
    );
    let until = week.end_ms() + month - now_ms();
    for key in [segment, format!("{p}:offix:{{2}}:{conv}")] {
        let ttl: i64 = pttl(key.clone()).query_async(&mut con).await.expect("pttl");
        assert!(
            (until - 60_000..=until).contains(&ttl),
            "{key} expires in {ttl} ms"
        );
    }

    // Time passes: the entry's remaining TTL cut to 100 ms.
    let _: i64 = redis::cmd("PEXPIRE")
        .arg(&idem_key)
        .arg(100)
        .query_async(&mut con)
        .await
        .expect("pexpire");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&idem_key)
        .query_async(&mut con)
        .await
        .expect("exists");
    assert_eq!(exists, 0, "the server expired the idem key");
    assert_eq!(st.idem_get(one, cmid).await.expect("get"), None);
}

/// The same cases run at once on one server under two prefixes: each sees
/// only its own keys (they use the same user ids and conversations).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_runs_do_not_interfere() {
    let Some(url) = redis_url() else { return };
    macro_rules! twice {
        ($($case:ident),*) => {$(
            let ((a, _ga), (b, _gb)) = tokio::join!(fresh_at(&url), fresh_at(&url));
            let (ra, rb) = tokio::join!(
                tokio::spawn(state_cases::$case(a)),
                tokio::spawn(state_cases::$case(b)),
            );
            ra.expect(stringify!($case));
            rb.expect(stringify!($case));
        )*};
    }
    twice!(
        route_add_replace_and_conditional_remove,
        routes_batch_and_node_index,
        idem_put_is_first_writer_wins,
        ticket_is_single_use,
        offline_queue_order_and_limits,
        offline_trim_and_remove,
        unread_watermark_prevents_double_count,
        unread_load_replaces_and_totals
    );
}

/// `State::open` takes the prefix from the URL (default `magpie`), hands
/// the rest to the client, and rejects a prefix that would break hash tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_open_takes_the_prefix_from_the_url() {
    let Some(url) = redis_url() else { return };
    let prefix = random_prefix();
    let _guard = Cleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let st = State::open(&format!("{url}{sep}prefix={prefix}"))
        .await
        .expect("open");
    st.unread_load(UserId(5), &UnreadCache::default())
        .await
        .expect("load");
    assert_eq!(
        keys_under(&url, &prefix).await,
        [format!("{prefix}:unread:{{5}}")].into()
    );
    assert!(matches!(
        State::open(&format!("{url}{sep}prefix=a{{b}}")).await,
        Err(StoreError::Config(_))
    ));
}
