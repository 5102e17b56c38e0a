//! The group domain on SQL: `GroupStore` over the helpers of `groups`
//! (writes, with the lock order they document) and `group_reads`.

use super::db::{Sqlx, args};
use super::group_reads::{MemberRow, member_of};
use super::store::SqlStore;
use super::{Retry, limit_param, retrying, store_err};
use crate::StoreError;
use crate::backend::GroupStore;
use crate::error::Result;
use crate::store::ReadBy;
use async_trait::async_trait;
use magpie_core::{GroupId, GroupInfo, GroupRole, MemberInfo, Seq, UserId, now_ms};

#[async_trait]
impl GroupStore for SqlStore {
    async fn create_group(
        &self,
        name: &str,
        owner: UserId,
        members: &[UserId],
        history: i64,
    ) -> Result<GroupInfo> {
        let now = now_ms();
        let others: Vec<UserId> = members.iter().copied().filter(|u| *u != owner).collect();
        retrying("create_group", Retry::Transient, || async {
            let mut tx = self.pool.begin().await?;
            let mut x = tx.exec();
            let a = args![name, owner.0, now, history.max(0)];
            let id = GroupId(x.insert_id(self.g.insert_group.as_str(), a).await?);
            self.insert_members(&mut x, id, &[owner], GroupRole::Owner, 0, now)
                .await?;
            self.add_members_in(&mut x, id, &others, now).await?;
            let info = self.group_in(&mut x, id).await?;
            tx.commit().await?;
            Ok(info)
        })
        .await?
        .ok_or_else(|| StoreError::Corrupt("a new group vanished".into()))
    }

    async fn group(&self, id: GroupId) -> Result<Option<GroupInfo>> {
        let mut c = self.pool.acquire().await.map_err(store_err)?;
        self.group_in(&mut c.exec(), id).await.map_err(store_err)
    }

    async fn rename_group(&self, id: GroupId, name: &str) -> Result<()> {
        retrying("rename_group", Retry::Transient, || async {
            let mut c = self.pool.acquire().await?;
            let a = args![name, id.0];
            c.exec().execute(self.g.group_rename.as_str(), a).await
        })
        .await?;
        Ok(())
    }

    async fn dissolve_group(&self, id: GroupId) -> Result<()> {
        retrying("dissolve_group", Retry::Transient, || async {
            let mut c = self.pool.acquire().await?;
            let a = args![id.0];
            c.exec().execute(self.g.group_dissolve.as_str(), a).await
        })
        .await?;
        Ok(())
    }

    async fn add_members(&self, id: GroupId, users: &[UserId]) -> Result<Vec<UserId>> {
        let now = now_ms();
        retrying("add_members", Retry::Transient, || async {
            let mut tx = self.pool.begin().await?;
            let added = self.add_members_in(&mut tx.exec(), id, users, now).await?;
            if added.is_some() {
                tx.commit().await?;
            }
            Ok(added)
        })
        .await?
        .ok_or_else(|| StoreError::Forbidden(format!("no group {id}")))
    }

    async fn remove_member(&self, id: GroupId, user: UserId) -> Result<bool> {
        retrying("remove_member", Retry::Transient, || async {
            let mut tx = self.pool.begin().await?;
            let mut x = tx.exec();
            let _: Option<(i64,)> = x.optional(self.g.group_lock.as_str(), args![id.0]).await?;
            let a = args![id.0, user.0];
            let gone = x.execute(self.g.member_delete.as_str(), a).await? == 1;
            if gone {
                let a = args![-1i64, id.0];
                x.execute(self.g.group_count.as_str(), a).await?;
            }
            tx.commit().await?;
            Ok(gone)
        })
        .await
    }

    /// Locks the member row first: whether it exists does not depend on the
    /// UPDATE's affected rows (MySQL counts only changed rows without
    /// CLIENT_FOUND_ROWS).
    async fn set_member(
        &self,
        id: GroupId,
        user: UserId,
        role: Option<GroupRole>,
        muted: Option<bool>,
    ) -> Result<bool> {
        retrying("set_member", Retry::Transient, || async {
            let mut tx = self.pool.begin().await?;
            let mut x = tx.exec();
            let a = args![id.0, user.0];
            let found: Option<(bool,)> = x.optional(self.g.member_lock.as_str(), a).await?;
            if found.is_some() {
                let a = args![role.map(GroupRole::as_str), muted, id.0, user.0];
                x.execute(self.g.member_set.as_str(), a).await?;
            }
            tx.commit().await?;
            Ok(found.is_some())
        })
        .await
    }

