//! Read acknowledgements: move the read position, tell the workers (topic
//! `read`), the reader's other devices (`read_sync`) and the peer (a read
//! receipt) (docs/protocol.md §3.12).

use super::Messaging;
use crate::error::{Result, ServerError};
use crate::services::delivery::Notice;
use crate::services::trace::{Hop, HopKind};
use magpie_core::{BusEvent, ConvId, DeviceId, EventId, ReadUpTo, Seq, UserId, now_ms};

impl Messaging {
    /// `user` has read `conv` up to `seq` on `device`; returns the new read
    /// position.
    pub async fn read(
        &self,
        user: UserId,
        device: &DeviceId,
        conv: &ConvId,
        seq: Seq,
    ) -> Result<Seq> {
        if seq < 0 {
            return Err(ServerError::bad_field("seq: must not be negative"));
        }
        let Some(before) = self.store.messages().conversation(user, conv).await? else {
            // A direct conversation of this user with no message yet has a
            // read position of 0 and nothing to move it to: not an error
            // (docs/protocol.md §3.12). Other unknown ones are not found.
            if conv
                .direct_members()
                .is_some_and(|(a, b)| a == user || b == user)
            {
                return Ok(0);
            }
            return Err(ServerError::NotFound(format!("no conversation {conv}")));
        };
        let pos = self.store.messages().set_read(user, conv, seq).await?;
        if let Some(g) = conv.group_id() {
            // Senders hear of it coalesced (`receipts.rs`), not per read.
            self.delivery.reads().note(g, before.read_seq, pos);
        }
        let event = BusEvent::Read(ReadUpTo {
            user,
            conv: conv.clone(),
            seq: pos,
            at: now_ms(),
        });
        let id = EventId::Read {
            user,
            conv: conv.clone(),
            seq: pos,
        };
        self.events.publish(event, id).await?;
        if self.traces.enabled() && pos > before.read_seq {
            // A read names a position: it covers every message up to it.
            self.traces
                .record(Hop::at(HopKind::Read, conv, pos).user(user));
        }
        if pos > before.read_seq {
            // The reader's other devices clear the conversation's unread
            // count and notifications at once.
            let notice = Notice::ReadSync {
                conv: conv.clone(),
                seq: pos,
            };
            self.delivery.notify_except(user, device, notice).await;
        }
        if let Some(peer) = conv.peer_of(user).filter(|p| *p != user) {
            self.delivery
                .notify(
                    peer,
                    Notice::Receipt {
                        conv: conv.clone(),
                        reader: user,
                        seq: pos,
                    },
                )
                .await;
        }
        Ok(pos)
    }

    /// Mutes or unmutes `user`'s notifications of `conv` (docs/protocol.md
    /// §5.11): the offline push leaves them out, unless a message mentions
    /// them; delivery, sync and counts are unchanged.
    pub async fn set_muted(&self, user: UserId, conv: &ConvId, muted: bool) -> Result<()> {
        if self.store.messages().set_muted(user, conv, muted).await? {
            return Ok(());
        }
        Err(ServerError::NotFound(format!(
            "no conversation {conv} of yours (a direct one exists from its first message)"
        )))
    }
}
