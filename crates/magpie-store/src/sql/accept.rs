//! `accept` on SQL. One transaction per batch: lock the batch's
//! conversation rows in sorted order, reserving as many sequences as the
//! batch has messages in each (one statement), check
//! the group senders, decide everything with the pure plan (`crate::plan`),
//! then write it with one multi-row statement per step whatever the batch's
//! size (`batch.rs`): bodies, index rows, summaries, and last sequences
//! only where the plan used fewer than it reserved.
//!
//! Invariants (ARCHITECTURE.md): sequences are contiguous per conversation
//! and handed out only with their message in the same transaction (the
//! conversation rows stay locked until COMMIT); locks are taken in one order
//! (conversation rows, then group rows, then member rows) so batches do not
//! deadlock. A (from, cmid) stored before, or by a racing transaction, makes
//! the body insert fail on the unique key; `accept` then retries, looking
//! every pair up first, and finds it.

use super::batch::CHUNK;
use super::conv_of;
use super::db::{Arg, Exec, Sql, Sqlx, args};
use super::store::SqlStore;
use crate::StoreError;
use crate::plan::{self, Found, Plan};
use crate::store::Outcome;
use magpie_core::{ConvId, MessageMeta, NewMessage, Revision, Seq};
use std::collections::HashMap;

/// Runs `sql(n)` over `rows` in chunks, each row giving its arguments.
async fn each_chunk<R>(
    x: &mut Exec<'_>,
    rows: &[R],
    sql: impl Fn(usize) -> Sql,
    row: impl for<'r> Fn(&'r R) -> Vec<Arg<'r>>,
) -> Sqlx<()> {
    for chunk in rows.chunks(CHUNK) {
        let a: Vec<Arg<'_>> = chunk.iter().flat_map(&row).collect();
        x.execute(sql(chunk.len()), a).await?;
    }
    Ok(())
}

impl SqlStore {
    /// An edit or recall event rewrites the message it names, in the
    /// transaction that stores the event (`magpie_core::meta`): an edit
    /// replaces the text unless the message was recalled, a recall removes
    /// the text and takes the message out of search.
    async fn revise(&self, x: &mut Exec<'_>, m: &NewMessage) -> Sqlx<()> {
        let Some(meta) = m.meta.as_deref() else {
            return Ok(());
        };
        let conv = m.conv.as_str();
        if let Some(seq) = meta.recall_of {
            x.execute(self.q.revise_recall.as_str(), args![conv, seq])
                .await?;
        } else if let Some(seq) = meta.edit_of {
            let at = Revision::Edited(m.sent_at).to_column();
            let a = args![m.body.as_str(), at, conv, seq];
            x.execute(self.q.revise_edit.as_str(), a).await?;
        }
        Ok(())
    }

    /// Creates or locks the conversation rows (sorted: one global order)
    /// and reserves, in the same statement, as many sequences in each as
    /// the batch has messages there: the most the plan can use. Returns,
    /// per conversation, the last sequence before and after the
    /// reservation; `write_plan` gives back what the plan did not use.
    async fn lock_convs(
        &self,
        x: &mut Exec<'_>,
        convs: &[(&ConvId, i64)],
    ) -> Sqlx<HashMap<ConvId, (Seq, Seq)>> {
        let b = self.b;
        let reserved: HashMap<&str, i64> = convs.iter().map(|(v, n)| (v.as_str(), *n)).collect();
        let mut last = HashMap::with_capacity(convs.len());
        for chunk in convs.chunks(CHUNK) {
            let n = chunk.len();
            let lock = chunk
                .iter()
                .flat_map(|(v, k)| args![v.as_str(), *k])
                .collect();
            let rows: Vec<(String, i64)> = if b.lock_returns() {
                x.all(b.lock_convs(n), lock).await?
            } else if let [(conv, count)] = chunk {
                // MySQL, one conversation (the usual batch): one round trip.
                let (_, id) = x.execute_last_id(b.lock_conv_mysql(), lock).await?;
                let last = if id == 0 { *count } else { id as i64 };
                vec![(conv.as_str().to_string(), last)]
            } else {
                x.execute(b.lock_convs(n), lock).await?;
                let a = chunk.iter().map(|(v, _)| Arg::from(v.as_str())).collect();
                x.all(b.last_seqs(n), a).await?
            };
            for (conv, seq) in rows {
                let before = seq - reserved.get(conv.as_str()).copied().unwrap_or(0);
                last.insert(conv_of(&conv)?, (before, seq));
            }
        }
        Ok(last)
    }

