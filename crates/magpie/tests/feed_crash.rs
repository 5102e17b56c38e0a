//! kill -9 of the node running the feed fan-out in the middle of a post's
//! fan-out (docs/feeds.md), of a small author (its followers paged from the
//! store) and of a big one (its subscribers scanned in the state): after
//! the restart every follower's inbox holds the post, and once (an inbox is
//! a set of keys). Cluster only: the
//! embedded state lives in the process, so a kill takes every inbox with it
//! and the next reads pull (the feed tests cover that).

mod common;
use common::process::node_with;
use common::*;
use magpie_core::{ClientMsgId, PostId, UserId};
use magpie_store::{Floor, State, Store};
use serde_json::json;
use std::time::Duration;

/// Followers of the post (reduce or grow with `MAGPIE_TEST_FANOUT`).
fn followers() -> i64 {
    std::env::var("MAGPIE_TEST_FANOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

/// The node's settings; `threshold` decides whether the author is big.
fn env(threshold: &'static str) -> [(&'static str, &'static str); 4] {
    [
        ("MAGPIE_FEEDS__FANOUT_BATCH", "50"),
        // The unacknowledged event comes back this long after the kill.
        ("MAGPIE_WORKERS__ACK_WAIT_MS", "2000"),
        ("MAGPIE_FEEDS__BIG_THRESHOLD", threshold),
        // Printed when the restarted node does not finish the fan-out
        // (docs/performance.md, "CI time": once it waited over a minute).
        ("MAGPIE_LOG", "info"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_a_fan_out_skips_no_follower() {
    crash_during_fan_out(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_a_big_authors_fan_out_skips_no_subscriber() {
    crash_during_fan_out(true).await;
}

async fn crash_during_fan_out(big: bool) {
    if !backends::cluster_only() {
        return;
    }
    let n = followers();
    let env = env(if big { "10" } else { "100000000" });
    let mut node = node_with(tempfile::tempdir().unwrap(), &env);
    let ns = node.server.ns.clone().expect("cluster namespace");
    let author = node.server.user("author", "phone").await;
    let (store, state) = (
        Store::open(&ns.store).await.unwrap(),
        State::open(&ns.state).await.unwrap(),
    );
    // Followers need no account: the fan-out pages the author's follower
    // edges (or, big, its subscribers). Each is active: its inbox is
    // marked (complete from 0) and, for a big author, it is subscribed.
    let started = std::time::Instant::now();
    let ids: Vec<UserId> = (0..n).map(|i| UserId(1_000_000 + i)).collect();
    for chunk in ids.chunks(500) {
        let adds = chunk
            .iter()
            .map(|f| store.feeds().add_follower(author.user_id, *f, 1));
        futures_util::future::try_join_all(adds).await.unwrap();
        let marks = chunk
            .iter()
            .map(|f| state.feed_fill(*f, &[], Floor::Set(PostId(0)), 800, 3_600_000));
        futures_util::future::try_join_all(marks).await.unwrap();
        if big {
            let until = magpie_core::now_ms() + 3_600_000;
            let to = [author.user_id];
            let subs = chunk.iter().map(|f| state.feed_subscribe(*f, &to, until));
            futures_util::future::try_join_all(subs).await.unwrap();
        }
    }
    eprintln!("{n} followers set up in {:?}", started.elapsed());
    let req = json!({"cmid": ClientMsgId::new_v7(), "body": "to everyone"});
    let (st, body) = node
        .server
        .send_json(&author, "POST", "/v1/posts", req)
        .await;
    assert_eq!(st, 201, "{body}");
    let post = PostId(body["post"]["id"].as_str().unwrap().parse().unwrap());
    // Kill as soon as the fan-out has begun.
    let begun = tokio::time::Instant::now() + WAIT;
    while counter_at(&node.server.base, "magpie_feed_inbox_writes_total").await < 1.0 {
        assert!(
            tokio::time::Instant::now() < begun,
            "the fan-out never began"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    let holding = |state: State, ids: Vec<UserId>| async move {
        let mut have = 0;
        for chunk in ids.chunks(500) {
            let pages = chunk.iter().map(|f| state.feed_page(*f, None, 10));
            let pages = futures_util::future::try_join_all(pages).await.unwrap();
            for (f, page) in chunk.iter().zip(pages) {
                let page = page.expect("marked");
                let copies = page.keys.iter().filter(|k| k.1 == post).count();
                assert!(copies <= 1, "follower {f} holds the post {copies} times");
                have += copies;
            }
        }
        have
    };
    let flagged = state.feed_big(&[author.user_id]).await.unwrap().flagged;
    assert_eq!(
        !flagged.is_empty(),
        big,
        "the fan-out took the path asked for"
    );
    let at_kill = holding(state.clone(), ids.clone()).await;
    eprintln!("{at_kill} of {n} inboxes held the post at the kill");

    let dir = std::mem::replace(&mut node.server.dir, tempfile::tempdir().unwrap());
    let restarted = node_with(dir, &env);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let have = holding(state.clone(), ids.clone()).await;
        if have == ids.len() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let log = restarted.server.dir.path().join("magpie.log");
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{have} of {n} inboxes hold the post; the restarted node said:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
