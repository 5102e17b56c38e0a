//! Groups on SQL, as on SQLite (`sqlite::groups`): read diffusion. A group
//! message is one `im_msg_content` row of the group's conversation `g:{id}`
//! (its sequence allocated on the `conversations` row like any other);
//! members hold positions (`joined_seq`, `read_seq` in `im_group_member`),
//! not copies, so a send writes no per-member row and a read is one write
//! whatever the group's size.
//!
//! What SQLite's single writer gives for free is done with row locks, always
//! taken in one order so they cannot deadlock: conversation row, then group
//! row, then member rows.
//! - `accept` locks the conversation rows first, then takes the group row
//!   shared and the sender's member row exclusively before checking them, so
//!   a concurrent mute, removal or dissolution either lands before the check
//!   (the send is `Forbidden`) or waits for the commit;
//! - membership changes lock the group row (`group_lock`) before member rows,
//!   and never touch conversation rows.

use super::batch::CHUNK;
use super::db::{Arg, Exec, Sqlx, args};
use super::store::SqlStore;
use super::{Retry, retrying};
use crate::StoreError;
use crate::error::Result;
use magpie_core::{ConvId, GroupId, GroupRole, GroupStamp, Seq, UserId};
use std::collections::HashSet;

impl SqlStore {
    /// In `accept`'s transaction, under the conversation locks: the group's
    /// membership stamp (held by the shared lock until COMMIT), and
    /// `Some(refusal)` for a non-member, a dissolved group or a muted member.
    pub(super) async fn check_sender(
        &self,
        x: &mut Exec<'_>,
        id: GroupId,
        from: UserId,
    ) -> Sqlx<(Option<GroupStamp>, Option<StoreError>)> {
        let group: Option<(bool, i64, i64)> =
            x.optional(self.g.group_share.as_str(), args![id.0]).await?;
        // The system user writes member events (`magpie_core::member_event`):
        // no member, never muted.
        let member: Option<(bool,)> = match group {
            None => None,
            Some(_) if from == UserId::SYSTEM => Some((false,)),
            Some(_) => {
                let a = args![id.0, from.0];
                x.optional(self.g.member_lock.as_str(), a).await?
            }
        };
        let stamp = group.map(|(_, version, members)| GroupStamp { version, members });
        let refuse = |why: String| Some(StoreError::Forbidden(why));
        let refusal = match (group, member) {
            (None, _) | (_, None) => refuse(format!("user {from} is not a member of group {id}")),
            (Some((true, ..)), _) => refuse(format!("group {id} is dissolved")),
            (_, Some((true,))) => refuse(format!("user {from} is muted in group {id}")),
            _ => None,
        };
        Ok((stamp, refusal))
    }

    /// read_seq = max(read_seq, to): after a send (the sender has read it)
    /// and for `set_read`.
    pub(super) async fn advance_read(
        &self,
        x: &mut Exec<'_>,
        id: GroupId,
        user: UserId,
        to: Seq,
    ) -> Sqlx<()> {
        let a = args![to, id.0, user.0];
        x.execute(self.g.member_advance.as_str(), a).await?;
        Ok(())
    }

    /// Adds the users not yet members (once each) with one role and join
    /// position, keeping the member count; returns them.
    pub(super) async fn insert_members(
        &self,
        x: &mut Exec<'_>,
        id: GroupId,
        users: &[UserId],
        role: GroupRole,
        joined: Seq,
        now: i64,
    ) -> Sqlx<Vec<UserId>> {
        // Two statements per chunk, not one per member: which are members
        // already, then the rest. The caller holds the group's row lock (or
        // just created the group), so no member appears in between.
        let mut wanted: Vec<UserId> = Vec::with_capacity(users.len());
        let mut seen = HashSet::with_capacity(users.len());
        wanted.extend(users.iter().copied().filter(|u| seen.insert(*u)));
        let mut added = Vec::with_capacity(wanted.len());
        for chunk in wanted.chunks(CHUNK) {
            let mut a: Vec<Arg<'_>> = vec![id.0.into()];
            a.extend(chunk.iter().map(|u| Arg::from(u.0)));
            let present: Vec<(i64,)> = x.all(self.b.members_present(chunk.len()), a).await?;
            let present: HashSet<i64> = present.into_iter().map(|(u,)| u).collect();
            let new: Vec<UserId> = chunk
                .iter()
                .copied()
                .filter(|u| !present.contains(&u.0))
                .collect();
            if new.is_empty() {
                continue;
            }
            let a = new
                .iter()
                .flat_map(|u| args![id.0, u.0, role.as_str(), joined, joined, now])
                .collect();
            x.execute(self.b.members(new.len()), a).await?;
            added.extend(new);
        }
        if !added.is_empty() {
            let a = args![added.len() as i64, id.0];
            x.execute(self.g.group_count.as_str(), a).await?;
        }
        Ok(added)
    }

    /// `add_members` in a transaction: `None` for an unknown group. New
    /// members see from `max(0, last_seq - history)` on.
    pub(super) async fn add_members_in(
        &self,
        x: &mut Exec<'_>,
        id: GroupId,
        users: &[UserId],
        now: i64,
    ) -> Sqlx<Option<Vec<UserId>>> {
        let history: Option<(i64,)> = x.optional(self.g.group_lock.as_str(), args![id.0]).await?;
        let Some((history,)) = history else {
            return Ok(None);
        };
        let conv = ConvId::group(id);
        let last: Option<(i64,)> = x
            .optional(self.g.last_seq.as_str(), args![conv.as_str()])
            .await?;
        let joined = (last.map_or(0, |(s,)| s) - history).max(0);
        let added = self
            .insert_members(x, id, users, GroupRole::Member, joined, now)
            .await?;
        Ok(Some(added))
    }

    /// max(current, min(seq, last_seq)); 0 for a non-member.
    pub(super) async fn set_group_read(&self, id: GroupId, user: UserId, seq: Seq) -> Result<Seq> {
        let conv = ConvId::group(id);
        retrying("set_read", Retry::Transient, || async {
            let mut tx = self.pool.begin().await?;
            let mut x = tx.exec();
            let last: Option<(i64,)> = x
                .optional(self.g.last_seq.as_str(), args![conv.as_str()])
                .await?;
            let to = seq.min(last.map_or(0, |(s,)| s));
            self.advance_read(&mut x, id, user, to).await?;
            let a = args![id.0, user.0];
            let pos: Option<(i64,)> = x.optional(self.g.member_read.as_str(), a).await?;
            tx.commit().await?;
            Ok(pos.map_or(0, |(p,)| p))
        })
        .await
    }
}
