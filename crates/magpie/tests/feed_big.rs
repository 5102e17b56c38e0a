//! A big account's post (more followers than `feeds.big_threshold`) costs
//! work in proportion to its active followers, not all of them
//! (docs/feeds.md): one outbox row, one bus event, one inbox write per
//! follower that reads its feed (subscribed), none for the others; an
//! inactive follower reads the post at once by pulling, and its second
//! read is served from the inbox its first read marked. Its own test
//! binary: the metrics it reads are the process's.

mod common;
use common::*;
use magpie_core::{ClientMsgId, UserId};
use serde_json::{Value, json};

/// Followers of the big account (grow with `MAGPIE_TEST_BIG_FOLLOWERS`).
fn followers() -> i64 {
    std::env::var("MAGPIE_TEST_BIG_FOLLOWERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_big_accounts_post_is_pushed_to_its_active_followers_only() {
    let s = TestServer::start_with(|c| c.feeds.big_threshold = 1_000).await;
    let [star, active1, active2, inactive] = s.users(["star", "act1", "act2", "inactive"]).await;
    let feeds = s.app().store.feeds();
    // Followers without accounts: only the edges count.
    let ids: Vec<UserId> = (0..followers()).map(|i| UserId(1_000_000 + i)).collect();
    // A few inserts at a time: more than the pool's connections only wait
    // for one, and on a loaded machine that wait outlasts the pool's.
    use futures_util::{StreamExt, TryStreamExt};
    futures_util::stream::iter(&ids)
        .map(|f| feeds.add_follower(star.user_id, *f, 1))
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let path = format!("/v1/follows/{}", star.user_id.0);
    for u in [&active1, &active2, &inactive] {
        assert_eq!(s.send_json(u, "POST", &path, json!({})).await.0, 201);
    }
    let metric = |name: &'static str| counter(&s, name);
    let post = |body: &'static str| {
        let req = json!({"cmid": ClientMsgId::new_v7(), "body": body});
        let (s, star) = (&s, &star);
        async move {
            let big = metric("magpie_feed_fanout_big_total").await;
            let (st, body) = s.send_json(star, "POST", "/v1/posts", req).await;
            assert_eq!(st, 201, "{body}");
            // Wait for the fan-out to finish with the post.
            let deadline = tokio::time::Instant::now() + WAIT;
            while metric("magpie_feed_fanout_big_total").await < big + 1.0 {
                assert!(tokio::time::Instant::now() < deadline, "no fan-out");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            body["post"]["id"].clone()
        }
    };
    let reads = |from: &'static str| async move {
        let name = match from {
            "pull" => "magpie_feed_reads_total{from=\"pull\"}",
            _ => "magpie_feed_reads_total{from=\"inbox\"}",
        };
        metric(name).await
    };
    let ids_of = |feed: &Value| -> Vec<Value> {
        let posts = feed["posts"].as_array().expect("posts");
        posts.iter().map(|p| p["id"].clone()).collect()
    };

    // The first post flags the account big; nobody is subscribed yet.
    let writes = metric("magpie_feed_inbox_writes_total").await;
    let first = post("hello, everyone").await;
    assert_eq!(metric("magpie_feed_inbox_writes_total").await, writes);
    // Two followers read (pull, mark, subscribe): they are active now.
    for u in [&active1, &active2] {
        let (_, feed) = s.get(u, "/v1/feed").await;
        assert_eq!(ids_of(&feed), vec![first.clone()]);
    }

    let (events, writes) = (
        metric("magpie_bus_events_published_total").await,
        metric("magpie_feed_inbox_writes_total").await,
    );
    let second = post("and again").await;
    assert_eq!(
        metric("magpie_bus_events_published_total").await,
        events + 1.0,
        "one event"
    );
    assert_eq!(
        metric("magpie_feed_inbox_writes_total").await,
        writes + 2.0,
        "one inbox write per active follower, none for the {} others",
        followers() + 1
    );
    // An active follower's read is served from its inbox.
    let inbox = reads("inbox").await;
    let (_, feed) = s.get(&active1, "/v1/feed").await;
    assert_eq!(ids_of(&feed), vec![second.clone(), first.clone()]);
    assert_eq!(reads("inbox").await, inbox + 1.0, "from the inbox");

    // The inactive follower's first read pulls, its second is served
    // from the inbox the first marked.
    let pulls = reads("pull").await;
    let (_, feed) = s.get(&inactive, "/v1/feed").await;
    assert_eq!(ids_of(&feed), vec![second.clone(), first.clone()]);
    assert_eq!(reads("pull").await, pulls + 1.0);
    let inbox = reads("inbox").await;
    let (_, again) = s.get(&inactive, "/v1/feed").await;
    assert_eq!(again["posts"], feed["posts"]);
    assert_eq!(reads("inbox").await, inbox + 1.0, "from the inbox");

    let counts = s
        .get(&inactive, &format!("/v1/users/{}/follows", star.user_id.0))
        .await;
    assert_eq!(counts.1["followers"], json!(followers() + 3));
}
