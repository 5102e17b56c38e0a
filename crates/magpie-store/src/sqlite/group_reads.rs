//! Group reads on SQLite: the group, its members, read-by lists, and what a
//! member may see of the group's timeline and its unread count.

use super::groups::{GROUP_COLUMNS, MEMBER_COLUMNS, group_from_row, member_from_row};
use super::schema::{MESSAGE_COLUMNS, corrupt_or, message_from_row};
use crate::error::Result;
use crate::store::{ConvSummary, ReadBy};
use magpie_core::{ConvId, GroupId, GroupInfo, MemberInfo, Message, Seq, UserId};
use rusqlite::{Connection, OptionalExtension, Row, params};

pub(crate) fn group(c: &Connection, id: GroupId) -> Result<Option<GroupInfo>> {
    let sql = format!("SELECT {GROUP_COLUMNS} FROM im_group g WHERE g.id = ?1");
    c.prepare_cached(&sql)?
        .query_row([id.0], group_from_row)
        .optional()
        .map_err(corrupt_or)
}

pub(crate) fn member(c: &Connection, id: GroupId, user: UserId) -> Result<Option<MemberInfo>> {
    let sql = format!(
        "SELECT {MEMBER_COLUMNS} FROM im_group_member WHERE group_id = ?1 AND user_id = ?2"
    );
    c.prepare_cached(&sql)?
        .query_row(params![id.0, user.0], member_from_row)
        .optional()
        .map_err(corrupt_or)
}

pub(crate) fn members(
    c: &Connection,
    id: GroupId,
    after: UserId,
    limit: usize,
) -> Result<Vec<MemberInfo>> {
    let sql = format!(
        "SELECT {MEMBER_COLUMNS} FROM im_group_member WHERE group_id = ?1 AND user_id > ?2
         ORDER BY user_id LIMIT ?3"
    );
    c.prepare_cached(&sql)?
        .query_map(params![id.0, after.0, limit as i64], member_from_row)?
        .collect::<rusqlite::Result<_>>()
        .map_err(corrupt_or)
}

pub(crate) fn user_groups(c: &Connection, user: UserId) -> Result<Vec<GroupId>> {
    c.prepare_cached("SELECT group_id FROM im_group_member WHERE user_id = ?1 ORDER BY group_id")?
        .query_map([user.0], |r| Ok(GroupId(r.get(0)?)))?
        .collect::<rusqlite::Result<_>>()
        .map_err(corrupt_or)
}

pub(crate) fn read_by(
    c: &Connection,
    id: GroupId,
    seq: Seq,
    read: bool,
    after: UserId,
    limit: usize,
) -> Result<ReadBy> {
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
}

/// The member's visible window: `None` for a non-member.
fn joined(c: &Connection, id: GroupId, user: UserId) -> Result<Option<Seq>> {
    Ok(c.prepare_cached(
        "SELECT joined_seq FROM im_group_member WHERE group_id = ?1 AND user_id = ?2",
    )?
    .query_row(params![id.0, user.0], |r| r.get(0))
    .optional()?)
}

/// Group messages after `after` (or `before`, newest first) that `user` may see.
pub(crate) fn messages(
    c: &Connection,
    id: GroupId,
    user: UserId,
    after: Seq,
    before: Option<Seq>,
    limit: usize,
) -> Result<Vec<Message>> {
    let Some(joined) = joined(c, id, user)? else {
        return Ok(Vec::new());
    };
    let conv = ConvId::group(id);
    let floor = after.max(joined);
    let sql = match before {
        None => format!(
            "SELECT {MESSAGE_COLUMNS} FROM im_msg_content c
             WHERE c.conv = ?1 AND c.seq > ?2 ORDER BY c.seq ASC LIMIT ?4"
        ),
        Some(_) => format!(
            "SELECT {MESSAGE_COLUMNS} FROM im_msg_content c
             WHERE c.conv = ?1 AND c.seq > ?2 AND c.seq < ?3 ORDER BY c.seq DESC LIMIT ?4"
        ),
    };
    c.prepare_cached(&sql)?
        .query_map(
            params![conv.as_str(), floor, before.unwrap_or(0), limit as i64],
            message_from_row,
        )?
        .collect::<rusqlite::Result<_>>()
        .map_err(corrupt_or)
}

/// The member's group conversations: unread is `last_seq` minus the read position.
pub(crate) fn summaries(
    c: &Connection,
    user: UserId,
    only: Option<GroupId>,
) -> Result<Vec<ConvSummary>> {
    let filter = if only.is_some() {
        "AND m.group_id = ?2"
    } else {
        ""
    };
    let sql = format!(
        "SELECT m.group_id, m.read_seq, m.joined_seq,
                COALESCE((SELECT last_seq FROM conversations WHERE conv = 'g:' || m.group_id), 0)
         FROM im_group_member m WHERE m.user_id = ?1 {filter} ORDER BY m.group_id"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let row = |r: &Row<'_>| {
        let (id, read, joined, last): (i64, Seq, Seq, Seq) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        let pos = read.max(joined);
        Ok(ConvSummary {
            conv: ConvId::group(GroupId(id)),
            peer: UserId(0),
            last_seq: last,
            read_seq: pos,
            unread: (last - pos).max(0),
        })
    };
    let rows: rusqlite::Result<Vec<ConvSummary>> = match only {
        Some(g) => stmt.query_map(params![user.0, g.0], row)?.collect(),
        None => stmt.query_map(params![user.0], row)?.collect(),
    };
    rows.map_err(corrupt_or)
}
