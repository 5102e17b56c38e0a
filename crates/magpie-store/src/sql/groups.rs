//! Groups on both SQL dialects, as on SQLite (`sqlite::groups`): read
//! diffusion. A group message is one `im_msg_content` row of the group's
//! conversation `g:{id}` (its sequence allocated on the `conversations` row
//! like any other); members hold positions (`joined_seq`, `read_seq` in
//! `im_group_member`), not copies, so a send writes no per-member row and a
//! read is one write whatever the group's size.
//!
//! What SQLite's single writer gives for free is done with row locks, always
//! taken in one order so they cannot deadlock:
//! conversation row, then group row, then member rows.
//! - `accept` allocates the sequence (conversation row) first, then takes the
//!   group row shared and the sender's member row exclusively before checking
//!   them, so a concurrent mute, removal or dissolution either lands before
//!   the check (the send is `Forbidden`, the transaction rolls back and the
//!   sequence is not used) or waits for the commit;
//! - membership changes lock the group row (`group_lock`) before member rows,
//!   and never touch conversation rows.
//!
//! `sql_groups!` is expanded by `sql_backend!`: inherent write helpers, and
//! the group methods of `StoreBackend`, which it hands to `sql_trait_impl!`
//! to splice into the one `impl StoreBackend` (async_trait needs them there).

