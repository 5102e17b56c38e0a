//! The unread worker: keeps the unread-count cache in step with the store.
//! A message counts once for its receiver (the watermark makes a
//! redelivered event harmless); a read rebuilds the reader's counts from the
//! store, the truth. Groups need no cache: their unread count is the
//! group's last sequence minus the member's read position, read directly.

use super::Worker;
use crate::app::App;
use crate::error::Result;
use async_trait::async_trait;
use magpie_core::BusEvent;

pub struct Unread;

#[async_trait]
impl Worker for Unread {
    fn group(&self) -> String {
        "unread".into()
    }
    fn topics(&self) -> Vec<String> {
        ["msg", "read"].map(String::from).to_vec()
    }
    async fn apply(&self, app: &App, events: &[BusEvent]) -> Result<()> {
        let mut counts = Vec::new();
        for ev in events {
            match ev {
                BusEvent::Message { msg }
                    if msg.from != msg.to && msg.conv.group_id().is_none() =>
                {
                    counts.push((msg.to, msg.conv.clone(), msg.seq))
                }
                BusEvent::Read(r) if r.conv.group_id().is_none() => {
                    // Apply the counts gathered so far first: order matters.
                    if !counts.is_empty() {
                        app.state.unread_count(&std::mem::take(&mut counts)).await?;
                    }
                    if app.state.unread_get(r.user).await?.is_some() {
                        app.rebuild_unread(r.user).await?;
                    }
                }
                _ => {}
            }
        }
        if !counts.is_empty() {
            metrics::counter!(crate::metrics::QUEUE_WRITES).increment(counts.len() as u64);
            app.state.unread_count(&counts).await?;
        }
        Ok(())
    }
}
