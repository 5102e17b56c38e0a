//! Groups on SQLite, writes: the group and member tables, and the group side
//! of accepting and reading messages (read diffusion: a group message is one
//! row of `im_msg_content` under `g:{id}`; members hold positions, not
//! copies). They run on the writer thread inside its transaction, like
//! `writes`; the reads are in `group_reads`.

use crate::error::{Result, StoreError};
use magpie_core::{ConvId, GroupId, GroupInfo, GroupRole, GroupStamp, MemberInfo, Seq, UserId};
use rusqlite::{Connection, OptionalExtension, Row, params};

pub(super) const GROUP_COLUMNS: &str =
    "g.id, g.name, g.owner_uid, g.created_at, g.members, g.history, g.dissolved,
     COALESCE((SELECT last_seq FROM conversations WHERE conv = 'g:' || g.id), 0), g.member_version";
pub(super) const MEMBER_COLUMNS: &str = "user_id, role, muted, joined_seq, read_seq, joined_at";

pub(super) fn group_from_row(r: &Row<'_>) -> rusqlite::Result<GroupInfo> {
    Ok(GroupInfo {
        id: GroupId(r.get(0)?),
        name: r.get(1)?,
        owner: UserId(r.get(2)?),
        created_at: r.get(3)?,
        members: r.get(4)?,
        history: r.get(5)?,
        dissolved: r.get::<_, i64>(6)? != 0,
        last_seq: r.get(7)?,
        member_version: r.get(8)?,
    })
}

pub(super) fn member_from_row(r: &Row<'_>) -> rusqlite::Result<MemberInfo> {
    let role: String = r.get(1)?;
    Ok(MemberInfo {
        user: UserId(r.get(0)?),
        role: GroupRole::parse(&role).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, role.into())
        })?,
        muted: r.get::<_, i64>(2)? != 0,
        joined_seq: r.get(3)?,
        read_seq: r.get(4)?,
        joined_at: r.get(5)?,
    })
}

fn last_seq(c: &Connection, id: GroupId) -> Result<Seq> {
    Ok(
        c.prepare_cached("SELECT last_seq FROM conversations WHERE conv = ?1")?
            .query_row([ConvId::group(id).as_str()], |r| r.get(0))
            .optional()?
            .unwrap_or(0),
    )
}

pub(crate) fn create_group(
    c: &Connection,
    name: &str,
    owner: UserId,
    members: &[UserId],
    history: i64,
    now: i64,
) -> Result<GroupInfo> {
    let id: i64 = c
        .prepare_cached(
            "INSERT INTO im_group (name, owner_uid, created_at, members, history)
             VALUES (?1, ?2, ?3, 0, ?4) RETURNING id",
        )?
        .query_row(params![name, owner.0, now, history.max(0)], |r| r.get(0))?;
    let id = GroupId(id);
    insert_member(c, id, owner, GroupRole::Owner, 0, now)?;
    let others: Vec<UserId> = members.iter().copied().filter(|u| *u != owner).collect();
    add_members(c, id, &others, now)?;
    super::group_reads::group(c, id)?
        .ok_or_else(|| StoreError::Corrupt(format!("group {id} vanished")))
}

fn insert_member(
    c: &Connection,
    id: GroupId,
    user: UserId,
    role: GroupRole,
    joined_seq: Seq,
    now: i64,
) -> Result<bool> {
    let n = c
        .prepare_cached(
            "INSERT INTO im_group_member (group_id, user_id, role, muted, joined_seq, read_seq, joined_at)
             VALUES (?1, ?2, ?3, 0, ?4, ?4, ?5) ON CONFLICT (group_id, user_id) DO NOTHING",
        )?
        .execute(params![id.0, user.0, role.as_str(), joined_seq, now])?;
    if n == 1 {
        c.prepare_cached(
            "UPDATE im_group SET members = members + 1, member_version = member_version + 1
             WHERE id = ?1",
        )?
        .execute([id.0])?;
    }
    Ok(n == 1)
}

pub(crate) fn add_members(
    c: &Connection,
    id: GroupId,
    users: &[UserId],
    now: i64,
) -> Result<Vec<UserId>> {
    let history: i64 = c
        .prepare_cached("SELECT history FROM im_group WHERE id = ?1")?
        .query_row([id.0], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::Forbidden(format!("no group {id}")))?;
    let joined = (last_seq(c, id)? - history).max(0);
    let mut added = Vec::new();
    for &u in users {
        if !added.contains(&u) && insert_member(c, id, u, GroupRole::Member, joined, now)? {
            added.push(u);
        }
    }
    Ok(added)
}

