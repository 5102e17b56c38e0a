//! `accept` on SQLite: look up what the plan needs, plan (`crate::plan`),
//! write the plan. Runs on the writer thread inside the batch transaction
//! (and its own savepoint), so it is the only writer: the last sequences
//! it reads cannot move before it writes them back.
//!
//! Per batch, not per message: each conversation's sequence is read once
//! and written once, and the members' summaries are written once with their
//! newest sequence. A direct message is its one body row here (no per-owner
//! index, see the module doc of `sqlite`).

use super::reads::lookup_cmid;
use super::schema::sql_err;
use crate::error::{Result, StoreError};
use crate::plan::{self, Found, Plan};
use crate::store::Outcome;
use magpie_core::NewMessage;
use rusqlite::{Connection, OptionalExtension, params};

pub(crate) fn accept(c: &Connection, batch: &[NewMessage], ttl_ms: i64) -> Result<Vec<Outcome>> {
    let found = look_up(c, batch)?;
    let p = plan::plan(batch, &found, ttl_ms);
    write(c, &p)?;
    Ok(p.outcomes)
}

/// Stored (from, cmid) pairs, the conversations' last sequences, and which
/// group senders may not send (non-member, muted, dissolved group).
fn look_up(c: &Connection, batch: &[NewMessage]) -> Result<Found> {
    let mut found = Found::default();
    for m in batch {
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
            Ok(()) => {}
            Err(StoreError::Forbidden(why)) => {
                found.refused.insert((g, u), why);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

fn write(c: &Connection, p: &Plan<'_>) -> Result<()> {
    let mut content = c.prepare_cached(
        "INSERT INTO im_msg_content
         (server_id, conv, seq, from_uid, to_uid, cmid, body, persistence, sent_at, expire_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for r in &p.rows {
        let m = r.msg;
        content
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
            ])
            .map_err(|e| sql_err(e, || format!("server id {}", m.server_id)))?;
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
    Ok(())
}
