//! Group read receipts, coalesced.
//!
//! In a direct chat a read sends the peer one `receipt`. In a group, one
//! receipt per reader per message would cost members × messages frames; so
//! reads only widen a pending range per group here, and once a second the
//! range is turned into at most one `group_receipt` per sender: for the
//! sender's newest message in it, with the current counts (derived from
//! read positions, all senders' in one store read: `read_counts`). Each
//! node coalesces the reads it handles.

use super::Messaging;
use crate::services::delivery::Notice;
use magpie_core::{ConvId, GroupId, Seq, UserId};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often pending ranges become receipts.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Newest messages of a range looked at per flush (older ones' senders got
/// a receipt for a newer message, or will with the next read).
const SCAN: usize = 200;

#[derive(Default)]
pub struct GroupReceipts {
    /// Per group, the range of sequences newly read since the last flush.
    pending: Mutex<HashMap<GroupId, (Seq, Seq)>>,
}

impl GroupReceipts {
    /// Some member's read position moved from `old` to `new`.
    pub fn note(&self, g: GroupId, old: Seq, new: Seq) {
        if new <= old {
            return;
        }
        let mut p = self.pending.lock();
        let e = p.entry(g).or_insert((old, new));
        e.0 = e.0.min(old);
        e.1 = e.1.max(new);
    }

    fn take(&self) -> HashMap<GroupId, (Seq, Seq)> {
        std::mem::take(&mut *self.pending.lock())
    }
}

impl Messaging {
    /// Runs until shutdown: once a second, pending ranges become receipts.
    pub async fn run_group_receipts(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            for (g, (lo, hi)) in self.receipts.take() {
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
