//! The durable store's traits, one per domain, for implementors only.
//!
//! Callers hold a [`Store`](crate::Store) and reach each domain through
//! `store.accounts()`, `store.messages()`, `store.groups()` and
//! `store.retention()`; method calls on the `&dyn` trait objects they return
//! need no import. A backend implements all four (one object may serve them
//! all) and is wrapped with [`Store::new`](crate::Store::new).
//!
//! Every method is one transaction. `MessageStore::accept` is the write that
//! makes a send durable, so an implementation must have committed (fsync per
//! its durability setting) before it returns (ARCHITECTURE.md, "Acknowledged
//! = durable").

use crate::error::Result;
use crate::store::{
    ConvSummary, FollowCounts, Outcome, Page, PostOutcome, ProfileRecord, ReadBy, RefreshUse,
    RetentionHit, Retire, UserRecord,
};
use async_trait::async_trait;
use magpie_core::{
    Accepted, ClientMsgId, ClientSettings, ConvId, DeviceId, GroupId, GroupInfo, GroupRole,
    MemberInfo, Message, NewMessage, NewPost, Post, PostId, Seq, UserId,
};

/// A page of messages, as `MessageStore::page` returns it.
pub(crate) type Messages = Result<Vec<Message>>;

/// What retention removed, as `RetentionStore::retire` reports it.
type Hits = Result<Vec<RetentionHit>>;

/// Users, refresh tokens and client settings.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates a user; `StoreError::Conflict` if the username is taken.
    async fn create_user(&self, username: &str, password_hash: &str) -> Result<UserRecord>;
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>>;
    /// Stores a refresh token (by its hash) of `family` (the login it comes
    /// from: every token rotated from one login shares it; `""` for none)
    /// for a user's device.
    async fn put_refresh(
        &self,
        token_hash: &str,
        family: &str,
        user: UserId,
        device: &DeviceId,
        expires_at: i64,
    ) -> Result<()>;
    /// Uses a refresh token, once (rotation): the first use marks it used
    /// and answers `Fresh`; a later one answers `Reused` and revokes the
    /// token's whole family (reuse detection), or the token alone without
    /// a family. Concurrent uses: exactly one is `Fresh`.
    async fn use_refresh(&self, token_hash: &str, family: &str) -> Result<RefreshUse>;

    // -- settings
    /// `device = None` sets the user's default for devices without their own.
    async fn put_settings(
        &self,
        user: UserId,
        device: Option<&DeviceId>,
        s: &ClientSettings,
    ) -> Result<()>;
    /// Device settings, else the user's default, else `ClientSettings::default()`.
    /// Sets `user`'s profile (both fields; `""` clears one).
    async fn put_profile(&self, p: &ProfileRecord) -> Result<()>;
    /// The profiles of those of `users` who set one, in no order.
    async fn profiles(&self, users: &[UserId]) -> Result<Vec<ProfileRecord>>;
    async fn get_settings(&self, user: UserId, device: Option<&DeviceId>)
    -> Result<ClientSettings>;
    /// The devices of `user` that stored settings of their own (`PUT
    /// /v1/settings?scope=device`), with them, by device id: the devices
    /// the store knows of (the offline push webhook names them,
    /// docs/protocol.md "Offline push webhook"). The user default is not
    /// among them.
    async fn device_settings(&self, user: UserId) -> Result<Vec<(DeviceId, ClientSettings)>>;
}

