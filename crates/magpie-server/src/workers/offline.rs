//! The offline worker: keeps the per-(user, conversation) sorted sets of
//! recent messages (score = seq) that sync answers from, and trims them up
//! to what the user has read (the notes' ZADD / ZREMRANGEBYSCORE).

use super::Worker;
use crate::app::App;
use crate::error::{Result, ServerError};
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
                let payload =
                    serde_json::to_string(msg).map_err(|e| ServerError::Internal(e.to_string()))?;
                // Both parties: the sender's other devices sync from it too.
                adds.push((msg.to, msg.conv.clone(), msg.seq, payload.clone()));
                if msg.from != msg.to && msg.from != magpie_core::UserId::SYSTEM {
                    adds.push((msg.from, msg.conv.clone(), msg.seq, payload));
                }
            }
        }
        if !adds.is_empty() {
            metrics::counter!(crate::metrics::QUEUE_WRITES).increment(adds.len() as u64);
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
