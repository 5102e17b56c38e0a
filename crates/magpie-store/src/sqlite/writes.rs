//! Write operations. Each function runs on the writer thread inside the
//! batch transaction (and its own savepoint), so it may assume it is alone:
//! read-modify-write sequences like "next seq" need no further locking.

use super::reads::lookup_cmid;
use super::schema::{conv_at, corrupt_or, device_at, sql_err};
use crate::RefreshUse;
use crate::error::{Result, StoreError};
use crate::plan::{self, Found, Plan};
use crate::store::{Outcome, RetentionHit, Retire, UserRecord};
use magpie_core::{
    ClientSettings, ConvId, DeviceId, MessageMeta, NewMessage, Revision, Seq, UserId,
};
use rusqlite::{Connection, OptionalExtension, params};

pub(crate) fn create_user(
    c: &Connection,
    username: &str,
    password_hash: &str,
    now: i64,
) -> Result<UserRecord> {
    let id: i64 = c
        .prepare_cached("INSERT INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3) RETURNING id")?
        .query_row(params![username, password_hash, now], |r| r.get(0))
        .map_err(|e| sql_err(e, || format!("username {username:?}")))?;
    Ok(UserRecord {
        id: UserId(id),
        username: username.to_string(),
        password_hash: password_hash.to_string(),
        created_at: now,
    })
}

pub(crate) fn put_refresh(
    c: &Connection,
    token_hash: &str,
    family: &str,
    user: UserId,
    device: &str,
    expires_at: i64,
) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO refresh_tokens (token_hash, family, user_id, device, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![token_hash, family, user.0, device, expires_at])
    .map_err(|e| sql_err(e, || "refresh token".to_string()))?;
    Ok(())
}

/// On the writer, so the mark and what follows are one step: two uses of
/// one token are serialised and only the first finds it unused.
pub(crate) fn use_refresh(c: &Connection, token_hash: &str, family: &str) -> Result<RefreshUse> {
    let row: Option<(i64, DeviceId, i64, i64)> = c
        .prepare_cached(
            "SELECT user_id, device, expires_at, used FROM refresh_tokens WHERE token_hash = ?1",
        )?
        .query_row([token_hash], |r| {
            Ok((r.get(0)?, device_at(r, 1)?, r.get(2)?, r.get(3)?))
        })
        .optional()
        .map_err(corrupt_or)?;
    let Some((user, device, expires_at, used)) = row else {
        return Ok(RefreshUse::Unknown);
    };
    let user = UserId(user);
    if used == 0 {
        c.prepare_cached("UPDATE refresh_tokens SET used = 1 WHERE token_hash = ?1")?
            .execute([token_hash])?;
        // Used tokens are kept to recognise a replay until they expire.
        c.prepare_cached(
            "DELETE FROM refresh_tokens
             WHERE family = ?1 AND family <> '' AND used = 1 AND expires_at < ?2",
        )?
        .execute(params![family, magpie_core::now_ms()])?;
        return Ok(RefreshUse::Fresh {
            user,
            device,
            expires_at,
        });
    }
    if family.is_empty() {
        c.prepare_cached("DELETE FROM refresh_tokens WHERE token_hash = ?1")?
            .execute([token_hash])?;
    } else {
        c.prepare_cached("DELETE FROM refresh_tokens WHERE family = ?1")?
            .execute([family])?;
    }
    Ok(RefreshUse::Reused { user, device })
}

/// `device = ""` is the user's default.
pub(crate) fn put_settings(
    c: &Connection,
    user: UserId,
    device: &str,
    s: &ClientSettings,
) -> Result<()> {
    let json =
        serde_json::to_string(s).map_err(|e| StoreError::Corrupt(format!("settings: {e}")))?;
    c.prepare_cached(
        "INSERT INTO settings (user_id, device, json) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id, device) DO UPDATE SET json = excluded.json",
    )?
    .execute(params![user.0, device, json])?;
    Ok(())
}

/// `accept` on SQLite: look up what the plan needs, plan (`crate::plan`),
/// write the plan. Runs on the writer thread inside the batch transaction
/// (and its own savepoint), so it is the only writer: the last sequences
/// it reads cannot move before it writes them back.
///
/// Per batch, not per message: each conversation's sequence is read once
/// and written once, and the members' summaries are written once with their
/// newest sequence. A direct message is its one body row here (no per-owner
/// index, see the module doc of `sqlite`).
pub(crate) fn accept(c: &Connection, batch: &[NewMessage], ttl_ms: i64) -> Result<Vec<Outcome>> {
    // A retry is rare: the cmids of direct messages are not looked up
    // first. The unique (cmid, from) key finds one already stored; the
    // bodies written so far are then deleted again and the batch planned
    // again knowing every stored cmid. (Not a savepoint: SQLite copies
    // every page a savepoint's statements touch into its sub-journal,
    // which cost about a quarter of the writer's time per message.)
    let found = look_up(c, batch, false)?;
    let p = plan::plan(batch, &found, ttl_ms);
    if write(c, &p)? {
        return Ok(p.outcomes);
    }
    let found = look_up(c, batch, true)?;
    let p = plan::plan(batch, &found, ttl_ms);
    if !write(c, &p)? {
        return Err(StoreError::Corrupt(
            "a client message id conflicts but is not found".into(),
        ));
    }
    Ok(p.outcomes)
}

