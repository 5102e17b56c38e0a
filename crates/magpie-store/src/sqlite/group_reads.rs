//! Group reads on SQLite: the group, its members, read-by lists, and what a
//! member may see of the group's timeline and its unread count.

use super::groups::{GROUP_COLUMNS, MEMBER_COLUMNS, group_from_row, member_from_row};
use super::schema::corrupt_or;
use crate::error::Result;
use crate::store::ConvSummary;
use magpie_core::{ConvId, GroupId, GroupInfo, MemberInfo, Seq, UserId};
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

/// The member's visible window: `None` for a non-member.
pub(crate) fn joined(c: &Connection, id: GroupId, user: UserId) -> Result<Option<Seq>> {
    Ok(c.prepare_cached(
        "SELECT joined_seq FROM im_group_member WHERE group_id = ?1 AND user_id = ?2",
    )?
    .query_row(params![id.0, user.0], |r| r.get(0))
    .optional()?)
}

/// The member's group conversations: unread is `last_seq` minus the read
/// position; mentions are counted from the same position, a recalled or
/// removed message no longer counting (docs/protocol.md §5.11).
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
                COALESCE((SELECT last_seq FROM conversations WHERE conv = 'g:' || m.group_id), 0),
                (SELECT COUNT(DISTINCT x.seq) FROM im_mention x
                 WHERE x.conv = 'g:' || m.group_id AND x.seq > MAX(m.read_seq, m.joined_seq)
                   AND x.user_id IN (m.user_id, 0) AND x.from_uid <> m.user_id
                   AND EXISTS (SELECT 1 FROM im_msg_content c
                               WHERE c.conv = x.conv AND c.seq = x.seq AND c.revised >= 0)),
                m.notify_muted
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
            mentions: r.get(4)?,
            muted: r.get::<_, i64>(5)? != 0,
        })
    };
    let rows: rusqlite::Result<Vec<ConvSummary>> = match only {
        Some(g) => stmt.query_map(params![user.0, g.0], row)?.collect(),
        None => stmt.query_map(params![user.0], row)?.collect(),
    };
    rows.map_err(corrupt_or)
}