    /// What the plan needs, looked up under the conversation locks. Without
    /// `all`, stored pairs are looked up only for refused group senders (a
    /// retry of a message accepted before a mute stays its duplicate); any
    /// other one fails the body insert instead.
    async fn look_up(
        &self,
        x: &mut Exec<'_>,
        batch: &[NewMessage],
        all: bool,
    ) -> Sqlx<(Found, HashMap<ConvId, Seq>)> {
        let counts = plan::conversation_counts(batch);
        let locked = self.lock_convs(x, &counts).await?;
        let mut found = Found {
            last_seq: locked
                .iter()
                .map(|(v, (before, _))| (v.clone(), *before))
                .collect(),
            ..Found::default()
        };
        let reserved = locked
            .into_iter()
            .map(|(v, (_, after))| (v, after))
            .collect();
        for (g, u) in plan::group_senders(batch) {
            let (stamp, refusal) = self.check_sender(x, g, u).await?;
            if let Some(stamp) = stamp {
                found.groups.insert(g, stamp);
            }
            if let Some(StoreError::Forbidden(why)) = refusal {
                found.refused.insert((g, u), why);
            }
        }
        for m in batch {
            let refused = m
                .conv
                .group_id()
                .is_some_and(|g| found.refused.contains_key(&(g, m.from)));
            if (all || refused)
                && let Some(a) = self.find_cmid(x, m.from, m.cmid).await?
            {
                found.stored.insert((m.from, m.cmid), a);
            }
        }
        Ok((found, reserved))
    }

    /// Writes a plan: one statement per step and chunk. `reserved` is each
    /// conversation's last sequence as `lock_convs` left it; only where the
    /// plan used fewer (duplicates, refused senders) is it set back, so a
    /// batch of new messages writes no `last_seq` of its own.
    async fn write_plan(
        &self,
        x: &mut Exec<'_>,
        p: &Plan<'_>,
        found: &Found,
        reserved: &HashMap<ConvId, Seq>,
    ) -> Sqlx<()> {
        let b = self.b;
        let rows: Vec<_> = p
            .rows
            .iter()
            .map(|r| (r, MessageMeta::references_json(r.msg.meta.as_deref())))
            .collect();
        each_chunk(
            x,
            &rows,
            |n| b.contents(n),
            |(r, meta)| {
                let m = r.msg;
                args![
                    m.server_id.0,
                    m.conv.as_str(),
                    r.seq,
                    m.from.0,
                    m.to.0,
                    m.cmid.to_string(),
                    m.body.as_str(),
                    m.persistence.to_string(),
                    m.sent_at,
                    r.expire_at,
                    i64::from(m.search),
                    meta.as_deref(),
                ]
            },
        )
        .await?;
        each_chunk(
            x,
            &p.boxes(),
            |n| b.boxes(n),
            |r| {
                let conv = r.conv.as_str();
                args![r.owner.0, r.other.0, conv, r.seq, r.server_id, r.box_type]
            },
        )
        .await?;
        each_chunk(
            x,
            &p.summaries,
            |n| b.summaries(n),
            |s| args![s.owner.0, s.conv.as_str(), s.peer.0, s.last_seq],
        )
        .await?;
        let used: HashMap<&ConvId, Seq> = p.last_seqs.iter().copied().collect();
        let give_back: Vec<(&ConvId, Seq)> = reserved
            .iter()
            .filter_map(|(v, &after)| {
                let want = used
                    .get(v)
                    .copied()
                    .or_else(|| found.last_seq.get(v).copied())?;
                (want != after).then_some((v, want))
            })
            .collect();
        each_chunk(
            x,
            &give_back,
            |n| b.set_last_seqs(n),
            |(v, s)| args![v.as_str(), *s],
        )
        .await?;
        for &(g, u, seq) in &p.group_reads {
            // Read diffusion: no per-member rows; the sender has read it.
            self.advance_read(x, g, u, seq).await?;
        }
        for r in &p.rows {
            self.revise(x, r.msg).await?;
        }
        each_chunk(
            x,
            &p.mentions(),
            |n| b.mentions(n),
            |m| args![m.conv.as_str(), m.seq, m.user.0, m.from.0, m.expire_at],
        )
        .await?;
        Ok(())
    }

    /// One attempt at `accept`: the whole batch in one transaction.
    pub(super) async fn accept_once(&self, batch: &[NewMessage], all: bool) -> Sqlx<Vec<Outcome>> {
        let mut tx = self.pool.begin().await?;
        let (found, reserved) = self.look_up(&mut tx.exec(), batch, all).await?;
        let p = plan::plan(batch, &found, self.offline_ttl_ms);
        self.write_plan(&mut tx.exec(), &p, &found, &reserved)
            .await?;
        tx.commit().await?;
        Ok(p.outcomes)
    }
}