/// Stored (from, cmid) pairs (of group messages only, unless `every_cmid`:
/// a group message's retry stays its duplicate even after the sender was
/// muted), the conversations' last sequences, and which group senders may
/// not send (non-member, muted, dissolved group).
fn look_up(c: &Connection, batch: &[NewMessage], every_cmid: bool) -> Result<Found> {
    let mut found = Found::default();
    for m in batch
        .iter()
        .filter(|m| every_cmid || m.conv.group_id().is_some())
    {
        if let Some(a) = lookup_cmid(c, m.from, m.cmid)? {
            found.stored.insert((m.from, m.cmid), a);
        }
    }
    let mut last = c.prepare_cached("SELECT last_seq FROM conversations WHERE conv = ?1")?;
    for conv in plan::conversations(batch) {
        if let Some(seq) = last.query_row([conv.as_str()], |r| r.get(0)).optional()? {
            found.last_seq.insert(conv.clone(), seq);
        }
    }
    for (g, u) in plan::group_senders(batch) {
        match super::groups::check_sender(c, g, u) {
            Ok(stamp) => {
                found.groups.insert(g, stamp);
            }
            Err(StoreError::Forbidden(why)) => {
                found.refused.insert((g, u), why);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

/// Writes the plan; false, with nothing written, when a body's (from,
/// cmid) is already stored: the bodies are written first, and those
/// written before the conflict are deleted again.
fn write(c: &Connection, p: &Plan<'_>) -> Result<bool> {
    let mut content = c.prepare_cached(
        "INSERT INTO im_msg_content
         (server_id, conv, seq, from_uid, to_uid, cmid, body, persistence, sent_at, expire_at,
          searchable, meta)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (cmid, from_uid) DO NOTHING",
    )?;
    for (i, r) in p.rows.iter().enumerate() {
        let m = r.msg;
        let inserted = content
            .execute(params![
                m.server_id.0,
                m.conv.as_str(),
                r.seq,
                m.from.0,
                m.to.0,
                &m.cmid.as_bytes()[..],
                m.body,
                m.persistence.to_string(),
                m.sent_at,
                r.expire_at,
                m.search,
                MessageMeta::references_json(m.meta.as_deref()),
            ])
            .map_err(|e| sql_err(e, || format!("server id {}", m.server_id)))?;
        if inserted == 0 {
            let mut undo = c.prepare_cached("DELETE FROM im_msg_content WHERE server_id = ?1")?;
            for r in &p.rows[..i] {
                undo.execute([r.msg.server_id.0])?;
            }
            return Ok(false);
        }
    }
    let mut conv = c.prepare_cached(
        "INSERT INTO conversations (conv, last_seq) VALUES (?1, ?2)
         ON CONFLICT (conv) DO UPDATE SET last_seq = excluded.last_seq",
    )?;
    for (id, last) in &p.last_seqs {
        conv.execute(params![id.as_str(), last])?;
    }
    let mut summary = c.prepare_cached(
        "INSERT INTO user_conv (owner_uid, conv, peer_uid, last_seq, read_seq) VALUES (?1, ?2, ?3, ?4, 0)
         ON CONFLICT (owner_uid, conv) DO UPDATE SET last_seq = excluded.last_seq, peer_uid = excluded.peer_uid",
    )?;
    for s in &p.summaries {
        summary.execute(params![s.owner.0, s.conv.as_str(), s.peer.0, s.last_seq])?;
    }
    for &(g, u, seq) in &p.group_reads {
        // Read diffusion: no per-member rows; the sender has read it.
        super::groups::sender_read(c, g, u, seq)?;
    }
    for r in &p.rows {
        revise(c, r.msg)?;
    }
    let mut mention = c.prepare_cached(
        "INSERT INTO im_mention (conv, seq, user_id, from_uid, expire_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT DO NOTHING",
    )?;
    for m in p.mentions() {
        mention.execute(params![
            m.conv.as_str(),
            m.seq,
            m.user.0,
            m.from.0,
            m.expire_at
        ])?;
    }
    Ok(true)
}

/// An edit or recall event rewrites the message it names, in the
/// transaction that stores the event (`magpie_core::meta`): an edit
/// replaces the text unless the message was recalled, a recall removes the
/// text and takes the message out of search.
fn revise(c: &Connection, m: &NewMessage) -> Result<()> {
    let Some(meta) = m.meta.as_deref() else {
        return Ok(());
    };
    let conv = m.conv.as_str();
    if let Some(seq) = meta.recall_of {
        c.prepare_cached(
            "UPDATE im_msg_content SET body = '', revised = -1, searchable = 0
             WHERE conv = ?1 AND seq = ?2",
        )?
        .execute(params![conv, seq])?;
    } else if let Some(seq) = meta.edit_of {
        c.prepare_cached(
            "UPDATE im_msg_content SET body = ?1, revised = ?2
             WHERE conv = ?3 AND seq = ?4 AND revised >= 0",
        )?
        .execute(params![
            m.body,
            Revision::Edited(m.sent_at).to_column(),
            conv,
            seq
        ])?;
    }
    Ok(())
}

/// max(current, min(seq, last_seq)); 0 without writing for an unknown conversation.
pub(crate) fn set_read(c: &Connection, owner: UserId, conv: &ConvId, seq: Seq) -> Result<Seq> {
    if let Some(g) = conv.group_id() {
        return super::groups::set_read(c, g, owner, seq);
    }
    let pos = c
        .prepare_cached(
            "UPDATE user_conv SET read_seq = MAX(read_seq, MIN(?3, last_seq))
             WHERE owner_uid = ?1 AND conv = ?2 RETURNING read_seq",
        )?
        .query_row(params![owner.0, conv.as_str(), seq], |r| r.get(0))
        .optional()?;
    Ok(pos.unwrap_or(0))
}

/// Removes the messages `select` names (columns: server_id, conv, seq,
/// from_uid, to_uid): the body is the message, for both parties.
fn delete_selected(
    c: &Connection,
    select: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<RetentionHit>> {
    let doomed: Vec<(i64, ConvId, Seq, i64, i64)> = c
        .prepare_cached(select)?
        .query_map(args, |r| {
            Ok((r.get(0)?, conv_at(r, 1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()
        .map_err(corrupt_or)?;
    let mut del_body = c.prepare_cached("DELETE FROM im_msg_content WHERE server_id = ?1")?;
    let mut hits = Vec::with_capacity(doomed.len());
    for (server_id, conv, seq, _from, to) in doomed {
        del_body.execute([server_id])?;
        hits.push(RetentionHit {
            conv,
            seq,
            to: UserId(to),
        });
    }
    Ok(hits)
}

/// Deletes what `what` names (see `RetentionStore::retire`).
pub(crate) fn retire(c: &Connection, what: &Retire) -> Result<Vec<RetentionHit>> {
    match what {
        Retire::Expired { now, limit } => delete_expired(c, *now, *limit),
        Retire::Delivered { to, conv, seqs } => delete_delivered(c, *to, conv, seqs),
        Retire::Read { to, conv, up_to } => delete_read(c, *to, conv, *up_to),
    }
}

fn delete_expired(c: &Connection, now: i64, limit: usize) -> Result<Vec<RetentionHit>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // Mentions of expired messages already count for no one (the count
    // joins the message); their rows go with the sweep.
    c.prepare_cached("DELETE FROM im_mention WHERE expire_at IS NOT NULL AND expire_at <= ?1")?
        .execute([now])?;
    delete_selected(
        c,
        "SELECT server_id, conv, seq, from_uid, to_uid FROM im_msg_content
         WHERE expire_at IS NOT NULL AND expire_at <= ?1 ORDER BY expire_at LIMIT ?2",
        params![now, limit],
    )
}

fn delete_delivered(
    c: &Connection,
    to: UserId,
    conv: &ConvId,
    seqs: &[Seq],
) -> Result<Vec<RetentionHit>> {
    let mut hits = Vec::new();
    for &seq in seqs {
        hits.extend(delete_selected(
            c,
            "SELECT server_id, conv, seq, from_uid, to_uid FROM im_msg_content
             WHERE conv = ?1 AND seq = ?2 AND to_uid = ?3 AND persistence = 'none'",
            params![conv.as_str(), seq, to.0],
        )?);
    }
    Ok(hits)
}

fn delete_read(c: &Connection, to: UserId, conv: &ConvId, up_to: Seq) -> Result<Vec<RetentionHit>> {
    delete_selected(
        c,
        "SELECT server_id, conv, seq, from_uid, to_uid FROM im_msg_content
         WHERE conv = ?1 AND to_uid = ?2 AND seq <= ?3 AND persistence IN ('none', 'offline') ORDER BY seq",
        params![conv.as_str(), to.0, up_to],
    )
}
