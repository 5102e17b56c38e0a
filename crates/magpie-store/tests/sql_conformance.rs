//! The store conformance suites on PostgreSQL (`MAGPIE_TEST_POSTGRES_URL`)
//! and MySQL/MariaDB (`MAGPIE_TEST_MYSQL_URL`), both admin URLs: one fresh
//! database per case, plus what only a shared SQL store must show
//! (partitioning, concurrent writers, reopening, adopting a database from
//! before versioned migrations). Skipped outside CI without the variable,
//! failed in CI (see `sqldb`).
#![cfg(feature = "sql")]

mod sqldb;

/// What only a shared SQL store must show, written once for both engines:
/// each case takes the admin URL variable (or a fresh store) and asks the
/// engine's catalog where it must.
mod cases {
    use super::sqldb::{FreshDb, admin_url, is_mysql};
    use magpie_core::{ConvId, UserId};
    use magpie_store::Store;
    use magpie_store::sql::SqlStore;
    use magpie_store::testsuite::{accepted, new_msg, send, users};
    use sqlx::{AssertSqlSafe, Connection};

    /// Runs `sql` (one or more statements, no arguments) on a new connection;
    /// returns the first column of the first row when there is one.
    async fn run(url: &str, sql: String) -> Option<i64> {
        use sqlx::Row;
        if is_mysql(url) {
            let mut c = sqlx::MySqlConnection::connect(url).await.expect("connect");
            let rows = sqlx::raw_sql(AssertSqlSafe(sql)).fetch_all(&mut c).await;
            let first = rows.expect("sql").first().map(|r| r.get::<i64, _>(0));
            c.close().await.expect("close");
            first
        } else {
            let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
            let rows = sqlx::raw_sql(AssertSqlSafe(sql)).fetch_all(&mut c).await;
            let first = rows.expect("sql").first().map(|r| r.get::<i64, _>(0));
            c.close().await.expect("close");
            first
        }
    }

    /// How many hash partitions `table` has.
    async fn partitions(url: &str, table: &str) -> i64 {
        let sql = if is_mysql(url) {
            format!(
                "SELECT CAST(COUNT(*) AS SIGNED) FROM information_schema.PARTITIONS
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' AND PARTITION_METHOD = 'HASH'"
            )
        } else {
            format!("SELECT COUNT(*) FROM pg_inherits WHERE inhparent = '{table}'::regclass")
        };
        run(url, sql).await.expect("a count")
    }

    /// How many of the `n` partitions of the index table hold rows.
    async fn partitions_used(url: &str, n: u32) -> i64 {
        let sql = if is_mysql(url) {
            let used: Vec<String> = (0..n)
                .map(|p| format!("(SELECT COUNT(*) > 0 FROM im_user_msg_box PARTITION (p{p}))"))
                .collect();
            format!("SELECT CAST({} AS SIGNED)", used.join(" + "))
        } else {
            "SELECT COUNT(DISTINCT tableoid) FROM im_user_msg_box".to_string()
        };
        run(url, sql).await.expect("a count")
    }

