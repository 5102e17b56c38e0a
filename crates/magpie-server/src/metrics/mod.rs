//! Prometheus metrics, rendered by our own `GET /metrics` route (no extra
//! listener). The recorder is process-global, installed once. Every series
//! is listed in `catalog.rs` and docs/observability.md.

pub mod catalog;

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

pub const CONNECTIONS: &str = "magpie_connections";
pub const ACCEPTED: &str = "magpie_messages_accepted_total";
pub const DUPLICATES: &str = "magpie_messages_duplicate_total";
pub const PUSHED: &str = "magpie_messages_pushed_total";
pub const ACKED: &str = "magpie_messages_acked_total";
pub const RESENT: &str = "magpie_messages_resent_total";
/// Accept → the receiving device's ack, by transport.
pub const DELIVERY_LATENCY: &str = "magpie_delivery_latency_seconds";
/// Accept → the push written to the receiving device's socket, by transport.
pub const DELIVERY_WRITTEN: &str = "magpie_delivery_written_seconds";
/// Time a send spends in each stage of acceptance (label `stage`: `auth`,
/// `idempotency`, `store`, `bus`); store and bus per batch.
pub const ACCEPT_STAGE: &str = "magpie_accept_stage_seconds";
/// Store and bus calls that failed (unreachable, timed out, corrupt), not
/// the domain's refusals.
pub const STORE_ERRORS: &str = "magpie_store_errors_total";
pub const BUS_ERRORS: &str = "magpie_bus_errors_total";
pub const DEAD_LETTERS: &str = "magpie_dead_letters_total";
/// Offline push webhook calls by how they ended (label `outcome`: `sent`
/// on the first attempt, `retried` on a later one, `failed` after the
/// last, `dropped` when a queue was full).
pub const PUSH_CALLS: &str = "magpie_push_calls_total";
/// Offline push webhook calls given up after `push.max_attempts`.
pub const PUSH_DEAD_LETTERS: &str = "magpie_push_dead_letters_total";
/// Bus events a worker group applied and acknowledged (label `group`).
pub const WORKER_EVENTS: &str = "magpie_worker_events_total";
pub const SLOW_CONSUMERS: &str = "magpie_slow_consumers_total";
pub const BAD_FRAMES: &str = "magpie_bad_frames_total";
pub const RESYNC_HINTS: &str = "magpie_resync_hints_total";
pub const STALE_ROUTES: &str = "magpie_stale_routes_removed_total";
pub const ROUTE_REPAIRS: &str = "magpie_route_repairs_total";
pub const ROUTE_LOOKUPS: &str = "magpie_route_lookups_total";
/// Small groups' pushes served by a cached member list (no store read).
pub const MEMBER_LIST_HITS: &str = "magpie_member_list_hits_total";
pub const BUS_EVENTS: &str = "magpie_bus_events_published_total";
/// Durable appends: calls to the bus's `publish`, each one durable write
/// (one sync) however many events it carries.
pub const BUS_APPENDS: &str = "magpie_bus_appends_total";
pub const RELAYED: &str = "magpie_relay_messages_published_total";
pub const STORE_ROWS: &str = "magpie_store_message_rows_total";
pub const QUEUE_WRITES: &str = "magpie_state_queue_writes_total";
pub const BROADCASTS: &str = "magpie_group_broadcasts_total";
pub const BROADCASTS_ARRIVED: &str = "magpie_broadcasts_arrived_total";
pub const ROOM_MESSAGES: &str = "magpie_room_messages_total";
pub const CONN_REFUSED: &str = "magpie_connections_refused_total";
pub const PRESENCE_DROPPED: &str = "magpie_presence_dropped_total";
/// Ban decisions made (by the detector, an operator or a rule).
pub const BANS: &str = "magpie_bans_total";
/// Requests, frames and connections refused over a rate limit.
pub const RATE_LIMITED: &str = "magpie_rate_limited_total";
/// Requests, frames and connections refused because of a ban.
pub const BANNED: &str = "magpie_banned_refusals_total";
/// Access events dropped because their queue was full.
pub const ACCESS_DROPPED: &str = "magpie_access_events_dropped_total";
/// Failed logins (wrong password, missing captcha, locked out).
pub const LOGIN_FAILURES: &str = "magpie_login_failures_total";
/// Posts stored (new ones; a retry answered with its original is not counted).
pub const POSTS: &str = "magpie_feed_posts_total";
/// Post keys written into followers' inboxes by the fan-out (asked for:
/// an inbox that is not materialised takes nothing).
pub const INBOX_WRITES: &str = "magpie_feed_inbox_writes_total";
/// Posts whose author was big: pushed to its subscribers (active followers) only.
pub const FANOUT_BIG: &str = "magpie_feed_fanout_big_total";
/// Home-feed reads, by how they were served (label `from`: `inbox`,
/// `inbox_and_pull` or `pull`).
pub const FEED_READS: &str = "magpie_feed_reads_total";
/// Messages written into this node's search index (re-indexing counts again).
pub const SEARCH_INDEXED: &str = "magpie_search_indexed_total";
/// 1 while this node rebuilds its search index from the store, else 0.
pub const SEARCH_REBUILDING: &str = "magpie_search_rebuilding";
/// Documents in this node's search index (after its last commit).
pub const SEARCH_DOCS: &str = "magpie_search_documents";
/// A consumer group's backlog in a partition (labels `group`, `partition`):
/// events not yet given to it, and the age of the oldest message in the
/// batch it last took (0 once it finds nothing new). Sampled each second.
pub const CONSUMER_LAG: &str = "magpie_consumer_lag_events";
pub const CONSUMER_LAG_SECONDS: &str = "magpie_consumer_lag_seconds";
/// The data directory's file system: bytes free (to this process) and in
/// all; and the live nodes in the registry as this node sees it.
pub const DATA_DIR_FREE: &str = "magpie_data_dir_free_bytes";
pub const DATA_DIR_CAPACITY: &str = "magpie_data_dir_capacity_bytes";
pub const CLUSTER_NODES: &str = "magpie_cluster_nodes";
/// Acceptance → searchable (the index commit holding it), per message.
pub const SEARCH_DELAY: &str = "magpie_search_index_delay_seconds";
/// Search queries answered (label `outcome`: `ok` or `error`).
pub const SEARCH_QUERIES: &str = "magpie_search_queries_total";
/// Chained sends whose predecessor never came within `chain.wait_ms` (the
/// gap alarm; label `action`: `skip` or `reject`).
pub const CHAIN_GAPS: &str = "magpie_chain_gaps_total";
/// Events given back to the bus after a failed publish, by outcome
/// (`published` in the end, or `dropped` after the give-up time).
pub const REPUBLISHED: &str = "magpie_republished_events_total";
/// Store shards found down, and how many are down now (sharded stores).
pub const STORE_SHARD_DOWN: &str = "magpie_store_shard_down_total";
pub const STORE_SHARDS_DOWN: &str = "magpie_store_shards_down";
/// Chained sends held for their predecessor (not the gaps: every wait).
pub const CHAIN_HELD: &str = "magpie_chain_held_total";
/// Chained sends refused at once for a device over its gap limit (label
/// `why`: `slow_down` or `penalty`).
pub const CHAIN_REFUSED: &str = "magpie_chain_refused_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder the first time; later calls (more servers in one
/// test process) share it.
pub fn exporter() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".into()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0,
                ],
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let handle = match builder.install_recorder() {
            Ok(h) => h,
            // Another recorder is installed (an embedding application's): keep
            // a private one so /metrics still renders something true for us.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        };
        // A histogram keeps every sample until upkeep folds it into its
        // buckets; without a scrape (or with a rare one) that grew the
        // process by ~1 KB per 10 deliveries. One thread for the process,
        // as the recorder is.
        let kept = handle.clone();
        let _ = std::thread::Builder::new()
            .name("magpie-metrics".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    kept.run_upkeep();
                }
            });
        handle
    })
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

