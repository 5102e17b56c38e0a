//! The message, group and retention domains of `SqliteStore`: each call
//! becomes one job on the writer thread (writes, group-committed) or one
//! read on the pool (see the module doc of `sqlite`).

use super::{SqliteStore, accept, group_reads, groups, reads, writes};
use crate::backend::{GroupStore, MessageStore, RetentionStore};
use crate::error::Result;
use crate::store::{ConvSummary, Outcome, ReadBy, RetentionHit};
use async_trait::async_trait;
use magpie_core::{
    Accepted, ClientMsgId, ConvId, GroupId, GroupInfo, GroupRole, MemberInfo, Message, NewMessage,
    Seq, UserId, now_ms,
};

#[async_trait]
impl MessageStore for SqliteStore {
    async fn accept(&self, batch: Vec<NewMessage>) -> Result<Vec<Outcome>> {
        let ttl = self.offline_ttl_ms;
        self.writer
            .exec(move |c| accept::accept(c, &batch, ttl))
            .await
    }

    async fn lookup_cmid(&self, from: UserId, cmid: ClientMsgId) -> Result<Option<Accepted>> {
        self.read(move |c| reads::lookup_cmid(c, from, cmid)).await
    }

    async fn messages_after(
        &self,
        owner: UserId,
        conv: &ConvId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let conv = conv.clone();
        self.read(move |c| reads::messages_after(c, owner, &conv, after, limit))
            .await
    }

    async fn messages_before(
        &self,
        owner: UserId,
        conv: &ConvId,
        before: Seq,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let conv = conv.clone();
        self.read(move |c| reads::messages_before(c, owner, &conv, before, limit))
            .await
    }

    async fn conversations(&self, owner: UserId) -> Result<Vec<ConvSummary>> {
        self.read(move |c| reads::conversations(c, owner)).await
    }

    async fn group_conversations(&self, owner: UserId) -> Result<Vec<ConvSummary>> {
        self.read(move |c| group_reads::summaries(c, owner, None))
            .await
    }

    async fn conversation(&self, owner: UserId, conv: &ConvId) -> Result<Option<ConvSummary>> {
        let conv = conv.clone();
        self.read(move |c| reads::conversation(c, owner, &conv))
            .await
    }

    async fn set_read(&self, owner: UserId, conv: &ConvId, seq: Seq) -> Result<Seq> {
        let conv = conv.clone();
        self.writer
            .exec(move |c| writes::set_read(c, owner, &conv, seq))
            .await
    }
}

#[async_trait]
impl GroupStore for SqliteStore {
    async fn create_group(
        &self,
        name: &str,
        owner: UserId,
        members: &[UserId],
        history: i64,
    ) -> Result<GroupInfo> {
        let (name, members) = (name.to_string(), members.to_vec());
        self.writer
            .exec(move |c| groups::create_group(c, &name, owner, &members, history, now_ms()))
            .await
    }

    async fn group(&self, id: GroupId) -> Result<Option<GroupInfo>> {
        self.read(move |c| group_reads::group(c, id)).await
    }

    async fn rename_group(&self, id: GroupId, name: &str) -> Result<()> {
        let name = name.to_string();
        self.writer
            .exec(move |c| groups::rename_group(c, id, &name))
            .await
    }

    async fn dissolve_group(&self, id: GroupId) -> Result<()> {
        self.writer
            .exec(move |c| groups::dissolve_group(c, id))
            .await
    }

    async fn add_members(&self, id: GroupId, users: &[UserId]) -> Result<Vec<UserId>> {
        let users = users.to_vec();
        self.writer
            .exec(move |c| groups::add_members(c, id, &users, now_ms()))
            .await
    }

    async fn remove_member(&self, id: GroupId, user: UserId) -> Result<bool> {
        self.writer
            .exec(move |c| groups::remove_member(c, id, user))
            .await
    }

    async fn set_member(
        &self,
        id: GroupId,
        user: UserId,
        role: Option<GroupRole>,
        muted: Option<bool>,
    ) -> Result<bool> {
        self.writer
            .exec(move |c| groups::set_member(c, id, user, role, muted))
            .await
    }

    async fn member(&self, id: GroupId, user: UserId) -> Result<Option<MemberInfo>> {
        self.read(move |c| group_reads::member(c, id, user)).await
    }

    async fn members(&self, id: GroupId, after: UserId, limit: usize) -> Result<Vec<MemberInfo>> {
        self.read(move |c| group_reads::members(c, id, after, limit))
            .await
    }

    async fn user_groups(&self, user: UserId) -> Result<Vec<GroupId>> {
        self.read(move |c| group_reads::user_groups(c, user)).await
    }

    async fn read_by(
        &self,
        id: GroupId,
        seq: Seq,
        read: bool,
        after: UserId,
        limit: usize,
    ) -> Result<ReadBy> {
        self.read(move |c| group_reads::read_by(c, id, seq, read, after, limit))
            .await
    }
}

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn delete_expired(&self, now: i64, limit: usize) -> Result<Vec<RetentionHit>> {
        self.writer
            .exec(move |c| writes::delete_expired(c, now, limit))
            .await
    }

    async fn delete_delivered(
        &self,
        to: UserId,
        conv: &ConvId,
        seqs: &[Seq],
    ) -> Result<Vec<RetentionHit>> {
        let (conv, seqs) = (conv.clone(), seqs.to_vec());
        self.writer
            .exec(move |c| writes::delete_delivered(c, to, &conv, &seqs))
            .await
    }

    async fn delete_read(
        &self,
        to: UserId,
        conv: &ConvId,
        up_to: Seq,
    ) -> Result<Vec<RetentionHit>> {
        let conv = conv.clone();
        self.writer
            .exec(move |c| writes::delete_read(c, to, &conv, up_to))
            .await
    }
}
