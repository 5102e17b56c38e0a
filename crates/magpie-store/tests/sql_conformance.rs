//! The store conformance suites on PostgreSQL (`MAGPIE_TEST_POSTGRES_URL`)
//! and MySQL/MariaDB (`MAGPIE_TEST_MYSQL_URL`), both admin URLs: one fresh
//! database per case, plus what only a shared SQL store must show
//! (partitioning, concurrent writers, reopening, adopting a database from
//! before versioned migrations). Skipped outside CI without the variable,
//! failed in CI (see `sqldb`).
#![cfg(feature = "sql")]

mod sqldb;

/// Every conformance case and every SQL case on the engine `$var` names.
macro_rules! sql_suite {
    ($engine:ident, $var:expr) => {
        mod $engine {
            use super::sqldb::cases;

            /// A store on a fresh database, the database being the guard.
            async fn fresh() -> (magpie_store::Store, Box<dyn std::any::Any + Send>) {
                super::sqldb::fresh($var).await
            }

            magpie_store::accounts_conformance!(fresh);
            magpie_store::messages_conformance!(fresh);
            magpie_store::groups_conformance!(fresh);
            magpie_store::retention_conformance!(fresh);

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
