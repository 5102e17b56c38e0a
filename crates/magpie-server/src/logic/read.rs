//! Read acknowledgements: move the read position, tell the workers (the
//! notes' "message read" topic) and send the peer a read receipt.

use crate::app::App;
use crate::error::{Result, ServerError};
use magpie_core::{BusEvent, ConvId, ReadUpTo, Seq, UserId, now_ms};
use magpie_proto::ServerFrame;

impl App {
    /// `user` has read `conv` up to `seq`; returns the new read position.
    pub async fn read(&self, user: UserId, conv: &ConvId, seq: Seq) -> Result<Seq> {
        if seq < 0 {
            return Err(ServerError::bad_field("seq: must not be negative"));
        }
        let Some(before) = self.store.conversation(user, conv).await? else {
            return Err(ServerError::NotFound(format!("no conversation {conv}")));
        };
        let pos = self.store.set_read(user, conv, seq).await?;
        if let Some(g) = conv.group_id() {
            // Senders hear of it coalesced (logic::receipts), not per read.
            self.receipts.note(g, before.read_seq, pos);
        }
        let event = BusEvent::Read(ReadUpTo {
            user,
            conv: conv.clone(),
            seq: pos,
            at: now_ms(),
        });
        self.publish_event(event, format!("r:{user}:{conv}:{pos}"))
            .await?;
        if let Some(peer) = conv.peer_of(user).filter(|p| *p != user) {
            self.push_frame(
                peer,
                ServerFrame::Receipt {
                    conv: conv.clone(),
                    reader: user,
                    seq: pos,
                },
            )
            .await;
        }
        Ok(pos)
    }
}