pub(crate) fn remove_member(c: &Connection, id: GroupId, user: UserId) -> Result<bool> {
    let n = c
        .prepare_cached("DELETE FROM im_group_member WHERE group_id = ?1 AND user_id = ?2")?
        .execute(params![id.0, user.0])?;
    if n == 1 {
        c.prepare_cached(
            "UPDATE im_group SET members = members - 1, member_version = member_version + 1
             WHERE id = ?1",
        )?
        .execute([id.0])?;
    }
    Ok(n == 1)
}

pub(crate) fn set_member(
    c: &Connection,
    id: GroupId,
    user: UserId,
    role: Option<GroupRole>,
    muted: Option<bool>,
) -> Result<bool> {
    let n = c
        .prepare_cached(
            "UPDATE im_group_member SET role = COALESCE(?3, role), muted = COALESCE(?4, muted)
             WHERE group_id = ?1 AND user_id = ?2",
        )?
        .execute(params![
            id.0,
            user.0,
            role.map(GroupRole::as_str),
            muted.map(i64::from)
        ])?;
    Ok(n == 1)
}

/// On the writer: the checks and the three updates are one step.
pub(crate) fn transfer_owner(c: &Connection, id: GroupId, from: UserId, to: UserId) -> Result<()> {
    let owner: Option<i64> = c
        .prepare_cached("SELECT owner_uid FROM im_group WHERE id = ?1")?
        .query_row([id.0], |r| r.get(0))
        .optional()?;
    if owner != Some(from.0) || from == to {
        return Err(StoreError::Forbidden(format!(
            "{from} does not own group {id}"
        )));
    }
    let role = "UPDATE im_group_member SET role = ?3 WHERE group_id = ?1 AND user_id = ?2";
    let n = c
        .prepare_cached(role)?
        .execute(params![id.0, to.0, GroupRole::Owner.as_str()])?;
    if n != 1 {
        return Err(StoreError::Forbidden(format!(
            "{to} is not a member of {id}"
        )));
    }
    c.prepare_cached(role)?
        .execute(params![id.0, from.0, GroupRole::Admin.as_str()])?;
    c.prepare_cached("UPDATE im_group SET owner_uid = ?2 WHERE id = ?1")?
        .execute(params![id.0, to.0])?;
    Ok(())
}

pub(crate) fn rename_group(c: &Connection, id: GroupId, name: &str) -> Result<()> {
    c.prepare_cached("UPDATE im_group SET name = ?2 WHERE id = ?1")?
        .execute(params![id.0, name])?;
    Ok(())
}

pub(crate) fn dissolve_group(c: &Connection, id: GroupId) -> Result<()> {
    c.prepare_cached("UPDATE im_group SET dissolved = 1 WHERE id = ?1")?
        .execute([id.0])?;
    Ok(())
}

/// In `accept`'s transaction, before a group message is written. The
/// system user, who writes member events (`magpie_core::member_event`),
/// is no member but may write to any group not dissolved.
pub(crate) fn check_sender(c: &Connection, id: GroupId, from: UserId) -> Result<GroupStamp> {
    let sql = if from == UserId::SYSTEM {
        "SELECT g.dissolved, 0, g.member_version, g.members FROM im_group g
         WHERE g.id = ?1 AND ?2 = 0"
    } else {
        "SELECT g.dissolved, m.muted, g.member_version, g.members FROM im_group g
         JOIN im_group_member m ON m.group_id = g.id AND m.user_id = ?2 WHERE g.id = ?1"
    };
    let row: Option<(i64, i64, i64, i64)> = c
        .prepare_cached(sql)?
        .query_row(params![id.0, from.0], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    match row {
        None => Err(StoreError::Forbidden(format!(
            "user {from} is not a member of group {id}"
        ))),
        Some((1, ..)) => Err(StoreError::Forbidden(format!("group {id} is dissolved"))),
        Some((_, 1, ..)) => Err(StoreError::Forbidden(format!(
            "user {from} is muted in group {id}"
        ))),
        Some((_, _, version, members)) => Ok(GroupStamp { version, members }),
    }
}

/// After a group message is written: its sender has read up to it.
pub(crate) fn sender_read(c: &Connection, id: GroupId, from: UserId, seq: Seq) -> Result<()> {
    c.prepare_cached(
        "UPDATE im_group_member SET read_seq = MAX(read_seq, ?3) WHERE group_id = ?1 AND user_id = ?2",
    )?
    .execute(params![id.0, from.0, seq])?;
    Ok(())
}

pub(crate) fn set_read(c: &Connection, id: GroupId, user: UserId, seq: Seq) -> Result<Seq> {
    let last = last_seq(c, id)?;
    let pos = c
        .prepare_cached(
            "UPDATE im_group_member SET read_seq = MAX(read_seq, MIN(?3, ?4))
             WHERE group_id = ?1 AND user_id = ?2 RETURNING read_seq",
        )?
        .query_row(params![id.0, user.0, seq, last], |r| r.get(0))
        .optional()?;
    Ok(pos.unwrap_or(0))
}
