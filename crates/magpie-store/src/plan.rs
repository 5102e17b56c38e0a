//! The accept plan: what a batch of sends writes, decided without I/O.
//!
//! Every engine runs `MessageStore::accept` the same way: inside its
//! transaction it looks up what the plan needs ([`Found`]: stored
//! (from, cmid) pairs, each conversation's last sequence, refused group
//! senders), calls [`plan`], and writes the rows the plan lists. The rules
//! live here once (ARCHITECTURE.md, "Acknowledged = durable", "Idempotent
//! send", "Order and gaps"):
//!
//! - a (from, cmid) stored before is answered with the original, marked
//!   duplicate, and writes nothing;
//! - a repeat of (from, cmid) inside the batch answers like its first;
//! - a group message whose sender may not send is refused (`Forbidden`) and
//!   writes nothing; the other messages go on;
//! - every other message takes its conversation's next sequence, in batch
//!   order, contiguous from the stored last sequence.

use crate::error::StoreError;
use crate::store::Outcome;
use magpie_core::{
    Accepted, ClientMsgId, ConvId, GroupId, GroupStamp, NewMessage, Persistence, Seq, UserId,
};
use std::collections::{BTreeMap, HashMap};

/// `box_type` of the sender's copy (outbox) and the receiver's copy (inbox)
/// in the SQL engines' per-owner index.
#[cfg_attr(not(feature = "sql"), allow(dead_code))] // the SQL engines write these
pub(crate) const BOX_SENT: i64 = 0;
#[cfg_attr(not(feature = "sql"), allow(dead_code))] // the SQL engines write these
pub(crate) const BOX_RECEIVED: i64 = 1;

const DAY_MS: i64 = 86_400_000;

/// When retention may remove a message; `None` keeps it forever.
pub(crate) fn expire_at(p: Persistence, sent_at: i64, offline_ttl_ms: i64) -> Option<i64> {
    match p {
        Persistence::Days(n) => Some(sent_at.saturating_add(i64::from(n) * DAY_MS)),
        Persistence::Offline | Persistence::None => Some(sent_at.saturating_add(offline_ttl_ms)),
        Persistence::Forever => None,
    }
}

/// What the engine looked up in its transaction before planning.
#[derive(Default)]
pub(crate) struct Found {
    /// Results of (from, cmid) pairs already stored (`duplicate = true`).
    pub stored: HashMap<(UserId, ClientMsgId), Accepted>,
    /// The stored last sequence of each conversation of the batch (absent: 0).
    pub last_seq: HashMap<ConvId, Seq>,
    /// Group senders who may not send, with the reason.
    pub refused: HashMap<(GroupId, UserId), String>,
    /// Each group of the batch as the sender check saw it, under its lock.
    pub groups: HashMap<GroupId, GroupStamp>,
}

/// The conversations of a batch, sorted and deduplicated: the order every
/// engine locks them in, so two batches never deadlock on each other.
pub(crate) fn conversations(batch: &[NewMessage]) -> Vec<&ConvId> {
    let mut convs: Vec<&ConvId> = batch.iter().map(|m| &m.conv).collect();
    convs.sort_unstable();
    convs.dedup();
    convs
}

/// Each conversation of a batch (sorted: the lock order) with its number
/// of messages, the most sequences the batch can take there.
#[cfg_attr(not(feature = "sql"), allow(dead_code))] // the SQL engines reserve by these
pub(crate) fn conversation_counts(batch: &[NewMessage]) -> Vec<(&ConvId, i64)> {
    let mut counts: BTreeMap<&ConvId, i64> = BTreeMap::new();
    for m in batch {
        *counts.entry(&m.conv).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// The (group, sender) pairs of a batch's group messages, sorted and deduplicated.
pub(crate) fn group_senders(batch: &[NewMessage]) -> Vec<(GroupId, UserId)> {
    let mut pairs: Vec<(GroupId, UserId)> = batch
        .iter()
        .filter_map(|m| m.conv.group_id().map(|g| (g, m.from)))
        .collect();
    pairs.sort_unstable_by_key(|(g, u)| (g.0, u.0));
    pairs.dedup();
    pairs
}

/// One message body to insert.
pub(crate) struct Row<'a> {
    pub msg: &'a NewMessage,
    pub seq: Seq,
    pub expire_at: Option<i64>,
}

/// A member's summary of a direct conversation after the batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Summary<'a> {
    pub owner: UserId,
    pub conv: &'a ConvId,
    pub peer: UserId,
    pub last_seq: Seq,
}

/// One row of the SQL engines' per-owner message index.
#[cfg_attr(not(feature = "sql"), allow(dead_code))] // the SQL engines write these
pub(crate) struct BoxRow<'a> {
    pub owner: UserId,
    pub other: UserId,
    pub conv: &'a ConvId,
    pub seq: Seq,
    pub server_id: i64,
    pub box_type: i64,
}

/// One mention of a group message (`UserId(0)`: `@all`), the key of a
/// member's mention count (docs/protocol.md §5.11).
pub(crate) struct MentionRow<'a> {
    pub conv: &'a ConvId,
    pub seq: Seq,
    pub user: UserId,
    pub from: UserId,
    pub expire_at: Option<i64>,
}