/// Messages: accepting sends, the idempotency key, timelines, conversation
/// summaries and read positions (direct and group conversations alike).
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Accepts a batch of sends in one transaction. For each, in order:
    /// if (from, cmid) exists, returns the original result with
    /// `duplicate = true` and writes nothing; a group message its sender may
    /// not send (not a member, muted, group dissolved) is refused with
    /// `Forbidden` and writes nothing either; otherwise allocates the next
    /// sequence of the conversation (contiguous from 1), stores the body once
    /// and the outbox row (owner = from) and inbox row (owner = to), updates
    /// both members' conversation summaries, and returns `duplicate = false`.
    /// A refusal does not stop the others: one outcome per message, in order.
    /// The same (from, cmid) twice in one batch: the second is a duplicate of the first.
    /// `Err` means the transaction failed and nothing of the batch is stored.
    async fn accept(&self, batch: Vec<NewMessage>) -> Result<Vec<Outcome>>;
    /// The durable idempotency key: the original result for (from, cmid).
    async fn lookup_cmid(&self, from: UserId, cmid: ClientMsgId) -> Result<Option<Accepted>>;
    /// Messages of `conv` visible to `owner` on `page`, at most `limit`.
    async fn page(&self, owner: UserId, conv: &ConvId, page: Page, limit: usize) -> Messages;
    /// Messages of `conv` visible to `owner` with seq > `after`, ascending, at most `limit`.
    async fn messages_after(
        &self,
        owner: UserId,
        conv: &ConvId,
        after: Seq,
        limit: usize,
    ) -> Messages {
        self.page(owner, conv, Page::After(after), limit).await
    }
    /// Messages of `conv` visible to `owner` with seq < `before`, newest first, at most `limit`.
    async fn messages_before(
        &self,
        owner: UserId,
        conv: &ConvId,
        before: Seq,
        n: usize,
    ) -> Messages {
        self.page(owner, conv, Page::Before(before), n).await
    }
    /// The stored messages whose `search` flag is set, in (conversation,
    /// sequence) order after `after` (from the start without one), at most
    /// `limit`: what rebuilding a search index reads (docs/search.md).
    /// Conversations are ordered by their id's bytes, within one database.
    async fn scan_searchable(&self, after: Option<(ConvId, Seq)>, limit: usize) -> Messages;
    /// Every conversation `owner` has, with sequences and exact unread counts
    /// (groups included: `peer` is 0, unread is `last_seq` minus the read position).
    async fn conversations(&self, owner: UserId) -> Result<Vec<ConvSummary>>;
    /// Only the group conversations of `owner` (what `conversations` ends
    /// with): cheap, no counting, for totals beside the direct-chat cache.
    async fn group_conversations(&self, owner: UserId) -> Result<Vec<ConvSummary>>;
    /// One conversation's summary for `owner`, if it has one.
    async fn conversation(&self, owner: UserId, conv: &ConvId) -> Result<Option<ConvSummary>>;
    /// Moves `owner`'s read position in `conv` to max(current, seq), capped at
    /// the conversation's last sequence; returns the new position.
    async fn set_read(&self, owner: UserId, conv: &ConvId, seq: Seq) -> Result<Seq>;
    /// Mutes or unmutes `owner`'s notifications of `conv` (docs/protocol.md
    /// §5.11); false, with nothing written, for a conversation `owner` does
    /// not have.
    async fn set_muted(&self, owner: UserId, conv: &ConvId, muted: bool) -> Result<bool>;
    /// Which of `users` muted `conv`'s notifications.
    async fn muted_among(&self, conv: &ConvId, users: &[UserId]) -> Result<Vec<UserId>>;
}

/// Groups and their members. Read diffusion: a group message is one row of
/// the group's conversation `g:{id}`; `MessageStore::accept` checks
/// membership in its transaction (`Forbidden` for a non-member, a muted
/// member or a dissolved group) and moves the sender's read position to the
/// message.
#[async_trait]
pub trait GroupStore: Send + Sync + 'static {
    /// Creates a group; `owner` becomes its owner, `members` (deduplicated,
    /// owner excluded) members. `history`: messages from before a join a new
    /// member sees (0: from the join on).
    async fn create_group(
        &self,
        name: &str,
        owner: UserId,
        members: &[UserId],
        history: i64,
    ) -> Result<GroupInfo>;
    async fn group(&self, id: GroupId) -> Result<Option<GroupInfo>>;
    async fn rename_group(&self, id: GroupId, name: &str) -> Result<()>;
    /// Marks the group dissolved: nobody may send to it any more.
    async fn dissolve_group(&self, id: GroupId) -> Result<()>;
    /// Adds the users who are not members yet (role member); returns them.
    /// A new member's `joined_seq` is `max(0, last_seq - history)`.
    async fn add_members(&self, id: GroupId, users: &[UserId]) -> Result<Vec<UserId>>;
    /// Removes a member at once; returns whether it was one.
    async fn remove_member(&self, id: GroupId, user: UserId) -> Result<bool>;
    /// Changes a member's role and/or mute flag; returns whether it is a member.
    async fn set_member(
        &self,
        id: GroupId,
        user: UserId,
        role: Option<GroupRole>,
        muted: Option<bool>,
    ) -> Result<bool>;
    /// Makes member `to` the owner and the owner `from` an admin, in one
    /// transaction; `Forbidden` (nothing changed) unless `from` owns the
    /// group and `to` is another member of it.
    async fn transfer_owner(&self, id: GroupId, from: UserId, to: UserId) -> Result<()>;
    async fn member(&self, id: GroupId, user: UserId) -> Result<Option<MemberInfo>>;
    /// Members with a user id above `after`, ascending, at most `limit`.
    async fn members(&self, id: GroupId, after: UserId, limit: usize) -> Result<Vec<MemberInfo>>;
    /// The groups `user` is a member of.
    async fn user_groups(&self, user: UserId) -> Result<Vec<GroupId>>;
    /// Members who could see message `seq` (`joined_seq < seq`) and have
    /// (`read`) or have not read it (`read_seq >= seq`), user ids above
    /// `after`, at most `limit`; plus both counts.
    async fn read_by(
        &self,
        id: GroupId,
        seq: Seq,
        read: bool,
        after: UserId,
        limit: usize,
    ) -> Result<ReadBy>;
    /// `read_by`'s two counts, (read, unread), for each of `seqs` in order,
    /// from the members who read at or past the oldest of them rather
    /// than from every member once per message: what group receipts need
    /// for many messages at once. Zeros for an unknown group.
    async fn read_counts(&self, id: GroupId, seqs: &[Seq]) -> Result<Vec<(i64, i64)>>;
}