pub fn render() -> String {
    exporter().render()
}

/// Handles of the metrics the message path touches, resolved once: the
/// `counter!` macro looks its metric up by name on every call, which per
/// message adds up.
pub struct Meters {
    pub accepted: Counter,
    pub duplicates: Counter,
    pub pushed: Counter,
    pub acked: Counter,
    pub resent: Counter,
    /// By transport (`transport_index`): accept → ack, accept → written.
    pub delivery_latency: [Histogram; 2],
    pub delivery_written: [Histogram; 2],
    pub stage_auth: Histogram,
    pub stage_idempotency: Histogram,
    pub stage_store: Histogram,
    pub stage_bus: Histogram,
    pub store_errors: Counter,
    pub bus_errors: Counter,
    pub slow_consumers: Counter,
    pub bad_frames: Counter,
    pub route_lookups: Counter,
    pub member_list_hits: Counter,
    pub bus_events: Counter,
    pub bus_appends: Counter,
    pub relayed: Counter,
    pub store_rows: Counter,
    pub queue_writes: Counter,
    pub broadcasts: Counter,
    pub broadcasts_arrived: Counter,
    pub resync_hints: Counter,
    pub conn_refused: Counter,
    pub bans: Counter,
    pub rate_limited: Counter,
    pub banned: Counter,
    pub access_dropped: Counter,
    pub login_failures: Counter,
    pub posts: Counter,
    pub inbox_writes: Counter,
    pub fanout_big: Counter,
}

