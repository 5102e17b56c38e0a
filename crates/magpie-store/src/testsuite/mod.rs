//! Conformance suites: the promises of the store traits
//! ([`backend`](crate::backend)) and of [`StateBackend`](crate::StateBackend), written once against the
//! handles so every backend (SQLite and memory now; PostgreSQL, MySQL and
//! Redis later) is held to the same behaviour.
//!
//! Each case is a plain `async fn(handle)` in [`store_cases`] or
//! [`state_cases`]; one macro per store domain
//! ([`accounts_conformance!`](crate::accounts_conformance),
//! [`messages_conformance!`](crate::messages_conformance),
//! [`groups_conformance!`](crate::groups_conformance),
//! [`retention_conformance!`](crate::retention_conformance),
//! [`feeds_conformance!`](crate::feeds_conformance)) and
//! [`state_conformance!`](crate::state_conformance) turn them into one
//! `#[tokio::test]` per case, so a failure names the broken promise:
//!
//! ```ignore
//! mod sqlite_memory {
//!     magpie_store::messages_conformance!(|| async {
//!         Store::new(SqliteStore::open_in_memory().await.expect("open"))
//!     });
//! }
//! ```
//!
//! The factory may also return `(handle, guard)`; the guard (e.g. a temp
//! directory) lives until the case ends. Cases assume a fresh, empty backend
//! and panic on failure: this module is test code shipped in the library so
//! other crates' backends can reuse it.

mod state_big_user;
mod state_buckets;
mod state_chains;
mod state_guard;
mod state_inboxes;
mod state_queues;
mod state_registry;
mod state_routes;
mod store_accounts;
mod store_feeds;
mod store_group_reads;
mod store_groups;
mod store_member_events;
mod store_mentions;
mod store_messages;
mod store_reads;
mod store_retention;
mod store_revisions;
mod store_search;

use crate::{State, Store};
use magpie_core::{
    ClientMsgId, ConvId, GroupId, MsgIdGen, NewMessage, Persistence, Seq, UserId, now_ms,
};
use std::any::Any;
use std::sync::OnceLock;

/// The durable-store cases, one function per promise.
pub mod store_cases {
    pub use super::store_accounts::*;
    pub use super::store_feeds::*;
    pub use super::store_group_reads::*;
    pub use super::store_groups::*;
    pub use super::store_member_events::*;
    pub use super::store_mentions::*;
    pub use super::store_messages::*;
    pub use super::store_reads::*;
    pub use super::store_retention::*;
    pub use super::store_revisions::*;
    pub use super::store_search::*;
}

/// The fast-state cases, one function per promise.
pub mod state_cases {
    pub use super::state_big_user::*;
    pub use super::state_buckets::{
        offline_cap_applies_per_segment, offline_reads_in_order_across_buckets,
        offline_segments_expire_whole, server_id_at,
    };
    pub use super::state_chains::*;
    pub use super::state_guard::*;
    pub use super::state_inboxes::*;
    pub use super::state_queues::*;
    pub use super::state_registry::*;
    pub use super::state_routes::*;
}

/// What a conformance factory may produce: the handle alone, or the handle
/// with a guard that must outlive the case (a temp dir, a container).
pub trait Fixture<H> {
    fn split(self) -> (H, Box<dyn Any + Send>);
}

impl Fixture<Store> for Store {
    fn split(self) -> (Store, Box<dyn Any + Send>) {
        (self, Box::new(()))
    }
}

impl<G: Send + 'static> Fixture<Store> for (Store, G) {
    fn split(self) -> (Store, Box<dyn Any + Send>) {
        (self.0, Box::new(self.1))
    }
}

impl Fixture<State> for State {
    fn split(self) -> (State, Box<dyn Any + Send>) {
        (self, Box::new(()))
    }
}

impl<G: Send + 'static> Fixture<State> for (State, G) {
    fn split(self) -> (State, Box<dyn Any + Send>) {
        (self.0, Box::new(self.1))
    }
}

/// Server ids as a node would assign them: unique and increasing.
pub fn next_server_id() -> magpie_core::ServerMsgId {
    static IDS: OnceLock<MsgIdGen> = OnceLock::new();
    IDS.get_or_init(|| MsgIdGen::new(1)).next()
}

