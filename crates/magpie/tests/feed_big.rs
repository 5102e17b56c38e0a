//! A big account's post (more followers than `feeds.big_threshold`) costs
//! the same whatever its follower count (docs/feeds.md): one outbox row,
//! one bus event, no inbox write; every follower reads it at once by
//! pulling, and an inactive follower's second read is served from the
//! inbox its first read marked. Its own test binary: the metrics it reads
//! are the process's.

mod common;
use common::*;
use magpie_core::{ClientMsgId, UserId};
use serde_json::json;

/// Followers of the big account (grow with `MAGPIE_TEST_BIG_FOLLOWERS`).
fn followers() -> i64 {
    std::env::var("MAGPIE_TEST_BIG_FOLLOWERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_big_accounts_post_costs_no_fan_out() {
    let s = TestServer::start_with(|c| c.feeds.big_threshold = 1_000).await;
    let [star, reader] = s.users(["star", "reader"]).await;
    let feeds = s.app().store.feeds();
    // Followers without accounts: only the edges count.
    let ids: Vec<UserId> = (0..followers()).map(|i| UserId(1_000_000 + i)).collect();
    for chunk in ids.chunks(500) {
        let adds = chunk
            .iter()
            .map(|f| feeds.add_follower(star.user_id, *f, 1));
        futures_util::future::try_join_all(adds).await.unwrap();
    }
    let path = format!("/v1/follows/{}", star.user_id.0);
    assert_eq!(s.send_json(&reader, "POST", &path, json!({})).await.0, 201);

    let metric = |name: &'static str| counter(&s, name);
    let (events, writes, skipped) = (
        metric("magpie_bus_events_published_total").await,
        metric("magpie_feed_inbox_writes_total").await,
        metric("magpie_feed_fanout_skipped_total").await,
    );
    let req = json!({"cmid": ClientMsgId::new_v7(), "body": "hello, everyone"});
    let (st, body) = s.send_json(&star, "POST", "/v1/posts", req).await;
    assert_eq!(st, 201, "{body}");
    let id = body["post"]["id"].clone();
    // Readable at once, before any fan-out: the first read pulls.
    let pulls = metric("magpie_feed_reads_total{from=\"pull\"}").await;
    let (_, feed) = s.get(&reader, "/v1/feed").await;
    assert_eq!(feed["posts"][0]["id"], id, "{feed}");
    assert_eq!(
        metric("magpie_feed_reads_total{from=\"pull\"}").await,
        pulls + 1.0
    );
    let inbox = metric("magpie_feed_reads_total{from=\"inbox\"}").await;
    let (_, again) = s.get(&reader, "/v1/feed").await;
    assert_eq!(again["posts"], feed["posts"]);
    assert_eq!(
        metric("magpie_feed_reads_total{from=\"inbox\"}").await,
        inbox + 1.0,
        "from the inbox"
    );

    let deadline = tokio::time::Instant::now() + WAIT;
    while metric("magpie_feed_fanout_skipped_total").await < skipped + 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fan-out never looked at the post"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        metric("magpie_bus_events_published_total").await,
        events + 1.0,
        "one event"
    );
    assert_eq!(
        metric("magpie_feed_inbox_writes_total").await,
        writes,
        "no inbox write"
    );
    let counts = s
        .get(&reader, &format!("/v1/users/{}/follows", star.user_id.0))
        .await;
    assert_eq!(counts.1["followers"], json!(followers() + 1));
}
