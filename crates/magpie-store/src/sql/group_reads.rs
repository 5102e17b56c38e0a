//! The read side of groups on both SQL dialects: group and member records,
//! a member's messages and summaries, read-by lists. Like the other reads,
//! each is one statement on the pool outside any transaction. See `groups`
//! for the design (read diffusion, positions instead of copies).

use super::bad;
use magpie_core::{GroupId, GroupInfo, GroupRole, MemberInfo, UserId};

/// The columns of `queries::GROUP_COLUMNS`, in order.
pub(crate) type GroupRow = (i64, String, i64, i64, i64, i64, bool, i64);

/// The columns of `queries::MEMBER_COLUMNS`, in order.
pub(crate) type MemberRow = (i64, String, bool, i64, i64, i64);

pub(crate) fn group_of(r: GroupRow) -> GroupInfo {
    let (id, name, owner, created_at, members, history, dissolved, last_seq) = r;
    GroupInfo {
        id: GroupId(id),
        name,
        owner: UserId(owner),
        created_at,
        members,
        last_seq,
        history,
        dissolved,
    }
}

pub(crate) fn member_of(r: MemberRow) -> std::result::Result<MemberInfo, sqlx::Error> {
    let (user, role, muted, joined_seq, read_seq, joined_at) = r;
    Ok(MemberInfo {
        user: UserId(user),
        role: GroupRole::parse(&role).ok_or_else(|| bad("group role", &role))?,
        muted,
        joined_seq,
        read_seq,
        joined_at,
    })
}

/// Expanded by `sql_backend!` inside its `shared` module (whose imports and
/// `Conn` it uses): inherent read helpers the group trait methods call.
macro_rules! sql_group_reads {
    ($store:ident, $q:expr) => {
        impl $store {
            /// One group with its last sequence, on a connection or in a transaction.
            async fn group_in(
                c: &mut Conn,
                id: GroupId,
            ) -> std::result::Result<Option<GroupInfo>, sqlx::Error> {
                let row: Option<GroupRow> = sqlx::query_as($q.group_info.as_str())
                    .bind(ConvId::group(id).as_str())
                    .bind(id.0)
                    .fetch_optional(&mut *c)
                    .await?;
                Ok(row.map(group_of))
            }

            async fn group_member(&self, id: GroupId, user: UserId) -> Result<Option<MemberInfo>> {
                let row: Option<MemberRow> = sqlx::query_as($q.member_info.as_str())
                    .bind(id.0)
                    .bind(user.0)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_err)?;
                row.map(member_of).transpose().map_err(store_err)
            }

            async fn group_members(
                &self,
                id: GroupId,
                after: UserId,
                limit: usize,
            ) -> Result<Vec<MemberInfo>> {
                let rows: Vec<MemberRow> = sqlx::query_as($q.member_page.as_str())
                    .bind(id.0)
                    .bind(after.0)
                    .bind(limit_param(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(store_err)?;
                rows.into_iter()
                    .map(member_of)
                    .collect::<std::result::Result<_, _>>()
                    .map_err(store_err)
            }

            async fn groups_of(&self, user: UserId) -> Result<Vec<GroupId>> {
                let rows: Vec<(i64,)> = sqlx::query_as($q.user_groups.as_str())
                    .bind(user.0)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(store_err)?;
                Ok(rows.into_iter().map(|(g,)| GroupId(g)).collect())
            }

            /// Among the members who could see `seq` (joined before it): both
            /// counts, and a page of those who have (`read`) or have not read it.
            async fn group_read_by(
                &self,
                id: GroupId,
                seq: Seq,
                read: bool,
                after: UserId,
                limit: usize,
            ) -> Result<ReadBy> {
                let (total, n_read): (i64, i64) = sqlx::query_as($q.read_counts.as_str())
                    .bind(seq)
                    .bind(id.0)
                    .bind(seq)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(store_err)?;
                let users: Vec<(i64,)> = sqlx::query_as($q.read_page.as_str())
                    .bind(id.0)
                    .bind(seq)
                    .bind(seq)
                    .bind(read)
                    .bind(after.0)
                    .bind(limit_param(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(store_err)?;
                Ok(ReadBy {
                    users: users.into_iter().map(|(u,)| UserId(u)).collect(),
                    read: n_read,
                    unread: total - n_read,
                })
            }

            /// `user`'s messages of group `id` (`group_after` or
            /// `group_before`, bounded by `from`); none for a non-member.
            async fn group_messages(
                &self,
                sql: &'static str,
                id: GroupId,
                user: UserId,
                from: Seq,
                limit: usize,
            ) -> Result<Vec<Message>> {
                let rows: Vec<MessageRow> = sqlx::query_as(sql)
                    .bind(ConvId::group(id).as_str())
                    .bind(from)
                    .bind(id.0)
                    .bind(user.0)
                    .bind(limit_param(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(store_err)?;
                rows.into_iter()
                    .map(message_of)
                    .collect::<std::result::Result<_, _>>()
                    .map_err(store_err)
            }

            /// `user`'s group conversations (or the one of `only`), by group
            /// id: unread is the last sequence minus the read position, which
            /// is never below the join position.
            async fn group_summaries(
                &self,
                user: UserId,
                only: Option<GroupId>,
            ) -> Result<Vec<ConvSummary>> {
                let rows: Vec<(i64, i64, i64, i64)> = match only {
                    Some(g) => {
                        sqlx::query_as($q.group_summary.as_str())
                            .bind(user.0)
                            .bind(g.0)
                            .fetch_all(&self.pool)
                            .await
                    }
                    None => {
                        sqlx::query_as($q.group_summaries.as_str())
                            .bind(user.0)
                            .fetch_all(&self.pool)
                            .await
                    }
                }
                .map_err(store_err)?;
                Ok(rows
                    .into_iter()
                    .map(|(id, read, joined, last)| {
                        let pos = read.max(joined);
                        ConvSummary {
                            conv: ConvId::group(GroupId(id)),
                            peer: UserId(0),
                            last_seq: last,
                            read_seq: pos,
                            unread: (last - pos).max(0),
                        }
                    })
                    .collect())
            }
        }
    };
}

pub(crate) use sql_group_reads;
