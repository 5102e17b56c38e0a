//! A member's mute of a conversation's notifications on SQL
//! (docs/protocol.md §5.11): one flag on the member's row, `user_conv` for
//! a direct conversation, `im_group_member` for a group. It silences the
//! offline push, never delivery or sync; a mention reaches a muted member.

use super::batch::CHUNK;
use super::db::{Arg, args};
use super::store::SqlStore;
use super::store_err;
use crate::error::Result;
use magpie_core::{ConvId, UserId};

impl SqlStore {
    /// Sets the flag; false, with nothing written, for a conversation
    /// `owner` does not have. Existence is read first: MySQL counts only
    /// rows an UPDATE changed, so a repeated mute would look like none.
    pub(super) async fn set_muted_flag(
        &self,
        owner: UserId,
        conv: &ConvId,
        muted: bool,
    ) -> Result<bool> {
        use crate::backend::MessageStore;
        if self.conversation(owner, conv).await?.is_none() {
            return Ok(false);
        }
        let mut c = self.pool.acquire().await.map_err(store_err)?;
        let mut x = c.exec();
        let done = match conv.group_id() {
            Some(g) => x.execute(self.q.mute_group.as_str(), args![muted, g.0, owner.0]),
            None => x.execute(
                self.q.mute_direct.as_str(),
                args![muted, owner.0, conv.as_str()],
            ),
        };
        done.await.map_err(store_err)?;
        Ok(true)
    }

    /// Which of `users` muted `conv`: one statement per `CHUNK` users.
    pub(super) async fn muted_of(&self, conv: &ConvId, users: &[UserId]) -> Result<Vec<UserId>> {
        let mut out = Vec::new();
        let mut c = self.pool.acquire().await.map_err(store_err)?;
        for chunk in users.chunks(CHUNK) {
            let mut a: Vec<Arg<'_>> = match conv.group_id() {
                Some(g) => vec![g.0.into()],
                None => vec![conv.as_str().into()],
            };
            a.extend(chunk.iter().map(|u| Arg::from(u.0)));
            let sql = self.b.muted_among(conv.group_id().is_some(), chunk.len());
            let rows: Vec<(i64,)> = c.exec().all(sql, a).await.map_err(store_err)?;
            out.extend(rows.into_iter().map(|(u,)| UserId(u)));
        }
        Ok(out)
    }
}
