//! The offline worker: keeps the per-(user, conversation) sorted sets of
//! unread message ids (score = seq, the member the server id; never the
//! body, which the store has) and trims them up to what the user has read
//! (the notes' ZADD / ZREMRANGEBYSCORE). Each set is capped; sync reads the
//! store, so nothing depends on what falls off.

use super::Worker;
use crate::app::App;
use crate::error::Result;
use async_trait::async_trait;
use magpie_core::BusEvent;

pub struct Offline;

#[async_trait]
impl Worker for Offline {
    fn group(&self) -> String {
        "offline".into()
    }
    fn topics(&self) -> Vec<String> {
        ["msg", "read"].map(String::from).to_vec()
    }
    async fn apply(&self, app: &App, events: &[BusEvent]) -> Result<()> {
        let mut adds = Vec::new();
        for ev in events {
            // Group messages have no per-member queue (read diffusion):
            // members sync from the group's timeline.
            if let BusEvent::Message { msg } = ev
                && msg.conv.group_id().is_none()
            {
                // The receiver's: the sender has read its own message.
                if msg.to != msg.from {
                    let id = msg.server_id.to_string();
                    adds.push((msg.to, msg.conv.clone(), msg.seq, id));
                }
            }
        }
        if !adds.is_empty() {
            crate::metrics::meters()
                .queue_writes
                .increment(adds.len() as u64);
            app.state.offline_add(&adds).await?;
        }
        for ev in events {
            if let BusEvent::Read(r) = ev
                && r.conv.group_id().is_none()
            {
                app.state.offline_trim(r.user, &r.conv, r.seq).await?;
            }
        }
        Ok(())
    }
}