static METERS: OnceLock<Meters> = OnceLock::new();

/// The transports, in the order of the per-transport handles.
pub const TRANSPORTS: [&str; 2] = ["ws", "tcp"];

/// The index of `transport` among `TRANSPORTS`.
pub fn transport_index(transport: &str) -> usize {
    usize::from(transport == "tcp")
}

/// The cached handles (the recorder is installed first).
pub fn meters() -> &'static Meters {
    METERS.get_or_init(|| {
        exporter();
        Meters {
            accepted: metrics::counter!(ACCEPTED),
            duplicates: metrics::counter!(DUPLICATES),
            pushed: metrics::counter!(PUSHED),
            acked: metrics::counter!(ACKED),
            resent: metrics::counter!(RESENT),
            delivery_latency: TRANSPORTS
                .map(|t| metrics::histogram!(DELIVERY_LATENCY, "transport" => t)),
            delivery_written: TRANSPORTS
                .map(|t| metrics::histogram!(DELIVERY_WRITTEN, "transport" => t)),
            stage_auth: metrics::histogram!(ACCEPT_STAGE, "stage" => "auth"),
            stage_idempotency: metrics::histogram!(ACCEPT_STAGE, "stage" => "idempotency"),
            stage_store: metrics::histogram!(ACCEPT_STAGE, "stage" => "store"),
            stage_bus: metrics::histogram!(ACCEPT_STAGE, "stage" => "bus"),
            store_errors: metrics::counter!(STORE_ERRORS),
            bus_errors: metrics::counter!(BUS_ERRORS),
            slow_consumers: metrics::counter!(SLOW_CONSUMERS),
            bad_frames: metrics::counter!(BAD_FRAMES),
            route_lookups: metrics::counter!(ROUTE_LOOKUPS),
            member_list_hits: metrics::counter!(MEMBER_LIST_HITS),
            bus_events: metrics::counter!(BUS_EVENTS),
            bus_appends: metrics::counter!(BUS_APPENDS),
            relayed: metrics::counter!(RELAYED),
            store_rows: metrics::counter!(STORE_ROWS),
            queue_writes: metrics::counter!(QUEUE_WRITES),
            broadcasts: metrics::counter!(BROADCASTS),
            broadcasts_arrived: metrics::counter!(BROADCASTS_ARRIVED),
            resync_hints: metrics::counter!(RESYNC_HINTS),
            conn_refused: metrics::counter!(CONN_REFUSED),
            bans: metrics::counter!(BANS),
            rate_limited: metrics::counter!(RATE_LIMITED),
            banned: metrics::counter!(BANNED),
            access_dropped: metrics::counter!(ACCESS_DROPPED),
            login_failures: metrics::counter!(LOGIN_FAILURES),
            posts: metrics::counter!(POSTS),
            inbox_writes: metrics::counter!(INBOX_WRITES),
            fanout_big: metrics::counter!(FANOUT_BIG),
        }
    })
}