/// A new `forever` message from `from` to `to` in their direct conversation.
pub fn new_msg(from: UserId, to: UserId, body: &str) -> NewMessage {
    NewMessage {
        meta: None,
        trace: None,
        server_id: next_server_id(),
        conv: ConvId::direct(from, to),
        from,
        to,
        cmid: ClientMsgId::new_v7(),
        body: body.to_string(),
        persistence: Persistence::Forever,
        sent_at: now_ms(),
        search: true,
    }
}

/// `new_msg` with another persistence level.
pub fn new_msg_kept(from: UserId, to: UserId, body: &str, p: Persistence) -> NewMessage {
    NewMessage {
        persistence: p,
        ..new_msg(from, to, body)
    }
}

/// A new `forever` message from `from` to group `g`.
pub fn group_msg(g: GroupId, from: UserId, body: &str) -> NewMessage {
    NewMessage {
        meta: None,
        trace: None,
        server_id: next_server_id(),
        conv: ConvId::group(g),
        from,
        to: UserId(0),
        cmid: ClientMsgId::new_v7(),
        body: body.to_string(),
        persistence: Persistence::Forever,
        sent_at: now_ms(),
        search: true,
    }
}

/// Accepts one group message and returns its sequence.
pub async fn post(s: &Store, g: GroupId, from: UserId, body: &str) -> Seq {
    accepted(s, vec![group_msg(g, from, body)]).await[0].seq
}

/// `user`'s unread count in group `g` (-1 without a summary).
pub async fn group_unread(s: &Store, user: UserId, g: GroupId) -> i64 {
    s.messages()
        .conversation(user, &ConvId::group(g))
        .await
        .expect("summary")
        .map_or(-1, |c| c.unread)
}

/// Creates users with these names and returns their ids.
pub async fn users(s: &Store, names: &[&str]) -> Vec<UserId> {
    let mut ids = Vec::with_capacity(names.len());
    for n in names {
        ids.push(
            s.accounts()
                .create_user(n, "hash")
                .await
                .expect("create user")
                .id,
        );
    }
    ids
}

/// Accepts a batch that must be accepted whole (each message accepted or a duplicate).
pub async fn accepted(s: &Store, batch: Vec<NewMessage>) -> Vec<magpie_core::Accepted> {
    s.messages()
        .accept(batch)
        .await
        .expect("accept")
        .into_iter()
        .map(|o| o.expect("message accepted"))
        .collect()
}

/// `owner`'s summary of `conv`, if it has the conversation.
pub async fn summary_of(s: &Store, owner: UserId, conv: &ConvId) -> Option<crate::ConvSummary> {
    let summary = s.messages().conversation(owner, conv).await;
    summary.expect("summary")
}

/// Accepts a batch of one message and returns its outcome.
pub async fn accept_one(s: &Store, m: NewMessage) -> crate::Outcome {
    s.messages().accept(vec![m]).await.expect("tx").remove(0)
}

/// Accepts one message and returns its sequence.
pub async fn send(s: &Store, m: NewMessage) -> i64 {
    let acc = accepted(s, vec![m]).await;
    assert!(!acc[0].duplicate, "a fresh cmid must not be a duplicate");
    acc[0].seq
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($handle:ty, $cases:ident, $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (handle, _guard) =
                    <_ as $crate::testsuite::Fixture<$handle>>::split(($factory)().await);
                $crate::testsuite::$cases::$case(handle).await;
            }
        )*
    };
}

/// One `#[tokio::test]` per account case (users, refresh tokens, settings).
/// `$factory` is a closure returning a future of a fresh `Store` (or
/// `(Store, guard)`).
#[macro_export]
macro_rules! accounts_conformance {
    ($factory:expr) => {
        $crate::__conformance_tests!($crate::Store, store_cases, $factory;
            users_create_conflict_lookup,
            refresh_token_is_single_use,
            concurrent_refresh_uses_agree,
            settings_device_overrides_user_default,
        );
    };
}

