//! Counters of round trips to the network engines, the units of the
//! per-message budget (docs/scale.md): one per SQL statement, `BEGIN` and
//! `COMMIT` on PostgreSQL or MySQL; one per Redis command or pipeline (a
//! Redis Cluster pipeline split by slot counts once per slot). The embedded
//! backends are in process and count nothing.
//!
//! The `metrics` macros look the counter up per call: a few hundred
//! nanoseconds beside a round trip of tens of microseconds, and it stays
//! correct whenever the process installs its recorder.

/// Statements (and transaction starts and ends) sent to the SQL store.
pub const SQL_ROUND_TRIPS: &str = "magpie_sql_round_trips_total";
/// Commands and pipelines sent to Redis.
pub const REDIS_ROUND_TRIPS: &str = "magpie_redis_round_trips_total";

#[cfg(feature = "sql")]
pub(crate) fn sql() {
    metrics::counter!(SQL_ROUND_TRIPS).increment(1);
}

#[cfg(feature = "redis")]
pub(crate) fn redis(n: u64) {
    metrics::counter!(REDIS_ROUND_TRIPS).increment(n);
}