    /// Both message tables are hash-partitioned with the requested count, and
    /// rows spread over the partitions are all found.
    pub async fn message_tables_are_partitioned(var: &str) {
        let Some(admin) = admin_url(var) else {
            return;
        };
        let db = FreshDb::create(&admin).await;
        let s = Store::new(SqlStore::connect(&db.url, 1000, 4).await.expect("connect"));
        for table in ["im_user_msg_box", "im_msg_content"] {
            assert_eq!(partitions(&db.url, table).await, 4, "{table}");
        }
        let names: Vec<String> = (0..6).map(|i| format!("u{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let u = users(&s, &names).await;
        for w in u.windows(2) {
            send(&s, new_msg(w[0], w[1], "hi")).await;
        }
        let used = partitions_used(&db.url, 4).await;
        assert!(used > 1, "6 owners spread over more than one partition");
        let convs = s.messages().conversations(u[1]).await.expect("list");
        assert_eq!(convs.len(), 2);
    }

    /// Concurrent batches over two conversations, half of them locking the
    /// conversations in the opposite order (a deadlock the store must avoid or
    /// retry through), still get distinct, contiguous sequences.
    pub async fn concurrent_batches_get_contiguous_seqs(
        fresh: (Store, Box<dyn std::any::Any + Send>),
    ) {
        let (s, _db) = fresh;
        let u = users(&s, &["a", "b", "c"]).await;
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let (s, u) = (s.clone(), u.clone());
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    for _ in 0..5 {
                        let mut batch = vec![new_msg(u[0], u[1], "ab"), new_msg(u[0], u[2], "ac")];
                        if t % 2 == 1 {
                            batch.reverse();
                        }
                        got.extend(accepted(&s, batch).await);
                    }
                    got
                })
            })
            .collect();
        let mut by_conv = std::collections::BTreeMap::<ConvId, Vec<i64>>::new();
        for t in tasks {
            for a in t.await.expect("task") {
                assert!(!a.duplicate);
                by_conv.entry(a.conv).or_default().push(a.seq);
            }
        }
        for (conv, mut seqs) in by_conv {
            seqs.sort_unstable();
            assert_eq!(seqs, (1..=40).collect::<Vec<_>>(), "{conv}");
            let stored = s.messages().messages_after(u[0], &conv, 0, 100).await;
            assert_eq!(stored.expect("read").len(), 40);
        }
    }

    /// After reopening: the first message is still a duplicate of itself, the
    /// sequence and summaries continue, ids are not reused.
    async fn check_reopened(s: &Store, m: magpie_core::NewMessage, b: UserId) {
        let a = m.from;
        let conv = ConvId::direct(a, b);
        let dup = accepted(s, vec![m]).await.remove(0);
        assert!(dup.duplicate && dup.seq == 1, "idempotency survives reopen");
        assert_eq!(send(s, new_msg(b, a, "after reopen")).await, 2);
        let summary = s.messages().conversation(b, &conv).await.expect("summary");
        let summary = summary.expect("exists");
        assert_eq!(
            (summary.last_seq, summary.read_seq, summary.unread),
            (2, 1, 0)
        );
        let carol = s
            .accounts()
            .create_user("carol", "h")
            .await
            .expect("create");
        assert!(carol.id.0 > b.0, "ids are not reused");
    }

    /// Data survives dropping and reopening the store; migrating again is a
    /// no-op that keeps the original partition count.
    pub async fn store_survives_reopen_and_remigration(var: &str) {
        let Some(admin) = admin_url(var) else {
            return;
        };
        let db = FreshDb::create(&admin).await;
        let s = Store::open(&db.url).await.expect("open");
        let u = users(&s, &["alice", "bob"]).await;
        let m = new_msg(u[0], u[1], "persisted");
        send(&s, m.clone()).await;
        let conv = ConvId::direct(u[0], u[1]);
        assert_eq!(
            s.messages().set_read(u[1], &conv, 1).await.expect("read"),
            1
        );
        drop(s);

        magpie_store::sql::migrate(&db.url)
            .await
            .expect("migrate again");
        let s = Store::new(SqlStore::connect(&db.url, 1000, 16).await.expect("reopen"));
        check_reopened(&s, m, u[1]).await;
        let n = partitions(&db.url, "im_msg_content").await;
        assert_eq!(n, 8, "the partition count is fixed at creation");
    }

    /// A database laid out before migrations were versioned (migration 0001's
    /// tables with 4 partitions and the `schema_version` marker, but no
    /// `_sqlx_migrations`) opens with its data and keeps its partition count.
    pub async fn unversioned_database_is_adopted(var: &str) {
        let Some(admin) = admin_url(var) else {
            return;
        };
        let db = FreshDb::create(&admin).await;
        let (baseline, parts) = if is_mysql(&db.url) {
            let alter =
                |t: &str, k: &str| format!("ALTER TABLE {t} PARTITION BY HASH ({k}) PARTITIONS 4;");
            let parts =
                alter("im_msg_content", "from_uid") + &alter("im_user_msg_box", "owner_uid");
            (include_str!("../migrations/mysql/0001_baseline.sql"), parts)
        } else {
            let part = |t: &str, i: u32| {
                format!(
                    "CREATE TABLE {t}_p{i} PARTITION OF {t} FOR VALUES WITH (MODULUS 4, REMAINDER {i});"
                )
            };
            let parts =
                (0..4).flat_map(|i| [part("im_msg_content", i), part("im_user_msg_box", i)]);
            (
                include_str!("../migrations/postgres/0001_baseline.sql"),
                parts.collect(),
            )
        };
        let m = new_msg(UserId(1), UserId(2), "from before");
        let rows = format!(
            "CREATE TABLE schema_version (id INT NOT NULL PRIMARY KEY, version BIGINT NOT NULL, partitions BIGINT NOT NULL);
             INSERT INTO schema_version VALUES (1, 2, 4);
             INSERT INTO users (username, password_hash, created_at) VALUES ('alice', 'h', 1), ('bob', 'h', 1);
             INSERT INTO conversations VALUES ('d:1:2', 1);
             INSERT INTO im_msg_content VALUES ({}, 'd:1:2', 1, 1, 2, '{}', 'from before', 'forever', {}, NULL);
             INSERT INTO im_user_msg_box VALUES (1, 2, 'd:1:2', 1, {0}, 0), (2, 1, 'd:1:2', 1, {0}, 1);
             INSERT INTO user_conv VALUES (1, 'd:1:2', 2, 1, 0), (2, 'd:1:2', 1, 1, 1);",
            m.server_id.0, m.cmid, m.sent_at
        );
        run(&db.url, format!("{baseline}\n{parts}\n{rows}")).await;
        let s = Store::new(SqlStore::connect(&db.url, 1000, 16).await.expect("adopt"));
        let got = s.messages().messages_after(UserId(2), &m.conv, 0, 10).await;
        assert_eq!(got.expect("read")[0].body, "from before");
        check_reopened(&s, m, UserId(2)).await;
        assert_eq!(partitions(&db.url, "im_msg_content").await, 4);
    }
}

/// Every conformance case and every SQL case on the engine `$var` names.
macro_rules! sql_suite {
    ($engine:ident, $var:expr) => {
        mod $engine {
            use super::cases;

            /// A store on a fresh database, the database being the guard.
            async fn fresh() -> (magpie_store::Store, Box<dyn std::any::Any + Send>) {
                super::sqldb::fresh($var).await
            }

            magpie_store::accounts_conformance!(fresh);
            magpie_store::messages_conformance!(fresh);
            magpie_store::groups_conformance!(fresh);
            magpie_store::retention_conformance!(fresh);
            magpie_store::feeds_conformance!(fresh);

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn message_tables_are_partitioned() {
                cases::message_tables_are_partitioned($var).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_batches_get_contiguous_seqs() {
                cases::concurrent_batches_get_contiguous_seqs(fresh().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn store_survives_reopen_and_remigration() {
                cases::store_survives_reopen_and_remigration($var).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn unversioned_database_is_adopted() {
                cases::unversioned_database_is_adopted($var).await;
            }
        }
    };
}

sql_suite!(postgres, "MAGPIE_TEST_POSTGRES_URL");
sql_suite!(mysql, "MAGPIE_TEST_MYSQL_URL");
