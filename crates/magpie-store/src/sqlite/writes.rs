//! Write operations. Each function runs on the writer thread inside the
//! batch transaction (and its own savepoint), so it may assume it is alone:
//! read-modify-write sequences like "next seq" need no further locking.

use super::reads::lookup_cmid;
use super::schema::{conv_at, corrupt_or, device_at, sql_err};
use crate::error::{Result, StoreError};
use crate::store::{Outcome, RetentionHit, UserRecord};
use magpie_core::{
    Accepted, ClientSettings, ConvId, DeviceId, NewMessage, Persistence, Seq, UserId,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

const DAY_MS: i64 = 86_400_000;

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
    user: UserId,
    device: &str,
    expires_at: i64,
) -> Result<()> {
    c.prepare_cached("INSERT INTO refresh_tokens (token_hash, user_id, device, expires_at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![token_hash, user.0, device, expires_at])
        .map_err(|e| sql_err(e, || "refresh token".to_string()))?;
    Ok(())
}

/// DELETE … RETURNING makes take-once atomic: two concurrent takes of the
/// same token are serialized by the writer and only the first sees a row.
pub(crate) fn take_refresh(
    c: &Connection,
    token_hash: &str,
) -> Result<Option<(UserId, DeviceId, i64)>> {
    c.prepare_cached(
        "DELETE FROM refresh_tokens WHERE token_hash = ?1 RETURNING user_id, device, expires_at",
    )?
    .query_row([token_hash], |r| {
        Ok((UserId(r.get(0)?), device_at(r, 1)?, r.get(2)?))
    })
    .optional()
    .map_err(corrupt_or)
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

/// When retention may remove a message; `None` keeps it forever.
fn expire_at(p: Persistence, sent_at: i64, offline_ttl_ms: i64) -> Option<i64> {
    match p {
        Persistence::Days(n) => Some(sent_at.saturating_add(i64::from(n) * DAY_MS)),
        Persistence::Offline | Persistence::None => Some(sent_at.saturating_add(offline_ttl_ms)),
        Persistence::Forever => None,
    }
}

/// Accepts a batch in order (see `StoreBackend::accept`). Because each message
/// is written before the next is looked up, a repeated (from, cmid) inside
/// the batch finds the first one and comes back as its duplicate.
///
/// Per batch, not per message: each conversation's sequence is read once and
/// written once (this thread is the only writer, inside one transaction), and
/// the members' summaries are written once with their newest sequence. A
/// direct message is inserted straight away: the unique (from, cmid) key
/// finds a duplicate, whose sequence is then given back. A group message
/// looks its cmid up first, so a retry of an accepted send stays its
/// duplicate even after the sender was muted.
pub(crate) fn accept(
    c: &Connection,
    batch: &[NewMessage],
    offline_ttl_ms: i64,
) -> Result<Vec<Outcome>> {
    let mut out = Vec::with_capacity(batch.len());
    let mut seqs = Seqs::default();
    let mut summaries: HashMap<(UserId, &ConvId), (UserId, Seq)> = HashMap::new();
    let mut content = c.prepare_cached(
        "INSERT INTO im_msg_content
         (server_id, conv, seq, from_uid, to_uid, cmid, body, persistence, sent_at, expire_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (from_uid, cmid) DO NOTHING",
    )?;
    for m in batch {
        let group = m.conv.group_id();
        if let Some(g) = group {
            if let Some(found) = lookup_cmid(c, m.from, m.cmid)? {
                out.push(Ok(found));
                continue;
            }
            match super::groups::check_sender(c, g, m.from) {
                Ok(()) => {}
                // Refused before anything is written: the others go on.
                Err(refused @ StoreError::Forbidden(_)) => {
                    out.push(Err(refused));
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        let seq = seqs.take(c, &m.conv)?;
        let inserted = content
            .execute(params![
                m.server_id.0,
                m.conv.as_str(),
                seq,
                m.from.0,
                m.to.0,
                &m.cmid.as_bytes()[..],
                m.body,
                m.persistence.to_string(),
                m.sent_at,
                expire_at(m.persistence, m.sent_at, offline_ttl_ms),
            ])
            .map_err(|e| sql_err(e, || format!("server id {}", m.server_id)))?;
        if inserted == 0 {
            seqs.give_back(&m.conv);
            let found = lookup_cmid(c, m.from, m.cmid)?.ok_or_else(|| {
                StoreError::Corrupt(format!("cmid {} conflicts but is not found", m.cmid))
            })?;
            out.push(Ok(found));
            continue;
        }
        if let Some(g) = group {
            // Read diffusion: no per-member rows; the sender has read it.
            super::groups::sender_read(c, g, m.from, seq)?;
        } else {
            summaries.insert((m.from, &m.conv), (m.to, seq));
            // A note to self has one owner: one summary.
            if m.from != m.to {
                summaries.insert((m.to, &m.conv), (m.from, seq));
            }
        }
        out.push(Ok(Accepted {
            server_id: m.server_id,
            conv: m.conv.clone(),
            seq,
            sent_at: m.sent_at,
            duplicate: false,
        }));
    }
    seqs.write(c)?;
    let mut summary = c.prepare_cached(
        "INSERT INTO user_conv (owner_uid, conv, peer_uid, last_seq, read_seq) VALUES (?1, ?2, ?3, ?4, 0)
         ON CONFLICT (owner_uid, conv) DO UPDATE SET last_seq = excluded.last_seq, peer_uid = excluded.peer_uid",
    )?;
    for ((owner, conv), (peer, seq)) in summaries {
        summary.execute(params![owner.0, conv.as_str(), peer.0, seq])?;
    }
    Ok(out)
}

/// The sequences a batch hands out: each conversation's last sequence read
/// once, counted in memory, written once.
#[derive(Default)]
struct Seqs<'a> {
    /// conversation → (stored last sequence, last handed out)
    convs: HashMap<&'a ConvId, (Seq, Seq)>,
}

impl<'a> Seqs<'a> {
    fn take(&mut self, c: &Connection, conv: &'a ConvId) -> Result<Seq> {
        if let Some((_, last)) = self.convs.get_mut(conv) {
            *last += 1;
            return Ok(*last);
        }
        let stored: Seq = c
            .prepare_cached("SELECT last_seq FROM conversations WHERE conv = ?1")?
            .query_row([conv.as_str()], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        self.convs.insert(conv, (stored, stored + 1));
        Ok(stored + 1)
    }

    /// The last sequence taken was not used (the message was a duplicate).
    fn give_back(&mut self, conv: &ConvId) {
        if let Some((_, last)) = self.convs.get_mut(conv) {
            *last -= 1;
        }
    }

    fn write(self, c: &Connection) -> Result<()> {
        let mut up = c.prepare_cached(
            "INSERT INTO conversations (conv, last_seq) VALUES (?1, ?2)
             ON CONFLICT (conv) DO UPDATE SET last_seq = excluded.last_seq",
        )?;
        for (conv, (stored, last)) in self.convs {
            if last > stored {
                up.execute(params![conv.as_str(), last])?;
            }
        }
        Ok(())
    }
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
    let victims: Vec<(i64, ConvId, Seq, i64, i64)> = c
        .prepare_cached(select)?
        .query_map(args, |r| {
            Ok((r.get(0)?, conv_at(r, 1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()
        .map_err(corrupt_or)?;
    let mut del_body = c.prepare_cached("DELETE FROM im_msg_content WHERE server_id = ?1")?;
    let mut hits = Vec::with_capacity(victims.len());
    for (server_id, conv, seq, _from, to) in victims {
        del_body.execute([server_id])?;
        hits.push(RetentionHit {
            conv,
            seq,
            to: UserId(to),
        });
    }
    Ok(hits)
}

pub(crate) fn delete_expired(c: &Connection, now: i64, limit: usize) -> Result<Vec<RetentionHit>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    delete_selected(
        c,
        "SELECT server_id, conv, seq, from_uid, to_uid FROM im_msg_content
         WHERE expire_at IS NOT NULL AND expire_at <= ?1 ORDER BY expire_at LIMIT ?2",
        params![now, limit],
    )
}

pub(crate) fn delete_delivered(
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

pub(crate) fn delete_read(
    c: &Connection,
    to: UserId,
    conv: &ConvId,
    up_to: Seq,
) -> Result<Vec<RetentionHit>> {
    delete_selected(
        c,
        "SELECT server_id, conv, seq, from_uid, to_uid FROM im_msg_content
         WHERE conv = ?1 AND to_uid = ?2 AND seq <= ?3 AND persistence IN ('none', 'offline') ORDER BY seq",
        params![conv.as_str(), to.0, up_to],
    )
}