/// Retention (persistence levels): removing messages whose time is up.
#[async_trait]
pub trait RetentionStore: Send + Sync + 'static {
    /// Deletes what `what` names and reports it, so caches can be trimmed.
    async fn retire(&self, what: Retire) -> Hits;
    /// Deletes messages whose expiry is <= now, at most `limit`.
    async fn delete_expired(&self, now: i64, limit: usize) -> Hits {
        self.retire(Retire::Expired { now, limit }).await
    }
    /// Deletes the `none`-level messages among these sequences of `conv`
    /// addressed to `to` (they have been delivered).
    async fn delete_delivered(&self, to: UserId, conv: &ConvId, seqs: &[Seq]) -> Hits {
        let (conv, seqs) = (conv.clone(), seqs.to_vec());
        self.retire(Retire::Delivered { to, conv, seqs }).await
    }
    /// Deletes `offline`- and `none`-level messages of `conv` addressed to
    /// `to` with seq <= `up_to` (they have been read).
    async fn delete_read(&self, to: UserId, conv: &ConvId, up_to: Seq) -> Hits {
        let conv = conv.clone();
        self.retire(Retire::Read { to, conv, up_to }).await
    }
}

/// Follow edges, blocks and outboxes (docs/feeds.md). Every method touches
/// the rows of one user only, so on a sharded store each is one call on
/// one shard: a follow is two half-edges, the follower's `following` row
/// (on the follower's shard) and the followee's `followers` row (on the
/// followee's), written by the caller in that order-independent pair; a
/// half-edge left alone by a failure is harmless (a feed read keeps only
/// posts of authors in the reader's `following`) and the retry completes it.
#[async_trait]
pub trait FeedStore: Send + Sync + 'static {
    /// `follower` follows `followee`, on the follower's side; `true` when
    /// new (the following count moves only then). Refused with `Forbidden`
    /// when the follower blocks the followee.
    async fn add_following(&self, follower: UserId, followee: UserId, at: i64) -> Result<bool>;
    /// The followee's side of the same follow; refused with `Forbidden`
    /// when the followee blocks the follower.
    async fn add_follower(&self, followee: UserId, follower: UserId, at: i64) -> Result<bool>;
    /// Removes the follower's side; `true` when it was there.
    async fn remove_following(&self, follower: UserId, followee: UserId) -> Result<bool>;
    /// Removes the followee's side; `true` when it was there.
    async fn remove_follower(&self, followee: UserId, follower: UserId) -> Result<bool>;
    /// Whom `user` follows, by id, above `after`.
    async fn following(&self, user: UserId, after: UserId, limit: usize) -> Result<Vec<UserId>>;
    /// Who follows `user`, by id, above `after` (the fan-out's pages).
    async fn followers(&self, user: UserId, after: UserId, limit: usize) -> Result<Vec<UserId>>;
    /// Both counts; zeros for a user without follows.
    async fn follow_counts(&self, user: UserId) -> Result<FollowCounts>;
    /// `blocker` blocks (`on`) or unblocks `blocked`; `true` when it changed.
    /// The caller removes the follow edges between them.
    async fn set_block(&self, blocker: UserId, blocked: UserId, on: bool, at: i64) -> Result<bool>;
    /// Whom `blocker` blocks, by id, above `after`.
    async fn blocked(&self, blocker: UserId, after: UserId, limit: usize) -> Result<Vec<UserId>>;
    /// Stores a post in its author's outbox, once per `(author, cmid)`.
    async fn create_post(&self, post: NewPost) -> Result<PostOutcome>;
    /// Deletes a post of `author`; `true` when it existed and was not
    /// deleted before. The row stays, without its body.
    async fn delete_post(&self, author: UserId, id: PostId) -> Result<bool>;
    /// The outboxes of `authors` merged, newest first, below `before`
    /// (everything for `None`), at most `limit`; deleted posts left out.
    async fn outboxes(
        &self,
        authors: &[UserId],
        before: Option<PostId>,
        limit: usize,
    ) -> Result<Vec<Post>>;
    /// The posts of these `(author, id)` keys that exist and are not
    /// deleted, newest first (an inbox page resolved against the outboxes).
    async fn posts(&self, keys: &[(UserId, PostId)]) -> Result<Vec<Post>>;
}