macro_rules! sql_groups {
    ($store:ident, $q:expr) => {
        impl $store {
            /// In `accept`'s transaction, after the sequence is allocated:
            /// `Some(refusal)` for a non-member, a dissolved group or a muted member.
            async fn check_sender(
                c: &mut Conn,
                id: GroupId,
                from: UserId,
            ) -> std::result::Result<Option<crate::StoreError>, sqlx::Error> {
                let group: Option<(bool,)> = sqlx::query_as($q.group_share.as_str())
                    .bind(id.0)
                    .fetch_optional(&mut *c)
                    .await?;
                let member: Option<(bool,)> = match group {
                    None => None,
                    Some(_) => {
                        sqlx::query_as($q.member_lock.as_str())
                            .bind(id.0)
                            .bind(from.0)
                            .fetch_optional(&mut *c)
                            .await?
                    }
                };
                let refuse = |why: String| Some(crate::StoreError::Forbidden(why));
                Ok(match (group, member) {
                    (None, _) | (_, None) => {
                        refuse(format!("user {from} is not a member of group {id}"))
                    }
                    (Some((true,)), _) => refuse(format!("group {id} is dissolved")),
                    (_, Some((true,))) => refuse(format!("user {from} is muted in group {id}")),
                    _ => None,
                })
            }

            /// read_seq = max(read_seq, to): after a send (the sender has read
            /// it) and for `set_read`.
            async fn advance_read(
                c: &mut Conn,
                id: GroupId,
                user: UserId,
                to: Seq,
            ) -> std::result::Result<(), sqlx::Error> {
                sqlx::query($q.member_advance.as_str())
                    .bind(to)
                    .bind(id.0)
                    .bind(user.0)
                    .execute(&mut *c)
                    .await?;
                Ok(())
            }

            /// Adds the users not yet members (once each) with one role and
            /// join position, keeping the member count; returns them.
            async fn insert_members(
                c: &mut Conn,
                id: GroupId,
                users: &[UserId],
                role: GroupRole,
                joined: Seq,
                now: i64,
            ) -> std::result::Result<Vec<UserId>, sqlx::Error> {
                let mut added = Vec::new();
                for &u in users {
                    if added.contains(&u) {
                        continue;
                    }
                    let done = sqlx::query($q.member_insert.as_str())
                        .bind(id.0)
                        .bind(u.0)
                        .bind(role.as_str())
                        .bind(joined)
                        .bind(joined)
                        .bind(now)
                        .execute(&mut *c)
                        .await?;
                    if done.rows_affected() == 1 {
                        added.push(u);
                    }
                }
                if !added.is_empty() {
                    sqlx::query($q.group_count.as_str())
                        .bind(added.len() as i64)
                        .bind(id.0)
                        .execute(&mut *c)
                        .await?;
                }
                Ok(added)
            }

            /// `add_members` in a transaction: `None` for an unknown group.
            /// New members see from `max(0, last_seq - history)` on.
            async fn add_members_in(
                c: &mut Conn,
                id: GroupId,
                users: &[UserId],
                now: i64,
            ) -> std::result::Result<Option<Vec<UserId>>, sqlx::Error> {
                let history: Option<(i64,)> = sqlx::query_as($q.group_lock.as_str())
                    .bind(id.0)
                    .fetch_optional(&mut *c)
                    .await?;
                let Some((history,)) = history else {
                    return Ok(None);
                };
                let last: Option<(i64,)> = sqlx::query_as($q.last_seq.as_str())
                    .bind(ConvId::group(id).as_str())
                    .fetch_optional(&mut *c)
                    .await?;
                let joined = (last.map_or(0, |(s,)| s) - history).max(0);
                let added =
                    Self::insert_members(c, id, users, GroupRole::Member, joined, now).await?;
                Ok(Some(added))
            }

            /// max(current, min(seq, last_seq)); 0 for a non-member.
            async fn set_group_read(&self, id: GroupId, user: UserId, seq: Seq) -> Result<Seq> {
                retrying("set_read", Retry::Transient, || async {
                    let mut tx = self.pool.begin().await?;
                    let last: Option<(i64,)> = sqlx::query_as($q.last_seq.as_str())
                        .bind(ConvId::group(id).as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                    let to = seq.min(last.map_or(0, |(s,)| s));
                    Self::advance_read(&mut tx, id, user, to).await?;
                    let pos: Option<(i64,)> = sqlx::query_as($q.member_read.as_str())
                        .bind(id.0)
                        .bind(user.0)
                        .fetch_optional(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(pos.map_or(0, |(p,)| p))
                })
                .await
            }
        }

        crate::sql::trait_impl::sql_trait_impl!($store, $q, [
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
                    let id = Self::insert_group(&mut tx, name, owner.0, history.max(0), now).await?;
                    let id = GroupId(id);
                    Self::insert_members(&mut tx, id, &[owner], GroupRole::Owner, 0, now).await?;
                    Self::add_members_in(&mut tx, id, &others, now).await?;
                    let info = Self::group_in(&mut tx, id).await?;
                    tx.commit().await?;
                    Ok(info)
                })
                .await?
                .ok_or_else(|| crate::StoreError::Corrupt("a new group vanished".into()))
            }

            async fn group(&self, id: GroupId) -> Result<Option<GroupInfo>> {
                let mut c = self.pool.acquire().await.map_err(store_err)?;
                Self::group_in(&mut c, id).await.map_err(store_err)
            }

            async fn rename_group(&self, id: GroupId, name: &str) -> Result<()> {
                retrying("rename_group", Retry::Transient, || {
                    sqlx::query($q.group_rename.as_str()).bind(name).bind(id.0).execute(&self.pool)
                })
                .await?;
                Ok(())
            }

            async fn dissolve_group(&self, id: GroupId) -> Result<()> {
                retrying("dissolve_group", Retry::Transient, || {
                    sqlx::query($q.group_dissolve.as_str()).bind(id.0).execute(&self.pool)
                })
                .await?;
                Ok(())
            }

            async fn add_members(&self, id: GroupId, users: &[UserId]) -> Result<Vec<UserId>> {
                let now = now_ms();
                retrying("add_members", Retry::Transient, || async {
                    let mut tx = self.pool.begin().await?;
                    let Some(added) = Self::add_members_in(&mut tx, id, users, now).await? else {
                        return Ok(None);
                    };
                    tx.commit().await?;
                    Ok(Some(added))
                })
                .await?
                .ok_or_else(|| crate::StoreError::Forbidden(format!("no group {id}")))
            }

            async fn remove_member(&self, id: GroupId, user: UserId) -> Result<bool> {
                retrying("remove_member", Retry::Transient, || async {
                    let mut tx = self.pool.begin().await?;
                    let _: Option<(i64,)> = sqlx::query_as($q.group_lock.as_str())
                        .bind(id.0)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let gone = sqlx::query($q.member_delete.as_str())
                        .bind(id.0)
                        .bind(user.0)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                    if gone {
                        sqlx::query($q.group_count.as_str())
                            .bind(-1i64)
                            .bind(id.0)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(gone)
                })
                .await
            }

            /// Locks the member row first: whether it exists does not depend on
            /// the UPDATE's affected rows (MySQL counts only changed rows
            /// without CLIENT_FOUND_ROWS).
            async fn set_member(
                &self,
                id: GroupId,
                user: UserId,
                role: Option<GroupRole>,
                muted: Option<bool>,
            ) -> Result<bool> {
                retrying("set_member", Retry::Transient, || async {
                    let mut tx = self.pool.begin().await?;
                    let found: Option<(bool,)> = sqlx::query_as($q.member_lock.as_str())
                        .bind(id.0)
                        .bind(user.0)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if found.is_some() {
                        sqlx::query($q.member_set.as_str())
                            .bind(role.map(GroupRole::as_str))
                            .bind(muted)
                            .bind(id.0)
                            .bind(user.0)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(found.is_some())
                })
                .await
            }

            async fn member(&self, id: GroupId, user: UserId) -> Result<Option<MemberInfo>> {
                self.group_member(id, user).await
            }

            async fn members(
                &self,
                id: GroupId,
                after: UserId,
                limit: usize,
            ) -> Result<Vec<MemberInfo>> {
                self.group_members(id, after, limit).await
            }

            async fn user_groups(&self, user: UserId) -> Result<Vec<GroupId>> {
                self.groups_of(user).await
            }

            async fn read_by(
                &self,
                id: GroupId,
                seq: Seq,
                read: bool,
                after: UserId,
                limit: usize,
            ) -> Result<ReadBy> {
                self.group_read_by(id, seq, read, after, limit).await
            }
        ]);
    };
}

pub(crate) use sql_groups;
