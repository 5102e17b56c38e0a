//! kill -9 of one SQL shard's server (docs/deploy.md, "SQL shards"): a
//! node whose store is two MariaDB shards — one on the services' server,
//! one on a mariadbd of the test's own that flushes at every commit — keeps
//! accepting messages of the conversations on the other shard while the
//! server is down; sends to the lost shard's conversations are refused with
//! 503 (retryable, nothing stored); after the restart their retries (same
//! cmid) are accepted, and every acknowledged message is in the store once,
//! in order.

mod common;
#[allow(dead_code)]
#[path = "fleet/services.rs"]
mod services;

use common::*;
use magpie_core::{ClientMsgId, ConvId, UserId, bucket_of};

/// Creates database `name` on the server of `admin`; returns its URL.
async fn database(admin: &str, name: &str) -> String {
    use sqlx::Connection;
    let mut c = sqlx::MySqlConnection::connect(admin).await.unwrap();
    let sql = sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"));
    sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    format!("{}/{name}", admin.trim_end_matches("/mysql"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_keeps_serving_one_shard_while_the_other_shards_server_is_down() {
    if !backends::cluster_only() {
        return;
    }
    let shared = std::env::var("MAGPIE_TEST_MYSQL_URL").expect("scripts/services.sh env");
    let dir = tempfile::tempdir().unwrap();
    let mut own = services::MariaDb::start(dir.path());
    let name = format!("magpie_shards_{:016x}", rand::random::<u64>());
    let store = format!(
        "{} {}",
        database(&shared, &name).await,
        database(&own.url(), &name).await
    );
    let s = TestServer::start_with(|c| c.store = store.clone()).await;

    let names: Vec<String> = (0..12).map(|i| format!("user{i}")).collect();
    let mut users = Vec::new();
    for n in &names {
        users.push(s.user(n, "phone").await);
    }
    // The sender lives on the surviving shard 0 (odd ids): its settings
    // are read per HTTP send.
    let at = users.iter().position(|t| (t.user_id.0 - 1) % 2 == 0);
    let alice = users.remove(at.expect("a user on shard 0"));
    let conv = |peer: UserId| ConvId::direct(alice.user_id, peer);
    let on = |k: u32| -> Vec<UserId> {
        let peers = users.iter().map(|t| t.user_id);
        peers
            .filter(|p| bucket_of(conv(*p).as_str(), 2) == k)
            .collect()
    };
    let (kept, lost) = (on(0), on(1));
    assert!(!kept.is_empty() && !lost.is_empty(), "chats on both shards");

    // Every peer is known to the node before the outage.
    let mut acked: Vec<(UserId, String)> = Vec::new();
    for p in kept.iter().chain(&lost) {
        let body = format!("before-{}", p.0);
        s.send_until_accepted(&alice, *p, ClientMsgId::new_v7(), &body)
            .await;
        acked.push((*p, body));
    }

    let t0 = std::time::Instant::now();
    own.kill9();
    let mut refused = Vec::new();
    for i in 0..30 {
        let (peer, shard) = match i % 3 {
            0 => (lost[i % lost.len()], 1),
            _ => (kept[i % kept.len()], 0),
        };
        let (cmid, body) = (ClientMsgId::new_v7(), format!("during-{i}"));
        let (status, answer) = s.http_send(&alice, peer, cmid, &body).await;
        if shard == 0 {
            assert_eq!(status, 200, "a send on the surviving shard: {answer}");
            acked.push((peer, body));
        } else {
            assert_eq!(status, 503, "a send on the lost shard: {answer}");
            refused.push((peer, cmid, body));
        }
    }

    // The first send to the lost shard waits out the store's call timeout
    // (docs/deploy.md, "SQL shards"); every later one fails at once.
    eprintln!("outage: 30 sends in {:?}", t0.elapsed());
    own.restart();
    for (peer, cmid, body) in refused {
        s.send_until_accepted(&alice, peer, cmid, &body).await;
        acked.push((peer, body));
    }

    eprintln!("retries accepted at {:?}", t0.elapsed());
    let check = magpie_store::Store::open(&store).await.unwrap();
    for p in kept.iter().chain(&lost) {
        let c = conv(*p);
        let stored = check.messages().messages_after(alice.user_id, &c, 0, 1000);
        let stored: Vec<String> = stored.await.unwrap().into_iter().map(|m| m.body).collect();
        let sent: Vec<String> = acked
            .iter()
            .filter(|(to, _)| to == p)
            .map(|(_, b)| b.clone())
            .collect();
        assert_eq!(
            stored, sent,
            "chat with {p}: every acknowledged message, once, in order"
        );
    }
    drop(check);
    drop(s);
    use sqlx::Connection;
    let mut c = sqlx::MySqlConnection::connect(&shared).await.unwrap();
    let sql = sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"));
    sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
}
