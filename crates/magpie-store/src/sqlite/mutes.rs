//! A member's mute of a conversation's notifications on SQLite
//! (docs/protocol.md §5.11): one flag on the member's row, `user_conv` for
//! a direct conversation, `im_group_member` for a group. It silences the
//! offline push, never delivery or sync; a mention reaches a muted member.

use super::schema::corrupt_or;
use crate::error::Result;
use magpie_core::{ConvId, UserId};
use rusqlite::{Connection, params};

/// Sets the flag; false, with nothing written, for a conversation `owner`
/// does not have.
pub(crate) fn set_muted(c: &Connection, owner: UserId, conv: &ConvId, muted: bool) -> Result<bool> {
    let changed = match conv.group_id() {
        Some(g) => c
            .prepare_cached(
                "UPDATE im_group_member SET notify_muted = ?1 WHERE group_id = ?2 AND user_id = ?3",
            )?
            .execute(params![muted, g.0, owner.0])?,
        None => c
            .prepare_cached(
                "UPDATE user_conv SET notify_muted = ?1 WHERE owner_uid = ?2 AND conv = ?3",
            )?
            .execute(params![muted, owner.0, conv.as_str()])?,
    };
    Ok(changed > 0)
}

/// Which of `users` muted `conv`, in the order given.
pub(crate) fn muted_among(c: &Connection, conv: &ConvId, users: &[UserId]) -> Result<Vec<UserId>> {
    let mut out = Vec::new();
    let mut stmt = match conv.group_id() {
        Some(_) => c.prepare_cached(
            "SELECT notify_muted FROM im_group_member WHERE group_id = ?1 AND user_id = ?2",
        )?,
        None => c.prepare_cached(
            "SELECT notify_muted FROM user_conv WHERE conv = ?1 AND owner_uid = ?2",
        )?,
    };
    for &u in users {
        let muted: Option<i64> = match conv.group_id() {
            Some(g) => stmt.query_row(params![g.0, u.0], |r| r.get(0)),
            None => stmt.query_row(params![conv.as_str(), u.0], |r| r.get(0)),
        }
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(corrupt_or)?;
        if muted.is_some_and(|m| m != 0) {
            out.push(u);
        }
    }
    Ok(out)
}