    /// The group row locked first (the order of every membership change),
    /// then the new owner's member row.
    async fn transfer_owner(&self, id: GroupId, from: UserId, to: UserId) -> Result<()> {
        let done = retrying("transfer_owner", Retry::Transient, || async {
            let mut tx = self.pool.begin().await?;
            let mut x = tx.exec();
            let owner: Option<(i64,)> =
                x.optional(self.g.group_owner.as_str(), args![id.0]).await?;
            if owner != Some((from.0,)) || from == to {
                return Ok(Err(format!("{from} does not own group {id}")));
            }
            let a = args![id.0, to.0];
            let found: Option<(bool,)> = x.optional(self.g.member_lock.as_str(), a).await?;
            if found.is_none() {
                return Ok(Err(format!("{to} is not a member of {id}")));
            }
            let a = args![GroupRole::Owner.as_str(), id.0, to.0];
            x.execute(self.g.member_role.as_str(), a).await?;
            let a = args![GroupRole::Admin.as_str(), id.0, from.0];
            x.execute(self.g.member_role.as_str(), a).await?;
            x.execute(self.g.owner_set.as_str(), args![to.0, id.0])
                .await?;
            tx.commit().await?;
            Ok(Ok(()))
        })
        .await?;
        done.map_err(StoreError::Forbidden)
    }

    async fn member(&self, id: GroupId, user: UserId) -> Result<Option<MemberInfo>> {
        let a = args![id.0, user.0];
        let row: Option<MemberRow> = self.read_opt(self.g.member_info.as_str(), a).await?;
        row.map(member_of).transpose().map_err(store_err)
    }

    async fn members(&self, id: GroupId, after: UserId, limit: usize) -> Result<Vec<MemberInfo>> {
        let a = args![id.0, after.0, limit_param(limit)];
        let rows: Vec<MemberRow> = self.read_all(self.g.member_page.as_str(), a).await?;
        rows.into_iter()
            .map(member_of)
            .collect::<Sqlx<_>>()
            .map_err(store_err)
    }

    async fn user_groups(&self, user: UserId) -> Result<Vec<GroupId>> {
        let a = args![user.0];
        let rows: Vec<(i64,)> = self.read_all(self.g.user_groups.as_str(), a).await?;
        Ok(rows.into_iter().map(|(g,)| GroupId(g)).collect())
    }

    /// Among the members who could see `seq` (joined before it): both
    /// counts, and a page of those who have (`read`) or have not read it.
    async fn read_by(
        &self,
        id: GroupId,
        seq: Seq,
        read: bool,
        after: UserId,
        limit: usize,
    ) -> Result<ReadBy> {
        let a = args![seq, id.0, seq];
        let counts: Option<(i64, i64)> = self.read_opt(self.g.read_counts.as_str(), a).await?;
        let (total, n_read) = counts.unwrap_or((0, 0));
        let a = args![id.0, seq, seq, read, after.0, limit_param(limit)];
        let users: Vec<(i64,)> = self.read_all(self.g.read_page.as_str(), a).await?;
        Ok(ReadBy {
            users: users.into_iter().map(|(u,)| UserId(u)).collect(),
            read: n_read,
            unread: total - n_read,
        })
    }

    async fn read_counts(&self, id: GroupId, seqs: &[Seq]) -> Result<Vec<(i64, i64)>> {
        let Some(&lo) = seqs.iter().min() else {
            return Ok(Vec::new());
        };
        let members: Option<(i64,)> = self
            .read_opt(self.g.member_count.as_str(), args![id.0])
            .await?;
        let Some((members,)) = members else {
            return Ok(vec![(0, 0); seqs.len()]);
        };
        let a = args![lo, id.0, lo];
        let rows: Vec<(i64, i64, i64)> = self.read_all(self.g.read_positions.as_str(), a).await?;
        let rows: Vec<_> = rows.into_iter().map(crate::read_counts::row).collect();
        Ok(crate::read_counts::counts(members, &rows, seqs))
    }
}
