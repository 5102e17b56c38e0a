//! The read side of groups on SQL: group records, a member's messages and
//! summaries. Like the other reads, each is one statement outside any
//! transaction (`group_in` also runs inside one). See `groups` for the
//! design (read diffusion, positions instead of copies).

use super::db::{Exec, Sqlx, args};
use super::store::SqlStore;
use super::{MessageRow, bad, limit_param, message_of, store_err};
use crate::error::Result;
use crate::store::ConvSummary;
use magpie_core::{ConvId, GroupId, GroupInfo, GroupRole, MemberInfo, Message, Seq, UserId};

/// The columns of `queries::GROUP_COLUMNS`, in order.
pub(super) type GroupRow = (i64, String, i64, i64, i64, i64, bool, i64, i64);

/// The columns of `queries::MEMBER_COLUMNS`, in order.
pub(super) type MemberRow = (i64, String, bool, i64, i64, i64);

pub(super) fn group_of(r: GroupRow) -> GroupInfo {
    let (id, name, owner, created_at, members, history, dissolved, last_seq, member_version) = r;
    GroupInfo {
        id: GroupId(id),
        name,
        owner: UserId(owner),
        created_at,
        members,
        member_version,
        last_seq,
        history,
        dissolved,
    }
}

pub(super) fn member_of(r: MemberRow) -> Sqlx<MemberInfo> {
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

impl SqlStore {
    /// One group with its last sequence, on a connection or in a transaction.
    pub(super) async fn group_in(&self, x: &mut Exec<'_>, id: GroupId) -> Sqlx<Option<GroupInfo>> {
        let conv = ConvId::group(id);
        let a = args![conv.as_str(), id.0];
        let row: Option<GroupRow> = x.optional(self.g.group_info.as_str(), a).await?;
        Ok(row.map(group_of))
    }

    /// `user`'s messages of group `id` (`group_after` or `group_before`,
    /// bounded by `from`); none for a non-member.
    pub(super) async fn group_messages(
        &self,
        sql: &'static str,
        id: GroupId,
        user: UserId,
        from: Seq,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let conv = ConvId::group(id);
        let a = args![conv.as_str(), from, id.0, user.0, limit_param(limit)];
        let rows: Vec<MessageRow> = self.read_all(sql, a).await?;
        rows.into_iter()
            .map(message_of)
            .collect::<Sqlx<_>>()
            .map_err(store_err)
    }

    /// `user`'s group conversations (or the one of `only`), by group id:
    /// unread is the last sequence minus the read position, which is never
    /// below the join position.
    pub(super) async fn group_summaries(
        &self,
        user: UserId,
        only: Option<GroupId>,
    ) -> Result<Vec<ConvSummary>> {
        let rows: Vec<(i64, i64, i64, i64, i64, bool)> = match only {
            Some(g) => {
                let a = args![user.0, g.0];
                self.read_all(self.g.group_summary.as_str(), a).await?
            }
            None => {
                let a = args![user.0];
                self.read_all(self.g.group_summaries.as_str(), a).await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|(id, read, joined, last, mentions, muted)| {
                let pos = read.max(joined);
                ConvSummary {
                    conv: ConvId::group(GroupId(id)),
                    peer: UserId(0),
                    last_seq: last,
                    read_seq: pos,
                    unread: (last - pos).max(0),
                    mentions,
                    muted,
                }
            })
            .collect())
    }
}
