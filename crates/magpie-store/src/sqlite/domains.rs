//! The message, group and retention domains of `SqliteStore`: each call
//! becomes one job on the writer thread (writes, group-committed) or one
//! read on the pool (see the module doc of `sqlite`).

use super::{SqliteStore, group_reads, groups, mutes, reads, writes};
use crate::backend::{GroupStore, MessageStore, Messages, RetentionStore};
use crate::error::Result;
use crate::store::{ConvSummary, Outcome, Page, ReadBy, RetentionHit, Retire};
use async_trait::async_trait;
use magpie_core::{
    Accepted, ClientMsgId, ConvId, GroupId, GroupInfo, GroupRole, MemberInfo, NewMessage, Seq,
    UserId, now_ms,
};
use rusqlite::{OptionalExtension, params};

#[async_trait]
impl MessageStore for SqliteStore {
    async fn accept(&self, batch: Vec<NewMessage>) -> Result<Vec<Outcome>> {
        let ttl = self.offline_ttl_ms;
        self.writer
            .exec(move |c| writes::accept(c, &batch, ttl))
            .await
    }

    async fn lookup_cmid(&self, from: UserId, cmid: ClientMsgId) -> Result<Option<Accepted>> {
        self.read(move |c| reads::lookup_cmid(c, from, cmid)).await
    }

    async fn page(&self, owner: UserId, conv: &ConvId, page: Page, limit: usize) -> Messages {
        let conv = conv.clone();
        self.read(move |c| reads::page(c, owner, &conv, page, limit))
            .await
    }

    async fn scan_searchable(&self, after: Option<(ConvId, Seq)>, limit: usize) -> Messages {
        self.read(move |c| reads::scan_searchable(c, after, limit))
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

    async fn set_muted(&self, owner: UserId, conv: &ConvId, muted: bool) -> Result<bool> {
        let conv = conv.clone();
        self.writer
            .exec(move |c| mutes::set_muted(c, owner, &conv, muted))
            .await
    }

    async fn muted_among(&self, conv: &ConvId, users: &[UserId]) -> Result<Vec<UserId>> {
        let (conv, users) = (conv.clone(), users.to_vec());
        self.read(move |c| mutes::muted_among(c, &conv, &users))
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

    async fn transfer_owner(&self, id: GroupId, from: UserId, to: UserId) -> Result<()> {
        self.writer
            .exec(move |c| groups::transfer_owner(c, id, from, to))
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
        // Both counts among the members who could see `seq` (joined before
        // it), and a page of those who have (`read`) or have not read it.
        self.read(move |c| {
            let (n_read, n_unread): (Option<i64>, Option<i64>) = c
                .prepare_cached(
                    "SELECT SUM(read_seq >= ?2), SUM(read_seq < ?2) FROM im_group_member
                     WHERE group_id = ?1 AND joined_seq < ?2",
                )?
                .query_row(params![id.0, seq], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let users = c
                .prepare_cached(
                    "SELECT user_id FROM im_group_member
                     WHERE group_id = ?1 AND joined_seq < ?2 AND (read_seq >= ?2) = ?3 AND user_id > ?4
                     ORDER BY user_id LIMIT ?5",
                )?
                .query_map(params![id.0, seq, read, after.0, limit as i64], |r| {
                    Ok(UserId(r.get(0)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(ReadBy {
                users,
                read: n_read.unwrap_or(0),
                unread: n_unread.unwrap_or(0),
            })
        })
        .await
    }
    async fn read_counts(&self, id: GroupId, seqs: &[Seq]) -> Result<Vec<(i64, i64)>> {
        let Some(&lo) = seqs.iter().min() else {
            return Ok(Vec::new());
        };
        let seqs = seqs.to_vec();
        // Both statements on one read connection: one snapshot.
        self.read(move |c| {
            let members: Option<i64> = c
                .prepare_cached("SELECT members FROM im_group WHERE id = ?1")?
                .query_row([id.0], |r| r.get(0))
                .optional()?;
            let Some(members) = members else {
                return Ok(vec![(0, 0); seqs.len()]);
            };
            let rows = c
                .prepare_cached(
                    "SELECT read_seq, CASE WHEN joined_seq >= ?2 THEN joined_seq ELSE -1 END AS j,
                     COUNT(*) FROM im_group_member WHERE group_id = ?1 AND read_seq >= ?2
                     GROUP BY read_seq, j",
                )?
                .query_map(params![id.0, lo], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .map(|r| r.map(crate::read_counts::row))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(crate::read_counts::counts(members, &rows, &seqs))
        })
        .await
    }
}

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn retire(&self, what: Retire) -> Result<Vec<RetentionHit>> {
        self.writer.exec(move |c| writes::retire(c, &what)).await
    }
}
