//! Group read receipts, coalesced.
//!
//! In a direct chat a read sends the peer one `receipt`. In a group, one
//! receipt per reader per message would cost members × messages frames; so
//! reads only widen a pending range per group here, and once a second the
//! range is turned into at most one `group_receipt` per sender: for the
//! sender's newest message in it, with the current counts (derived from
//! read positions, all senders' in one store read: `read_counts`). Each
//! node gathers the reads it handles (`delivery/reads.rs`) and forwards
//! them to the group's one owner, which flushes: one count per group and
//! second in the cluster, not one per node.

use super::Messaging;
use crate::services::delivery::Notice;
use crate::services::delivery::split_by_owner;
use magpie_core::{ConvId, GroupId, Seq, UserId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often pending ranges become receipts.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Newest messages of a range looked at per flush (older ones' senders got
/// a receipt for a newer message, or will with the next read).
const SCAN: usize = 200;

impl Messaging {
    /// Runs until shutdown: once a second, pending ranges become receipts.
    pub async fn run_group_receipts(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let pending = self.delivery.reads().take();
            if pending.is_empty() {
                continue;
            }
            // The live nodes, each owning its share of the groups; without
            // the registry, or alone, this node flushes everything. This
            // node is always a candidate, even while its own record is
            // missing: otherwise it and the others could hand a group's
            // ranges back and forth until the record returns.
            let mut nodes: Vec<String> = match self.state.nodes().await {
                Ok(nodes) => nodes.into_iter().map(|n| n.node).collect(),
                Err(e) => {
                    tracing::debug!(error = %e, "registry unreadable: flushing every group here");
                    Vec::new()
                }
            };
            if !nodes.contains(&self.cfg.node) {
                nodes.push(self.cfg.node.clone());
            }
            let (mine, theirs) = split_by_owner(pending, &nodes, &self.cfg.node);
            self.delivery.forward_reads(theirs);
            for (g, (lo, hi)) in mine {
                if let Err(e) = self.flush_receipts(g, lo, hi).await {
                    tracing::debug!(error = %e, group = %g, "group receipts skipped");
                }
            }
        }
    }

    async fn flush_receipts(&self, g: GroupId, lo: Seq, hi: Seq) -> crate::error::Result<()> {
        let conv = ConvId::group(g);
        let Some(info) = self.store.groups().group(g).await? else {
            return Ok(());
        };
        // The newest messages of (lo, hi], read as the owner (a member since
        // the start) sees them.
        let from = lo.max(hi - SCAN as Seq);
        let msgs = self
            .store
            .messages()
            .messages_after(info.owner, &conv, from, SCAN)
            .await?;
        let mut newest: HashMap<UserId, Seq> = HashMap::new();
        for m in msgs.iter().filter(|m| m.seq <= hi) {
            let e = newest.entry(m.from).or_insert(m.seq);
            *e = (*e).max(m.seq);
        }
        // Every sender's counts in one read, whose cost is the members who
        // read at or past the oldest of these messages, not the group.
        let (senders, seqs): (Vec<UserId>, Vec<Seq>) = newest.into_iter().unzip();
        let counts = self.store.groups().read_counts(g, &seqs).await?;
        for ((sender, seq), (read, unread)) in senders.into_iter().zip(seqs).zip(counts) {
            let notice = Notice::GroupReceipt {
                conv: conv.clone(),
                seq,
                read,
                unread,
            };
            self.delivery.notify(sender, notice).await;
        }
        Ok(())
    }
}
