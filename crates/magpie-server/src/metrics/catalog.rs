//! Every series this server exports, with every value of its labels, so
//! each exists from the start at zero: a fresh node's `/metrics` is
//! complete, dashboards show 0 rather than "no data", and alerts on a
//! series' absence mean the node is missing, not idle.
//!
//! Invariant: label values are a fixed set (transports, stages, outcomes)
//! or grow with the deployment (worker groups, partitions: registered by
//! the workers as they start), never with users or conversations
//! (`tests/observability.rs` checks the series count as users grow).
//! docs/observability.md documents each entry; a test checks it does.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A series and its label's values (one label at most; none: `("", &[])`).
pub struct Entry {
    pub name: &'static str,
    pub kind: Kind,
    pub label: &'static str,
    pub values: &'static [&'static str],
}

const fn plain(name: &'static str, kind: Kind) -> Entry {
    Entry {
        name,
        kind,
        label: "",
        values: &[],
    }
}

const fn by(
    name: &'static str,
    kind: Kind,
    label: &'static str,
    values: &'static [&'static str],
) -> Entry {
    Entry {
        name,
        kind,
        label,
        values,
    }
}

use Kind::{Counter as C, Gauge as G, Histogram as H};

/// Series labelled by worker group (and partition) are registered by each
/// worker as it starts: `WORKER_EVENTS`, `DEAD_LETTERS`, `CONSUMER_LAG`,
/// `CONSUMER_LAG_SECONDS`.
pub const CATALOG: &[Entry] = &[
    by(CONNECTIONS, G, "transport", &TRANSPORTS),
    plain(ACCEPTED, C),
    plain(DUPLICATES, C),
    plain(PUSHED, C),
    plain(ACKED, C),
    plain(RESENT, C),
    by(DELIVERY_LATENCY, H, "transport", &TRANSPORTS),
    by(DELIVERY_WRITTEN, H, "transport", &TRANSPORTS),
    by(
        ACCEPT_STAGE,
        H,
        "stage",
        &["auth", "idempotency", "store", "bus"],
    ),
    plain(STORE_ERRORS, C),
    plain(BUS_ERRORS, C),
    plain(SLOW_CONSUMERS, C),
    plain(BAD_FRAMES, C),
    plain(RESYNC_HINTS, C),
    plain(STALE_ROUTES, C),
    by(ROUTE_REPAIRS, C, "kind", &["restored", "superseded"]),
    plain(ROUTE_LOOKUPS, C),
    plain(MEMBER_LIST_HITS, C),
    plain(BUS_EVENTS, C),
    plain(BUS_APPENDS, C),
    plain(RELAYED, C),
    plain(STORE_ROWS, C),
    plain(QUEUE_WRITES, C),
    plain(BROADCASTS, C),
    plain(BROADCASTS_ARRIVED, C),
    by(ROOM_MESSAGES, C, "outcome", &["delivered", "shed"]),
    plain(CONN_REFUSED, C),
    plain(PRESENCE_DROPPED, C),
    plain(BANS, C),
    plain(RATE_LIMITED, C),
    plain(BANNED, C),
    plain(ACCESS_DROPPED, C),
    plain(LOGIN_FAILURES, C),
    plain(POSTS, C),
    plain(INBOX_WRITES, C),
    plain(FANOUT_BIG, C),
    by(FEED_READS, C, "from", &["inbox", "inbox_and_pull", "pull"]),
    plain(SEARCH_INDEXED, C),
    plain(SEARCH_REBUILDING, G),
    plain(SEARCH_DOCS, G),
    by(SEARCH_QUERIES, C, "outcome", &["ok", "error"]),
    plain(SEARCH_DELAY, H),
    by(CHAIN_GAPS, C, "action", &["skip", "reject"]),
    plain(CHAIN_HELD, C),
    by(CHAIN_REFUSED, C, "why", &["slow_down", "penalty"]),
    by(REPUBLISHED, C, "outcome", &["published", "dropped"]),
    by(
        PUSH_CALLS,
        C,
        "outcome",
        &["sent", "retried", "failed", "dropped"],
    ),
    plain(PUSH_DEAD_LETTERS, C),
    plain(magpie_store::round_trips::SQL_ROUND_TRIPS, C),
    plain(magpie_store::round_trips::REDIS_ROUND_TRIPS, C),
    plain(STORE_SHARD_DOWN, C),
    plain(STORE_SHARDS_DOWN, G),
    plain(DATA_DIR_FREE, G),
    plain(DATA_DIR_CAPACITY, G),
    plain(CLUSTER_NODES, G),
];

/// Registers every catalogued series at zero (a counter or gauge that has
/// a value keeps it: this adds 0).
pub fn register_all() {
    exporter();
    for e in CATALOG {
        if e.values.is_empty() {
            touch(e.name, e.kind, None);
        }
        for v in e.values {
            touch(e.name, e.kind, Some((e.label, v)));
        }
    }
}

fn touch(name: &'static str, kind: Kind, label: Option<(&'static str, &'static str)>) {
    let labels: Vec<(&'static str, &'static str)> = label.into_iter().collect();
    match kind {
        Kind::Counter => metrics::counter!(name, &labels).increment(0),
        Kind::Gauge => metrics::gauge!(name, &labels).increment(0.0),
        Kind::Histogram => drop(metrics::histogram!(name, &labels)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_documented() {
        let doc = include_str!("../../../../docs/observability.md");
        let by_workers = [
            WORKER_EVENTS,
            DEAD_LETTERS,
            CONSUMER_LAG,
            CONSUMER_LAG_SECONDS,
        ];
        for name in CATALOG.iter().map(|e| e.name).chain(by_workers) {
            assert!(
                doc.contains(&format!("| `{name}` |")),
                "{name} is not in docs/observability.md"
            );
        }
    }
}
