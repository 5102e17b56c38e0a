//! Who a user is (docs/protocol.md §3.18): by exact username or by id,
//! for signed-in users only, a rate per user, and an address that keeps
//! asking for names nobody has is banned by the guard's `lookups` rule.

mod common;

use common::*;
use magpie_server::guard::config::{Rate, default_rules};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_found_by_exact_name_and_by_id_only() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let (st, v) = s.get(&ta, "/v1/users?name=bob").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["id"].as_i64(), v["username"].as_str()),
        (Some(tb.user_id.0), Some("bob"))
    );
    let (st, v) = s.get(&ta, &format!("/v1/users/{}", tb.user_id)).await;
    assert_eq!((st, v["username"].as_str()), (200, Some("bob")), "{v}");
    // No prefix, no pattern, no listing: a name is found whole or not at all.
    for path in [
        "/v1/users?name=bo",
        "/v1/users?name=b%25",
        "/v1/users?name=",
        "/v1/users/987654321",
    ] {
        let (st, v) = s.get(&ta, path).await;
        assert_eq!((st, code(&v)), (404, "not_found"), "{path}: {v}");
    }
    for path in ["/v1/users", "/v1/users/x", "/v1/users/0"] {
        let (st, v) = s.get(&ta, path).await;
        assert_eq!((st, code(&v)), (400, "bad_field"), "{path}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn profiles_are_set_by_their_user_and_shown_by_every_lookup() {
    let s = TestServer::start_with(|c| c.guard.rates.lookups_user = Rate::new(0.5, 6)).await;
    let [ta, tb, tc] = s.users(["alice", "bob", "carol"]).await;
    let set = json!({"display_name": "  鲍勃 B. ", "avatar_url": "https://cdn.example/b.png"});
    let (st, v) = s.send_json(&tb, "PUT", "/v1/profile", set).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["display_name"].as_str(), v["username"].as_str()),
        (Some("鲍勃 B."), Some("bob"))
    );
    let (_, v) = s.get(&ta, "/v1/users?name=bob").await;
    assert_eq!(v["avatar_url"], "https://cdn.example/b.png", "{v}");
    let (_, v) = s.get(&ta, &format!("/v1/users/{}", tb.user_id)).await;
    assert_eq!(v["display_name"], "鲍勃 B.", "{v}");
    // One request for several: in the order asked, each once, the unknown
    // left out; a user without a profile has just a username.
    let ids = json!({"ids": [tc.user_id, tb.user_id, 987654321, tc.user_id]});
    let (st, v) = s.send_json(&ta, "POST", "/v1/users/lookup", ids).await;
    assert_eq!(st, 200, "{v}");
    let users = v["users"].as_array().unwrap();
    assert_eq!(users.len(), 2, "{v}");
    assert_eq!(
        (users[0]["username"].as_str(), users[0].get("display_name")),
        (Some("carol"), None)
    );
    assert_eq!(users[1]["display_name"], "鲍勃 B.");
    // Each id costs a look-up token: six allowed, the batch took four.
    let ids = json!({"ids": [ta.user_id, tb.user_id, tc.user_id]});
    let (st, v) = s.send_json(&ta, "POST", "/v1/users/lookup", ids).await;
    assert_eq!((st, code(&v)), (429, "rate_limited"), "{v}");
    // Clearing, and what is refused.
    let (_, v) = s.send_json(&tb, "PUT", "/v1/profile", json!({})).await;
    assert!(
        v.get("display_name").is_none() && v.get("avatar_url").is_none(),
        "{v}"
    );
    for bad in [
        json!({"display_name": "x".repeat(65)}),
        json!({"display_name": "tab\there"}),
        json!({"avatar_url": "javascript:alert(1)"}),
        json!({"avatar_url": "https://a b"}),
    ] {
        let (st, v) = s.send_json(&tb, "PUT", "/v1/profile", bad.clone()).await;
        assert_eq!((st, code(&v)), (400, "bad_field"), "{bad}: {v}");
    }
    let many: Vec<i64> = (1..=101).collect();
    let (st, v) = s
        .send_json(&tc, "POST", "/v1/users/lookup", json!({"ids": many}))
        .await;
    assert_eq!((st, code(&v)), (400, "bad_field"), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn lookups_over_the_users_rate_wait() {
    let s = TestServer::start_with(|c| c.guard.rates.lookups_user = Rate::new(0.5, 3)).await;
    let [ta, _tb] = s.users(["alice", "bob"]).await;
    for _ in 0..3 {
        assert_eq!(s.get(&ta, "/v1/users?name=bob").await.0, 200);
    }
    let (st, v) = s.get(&ta, "/v1/users?name=bob").await;
    assert_eq!((st, code(&v)), (429, "rate_limited"), "{v}");
    assert!(
        v["error"]["retry_after_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_address_guessing_names_is_banned() {
    let s = TestServer::start_with(|c| {
        c.guard.allow = vec!["127.0.0.1/32".parse().unwrap()];
        c.guard.rules = default_rules()
            .into_iter()
            .filter(|r| r.name == "lookups")
            .map(|mut r| {
                r.capacity = 5;
                r.leak_per_sec = 0.01;
                r.ban_secs = 30;
                r
            })
            .collect();
        c.guard.ban_refresh_ms = 100;
    })
    .await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let guesser = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let get = |name: String| {
        let (guesser, base, token) = (&guesser, &s.base, ta.access_token.clone());
        async move {
            let r = guesser
                .get(format!("{base}/v1/users?name={name}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for i in 0..8 {
        let (st, v) = get(format!("guess{i}")).await;
        assert!(st == 404 || code(&v) == "banned", "{st} {v}");
    }
    let t = Instant::now();
    loop {
        let (st, v) = get("bob".into()).await;
        if st == 403 {
            assert_eq!(code(&v), "banned", "{v}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(3), "not banned: {st} {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The same user from another address is untouched.
    let (st, v) = s.get(&tb, "/v1/users?name=alice").await;
    assert_eq!(st, 200, "{v}");
}