/// What one batch writes, and what each of its messages is answered.
pub(crate) struct Plan<'a> {
    /// One outcome per message, in batch order.
    pub outcomes: Vec<Outcome>,
    /// The bodies to insert, in batch order.
    pub rows: Vec<Row<'a>>,
    /// Each conversation whose last sequence moves, with its new value, sorted.
    pub last_seqs: Vec<(&'a ConvId, Seq)>,
    /// Direct conversations' summaries, one per (owner, conv), sorted.
    pub summaries: Vec<Summary<'a>>,
    /// Group senders have read what they sent: one per (group, sender), sorted.
    pub group_reads: Vec<(GroupId, UserId, Seq)>,
}

impl<'a> Plan<'a> {
    /// The index rows of the direct messages: the sender's copy, and the
    /// receiver's unless it is a note to self.
    #[cfg_attr(not(feature = "sql"), allow(dead_code))] // the SQL engines write these
    pub(crate) fn boxes(&self) -> Vec<BoxRow<'a>> {
        let mut out = Vec::with_capacity(self.rows.len() * 2);
        for r in self.rows.iter().filter(|r| r.msg.conv.group_id().is_none()) {
            let m = r.msg;
            let row = |owner, other, box_type| BoxRow {
                owner,
                other,
                conv: &m.conv,
                seq: r.seq,
                server_id: m.server_id.0,
                box_type,
            };
            out.push(row(m.from, m.to, BOX_SENT));
            if m.from != m.to {
                out.push(row(m.to, m.from, BOX_RECEIVED));
            }
        }
        out
    }

    /// The mention rows of the batch's group messages, each (message,
    /// user) once.
    pub(crate) fn mentions(&self) -> Vec<MentionRow<'a>> {
        let mut out = Vec::new();
        for r in self.rows.iter().filter(|r| r.msg.conv.group_id().is_some()) {
            let Some(meta) = r.msg.meta.as_deref() else {
                continue;
            };
            let mut users: Vec<UserId> = meta.mention_rows().collect();
            users.sort_unstable();
            users.dedup();
            out.extend(users.into_iter().map(|user| MentionRow {
                conv: &r.msg.conv,
                seq: r.seq,
                user,
                from: r.msg.from,
                expire_at: r.expire_at,
            }));
        }
        out
    }
}

/// The same refusal again, for a repeat of a refused message.
fn again(e: &StoreError) -> StoreError {
    match e {
        StoreError::Conflict(s) => StoreError::Conflict(s.clone()),
        StoreError::Forbidden(s) => StoreError::Forbidden(s.clone()),
        StoreError::Unavailable(s) => StoreError::Unavailable(s.clone()),
        StoreError::Config(s) => StoreError::Config(s.clone()),
        StoreError::Corrupt(s) => StoreError::Corrupt(s.clone()),
    }
}

/// Decides a batch: see the module doc for the rules.
pub(crate) fn plan<'a>(batch: &'a [NewMessage], found: &Found, offline_ttl_ms: i64) -> Plan<'a> {
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
    let mut rows = Vec::with_capacity(batch.len());
    let mut first: HashMap<(UserId, ClientMsgId), usize> = HashMap::new();
    let mut last: BTreeMap<&'a ConvId, Seq> = BTreeMap::new();
    let mut summaries: BTreeMap<(i64, &'a ConvId), (UserId, Seq)> = BTreeMap::new();
    let mut reads: BTreeMap<(i64, i64), Seq> = BTreeMap::new();
    for (i, m) in batch.iter().enumerate() {
        let key = (m.from, m.cmid);
        if let Some(a) = found.stored.get(&key) {
            outcomes.push(Ok(a.clone()));
            continue;
        }
        if let Some(&j) = first.get(&key) {
            let repeat = match &outcomes[j] {
                Ok(a) => Ok(Accepted {
                    duplicate: true,
                    ..a.clone()
                }),
                Err(e) => Err(again(e)),
            };
            outcomes.push(repeat);
            continue;
        }
        first.insert(key, i);
        let group = m.conv.group_id();
        if let Some(why) = group.and_then(|g| found.refused.get(&(g, m.from))) {
            outcomes.push(Err(StoreError::Forbidden(why.clone())));
            continue;
        }
        let stored = found.last_seq.get(&m.conv).copied().unwrap_or(0);
        let seq = last.entry(&m.conv).or_insert(stored);
        *seq += 1;
        let seq = *seq;
        match group {
            Some(g) => {
                reads.insert((g.0, m.from.0), seq);
            }
            None => {
                summaries.insert((m.from.0, &m.conv), (m.to, seq));
                if m.from != m.to {
                    summaries.insert((m.to.0, &m.conv), (m.from, seq));
                }
            }
        }
        rows.push(Row {
            msg: m,
            seq,
            expire_at: expire_at(m.persistence, m.sent_at, offline_ttl_ms),
        });
        outcomes.push(Ok(Accepted {
            server_id: m.server_id,
            conv: m.conv.clone(),
            seq,
            sent_at: m.sent_at,
            duplicate: false,
            group: group.and_then(|g| found.groups.get(&g).copied()),
        }));
    }
    Plan {
        outcomes,
        rows,
        last_seqs: last.into_iter().collect(),
        summaries: summaries
            .into_iter()
            .map(|((owner, conv), (peer, last_seq))| Summary {
                owner: UserId(owner),
                conv,
                peer,
                last_seq,
            })
            .collect(),
        group_reads: reads
            .into_iter()
            .map(|((g, u), seq)| (GroupId(g), UserId(u), seq))
            .collect(),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