/// One `#[tokio::test]` per message case (accept, idempotency, timelines,
/// summaries, read positions); `$factory` as for `accounts_conformance!`.
#[macro_export]
macro_rules! messages_conformance {
    ($factory:expr) => {
        $crate::__conformance_tests!($crate::Store, store_cases, $factory;
            accept_allocates_contiguous_seqs_per_conversation,
            duplicate_returns_original_and_writes_nothing,
            duplicate_within_one_batch,
            stored_retry_between_fresh_messages,
            concurrent_duplicates_agree,
            messages_visible_to_both_parties_with_paging,
            note_to_self_has_one_copy,
            system_user_may_send_without_a_user_row,
            conversations_count_unread_exactly,
            set_read_caps_and_never_moves_back,
            scan_searchable_walks_every_flagged_message_once,
            revisions_rewrite_the_message_they_name,
        );
    };
}

/// One `#[tokio::test]` per group case; `$factory` as for `accounts_conformance!`.
#[macro_export]
macro_rules! groups_conformance {
    ($factory:expr) => {
        $crate::__conformance_tests!($crate::Store, store_cases, $factory;
            groups_membership_and_roles,
            ownership_transfers_to_a_member,
            group_messages_are_stored_once_and_seen_by_members,
            group_unread_and_read_by_follow_positions,
            read_counts_agree_with_read_by,
            refused_send_does_not_stop_the_batch,
            accept_returns_the_membership_it_saw,
            mentions_are_counted_from_read_positions,
            the_system_user_writes_member_events,
        );
    };
}

/// One `#[tokio::test]` per retention case; `$factory` as for `accounts_conformance!`.
#[macro_export]
macro_rules! retention_conformance {
    ($factory:expr) => {
        $crate::__conformance_tests!($crate::Store, store_cases, $factory;
            retention_days_expire,
            retention_none_goes_on_delivery,
            retention_offline_goes_on_read,
        );
    };
}

/// One `#[tokio::test]` per feed case (follows, blocks, posts, outboxes);
/// `$factory` as for `accounts_conformance!`.
#[macro_export]
macro_rules! feeds_conformance {
    ($factory:expr) => {
        $crate::__conformance_tests!($crate::Store, store_cases, $factory;
            follow_edges_lists_and_counts,
            concurrent_follows_count_once,
            blocks_refuse_follows,
            posts_are_idempotent_and_deletable,
            outboxes_merge_and_keys_resolve,
        );
    };
}

/// One `#[tokio::test]` per fast-state case. `$factory` is a closure
/// returning a future of a fresh `State` (or `(State, guard)`).
#[macro_export]
macro_rules! state_conformance {
    ($factory:expr) => {
        $crate::__conformance_tests!($crate::State, state_cases, $factory;
            feed_inbox_is_marked_then_pushed_to,
            feed_inbox_is_capped,
            feed_inbox_expires_unless_filled,
            feed_inbox_settles_once,
            feed_subscribers_scan_and_expire,
            route_add_replace_and_conditional_remove,
            routes_batch_and_node_index,
            restore_routes_writes_only_missing_ones,
            idem_put_is_first_writer_wins,
            idem_entries_expire,
            idem_batches_answer_in_order,
            ticket_is_single_use,
            ticket_expires,
            offline_queue_order_and_limits,
            offline_trim_and_remove,
            offline_queue_is_capped,
            offline_reads_in_order_across_buckets,
            offline_cap_applies_per_segment,
            offline_segments_expire_whole,
            offline_big_user,
            unread_ignored_without_cache,
            arrivals_queue_and_count_once,
            unread_watermark_prevents_double_count,
            unread_reset_respects_newer_counts,
            unread_load_replaces_and_totals,
            heartbeat_registers_node,
            heartbeat_tells_whether_the_record_was_there,
            heartbeat_expires_but_node_stays_known,
            deregister_then_forget,
            nodes_sorted_with_fields_round_tripped,
            lease_exclusive_renewable_and_expiring,
            room_admissions_count_per_window,
            presence_watches_follow_watch_and_expire,
            guard_counters_are_fixed_windows,
            guard_values_swap_and_take_once,
            decisions_are_versioned,
            chain_init_sets_only_if_absent,
            chain_advance_is_compare_and_set,
            chain_advance_has_one_winner,
            chains_are_per_device_and_expire,
        );
    };
}
