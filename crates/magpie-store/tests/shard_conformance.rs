//! The store conformance suites on a sharded store, one fresh database on
//! each of two servers per engine (`MAGPIE_TEST_POSTGRES_SHARD_URLS`,
//! `MAGPIE_TEST_MYSQL_SHARD_URLS`: admin URLs separated by spaces), plus
//! what only a sharded store must show: keys spread over the shards and
//! every list merges them, a database keeps its place in the shard map, a
//! lost shard fails only its own conversations.
#![cfg(feature = "sql")]

mod sqldb;

mod cases {
    use super::sqldb::{exec, fresh_shards};
    use magpie_core::ConvId;
    use magpie_store::testsuite::{accept_one, new_msg, post, send, users};
    use magpie_store::{Store, StoreError};

    /// Which shard of two holds a generated id (`shards::map`).
    fn shard_of(id: i64) -> i64 {
        (id - 1) % 2
    }

    pub async fn keys_spread_and_lists_merge(var: &str) {
        let (_dbs, urls) = fresh_shards(var).await;
        if urls.is_empty() {
            return;
        }
        let s = Store::open(&urls).await.expect("open");
        let names: Vec<String> = (0..12).map(|i| format!("spread{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let u = users(&s, &names).await;
        let homes: std::collections::HashSet<i64> = u.iter().map(|u| shard_of(u.0)).collect();
        assert_eq!(homes.len(), 2, "users live on both shards: {u:?}");
        for (name, id) in names.iter().zip(&u) {
            let by_name = s.accounts().user_by_name(name).await.expect("by name");
            assert_eq!(by_name.map(|r| r.id), Some(*id));
            let by_id = s.accounts().user_by_id(*id).await.expect("by id");
            assert_eq!(by_id.map(|r| r.username), Some(name.to_string()));
        }
        // Chats of u[0] with everyone, on both shards; groups on both.
        for (i, peer) in u[1..].iter().enumerate() {
            for _ in 0..=i % 3 {
                send(&s, new_msg(*peer, u[0], "hi")).await;
            }
        }
        let mut groups = Vec::new();
        for i in 0..4 {
            let (name, members) = (format!("g{i}"), [u[0]]);
            let g = s.groups().create_group(&name, u[1], &members, 0);
            let g = g.await.expect("group").id;
            post(&s, g, u[1], "hello").await;
            groups.push(g);
        }
        let homes: std::collections::HashSet<i64> = groups.iter().map(|g| shard_of(g.0)).collect();
        assert_eq!(homes.len(), 2, "groups live on both shards: {groups:?}");
        let convs = s.messages().conversations(u[0]).await.expect("list");
        let direct: Vec<&ConvId> = convs.iter().map(|c| &c.conv).take(u.len() - 1).collect();
        let shards: std::collections::HashSet<usize> = direct
            .iter()
            .map(|c| magpie_core::bucket_of(c.as_str(), 2) as usize)
            .collect();
        assert_eq!(shards.len(), 2, "direct chats live on both shards");
        assert!(direct.windows(2).all(|w| w[0].as_str() < w[1].as_str()));
        assert_eq!(convs.len(), u.len() - 1 + groups.len());
        let unread: i64 = convs.iter().map(|c| c.unread).sum();
        let sent: i64 = (0..u.len() - 1).map(|i| (i % 3 + 1) as i64).sum();
        assert_eq!(
            unread,
            sent + groups.len() as i64,
            "exact unread over both shards"
        );
        let tail: Vec<ConvId> = convs[u.len() - 1..]
            .iter()
            .map(|c| c.conv.clone())
            .collect();
        groups.sort_by_key(|g| g.0);
        let expected: Vec<ConvId> = groups.iter().map(|g| ConvId::group(*g)).collect();
        assert_eq!(tail, expected, "groups last, by id");
        let mine = s.groups().user_groups(u[0]).await.expect("groups");
        assert_eq!(mine, groups);
        let only = s
            .messages()
            .group_conversations(u[0])
            .await
            .expect("groups");
        assert_eq!(only.len(), groups.len());
    }

    pub async fn a_database_keeps_its_place(var: &str) {
        let (dbs, urls) = fresh_shards(var).await;
        if urls.is_empty() {
            return;
        }
        drop(Store::open(&urls).await.expect("first open"));
        let refused = |r: Result<Store, StoreError>| matches!(r, Err(StoreError::Config(_)));
        assert!(refused(Store::open(&dbs[1].url).await), "a shard alone");
        let swapped = format!("{} {}", dbs[1].url, dbs[0].url);
        assert!(refused(Store::open(&swapped).await), "shards swapped");
        assert!(Store::open(&urls).await.is_ok(), "the same map again");
        // A database with users cannot become a shard.
        let (more, _) = fresh_shards(var).await;
        let single = Store::open(&more[0].url).await.expect("single");
        users(&single, &["already"]).await;
        drop(single);
        let map = format!("{} {}", more[0].url, more[1].url);
        assert!(
            refused(Store::open(&map).await),
            "shard 0 of 1 named shard 0 of 2"
        );
        // A database from before the shard map (no place recorded) with
        // data: its ids were not strided.
        exec(&more[0].url, "DELETE FROM shard_map".into())
            .await
            .expect("forget the place");
        assert!(refused(Store::open(&map).await), "a database with users");
    }

    pub async fn a_lost_shard_fails_only_its_conversations(var: &str) {
        let (dbs, urls) = fresh_shards(var).await;
        if urls.is_empty() {
            return;
        }
        let s = Store::open(&urls).await.expect("open");
        let names: Vec<String> = (0..8).map(|i| format!("lost{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let u = users(&s, &names).await;
        let on = |k: u32| {
            u[1..]
                .iter()
                .find(|p| magpie_core::bucket_of(ConvId::direct(u[0], **p).as_str(), 2) == k)
                .copied()
                .expect("a chat on each shard")
        };
        let (kept, lost) = (on(0), on(1));
        send(&s, new_msg(u[0], lost, "before")).await;
        dbs[1].drop_now().await;
        let out = s
            .messages()
            .accept(vec![new_msg(u[0], kept, "a"), new_msg(u[0], lost, "b")])
            .await
            .expect("one shard still answers");
        assert_eq!(out[0].as_ref().map(|a| a.seq).ok(), Some(1));
        assert!(
            matches!(out[1], Err(StoreError::Unavailable(_))),
            "{:?}",
            out[1]
        );
        assert_eq!(
            accept_one(&s, new_msg(kept, u[0], "still"))
                .await
                .map(|a| a.seq)
                .ok(),
            Some(2)
        );
        // Every part failing is the call failing; the lost shard is cut
        // off now, so it fails at once, and so do lists that need it.
        let all_lost = s.messages().accept(vec![new_msg(u[0], lost, "c")]).await;
        assert!(
            matches!(&all_lost, Err(StoreError::Unavailable(e)) if e.contains("down")),
            "{all_lost:?}"
        );
        assert!(s.messages().conversations(u[0]).await.is_err());
    }
}

/// Every conformance case and every shard case on the engine `$var` names.
macro_rules! shard_suite {
    ($engine:ident, $var:expr) => {
        mod $engine {
            use super::cases;

            async fn fresh() -> (magpie_store::Store, Box<dyn std::any::Any + Send>) {
                super::sqldb::fresh_sharded($var).await
            }

            magpie_store::accounts_conformance!(fresh);
            magpie_store::messages_conformance!(fresh);
            magpie_store::groups_conformance!(fresh);
            magpie_store::retention_conformance!(fresh);
            magpie_store::feeds_conformance!(fresh);

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn keys_spread_and_lists_merge() {
                cases::keys_spread_and_lists_merge($var).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_database_keeps_its_place() {
                cases::a_database_keeps_its_place($var).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_lost_shard_fails_only_its_conversations() {
                cases::a_lost_shard_fails_only_its_conversations($var).await;
            }
        }
    };
}

shard_suite!(postgres, "MAGPIE_TEST_POSTGRES_SHARD_URLS");
shard_suite!(mysql, "MAGPIE_TEST_MYSQL_SHARD_URLS");
