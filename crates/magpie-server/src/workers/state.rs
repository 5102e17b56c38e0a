//! The state worker: keeps the fast state derived from messages and reads
//! in step with the store, in one consumer group (each event decoded once):
//!
//! - the offline index: per-(user, conversation) queues of unread message
//!   ids (score = seq, the member the server id; never the body, which the
//!   store has), segmented by week or month of the message (one sorted set
//!   per bucket on Redis, docs/deploy.md "Big keys"), trimmed up to what the
//!   user has read. Each segment is capped and expires whole; sync reads the
//!   store, so nothing depends on what falls off.
//! - the unread-count cache: a message counts once for its receiver (the
//!   watermark makes a redelivered event harmless); a read sets the count
//!   of the conversation read from the store, the truth (the reader's
//!   other conversations are not touched). Groups need no cache: their
//!   unread count is the group's last sequence minus the member's read
//!   position, read directly.
//!
//! Group messages have no per-member entry of either kind (read diffusion).

use super::Worker;
use crate::app::App;
use crate::error::Result;
use crate::metrics::meters;
use crate::services::trace::{Hop, HopKind};
use async_trait::async_trait;
use magpie_core::BusEvent;

pub struct DerivedState;

#[async_trait]
impl Worker for DerivedState {
    fn group(&self) -> String {
        "state".into()
    }
    fn topics(&self) -> Vec<String> {
        ["msg", "read"].map(String::from).to_vec()
    }
    async fn apply(&self, app: &App, events: &[BusEvent]) -> Result<()> {
        let mut arrived = Vec::new();
        // The `unread` hops, recorded once everything is applied.
        let mut hops = app.traces.enabled().then(Vec::new);
        for ev in events {
            match ev {
                BusEvent::Message { msg } => received(msg, &mut arrived, &mut hops),
                BusEvent::Messages { msgs } => {
                    for msg in msgs {
                        received(msg, &mut arrived, &mut hops);
                    }
                }
                BusEvent::Read(r) if r.conv.group_id().is_none() => {
                    // Apply what came before first: order matters.
                    flush(app, &mut arrived).await?;
                    app.state.offline_trim(r.user, &r.conv, r.seq).await?;
                    app.messaging.refresh_unread(r.user, &r.conv).await?;
                }
                _ => {}
            }
        }
        flush(app, &mut arrived).await?;
        if let Some(hops) = hops {
            app.traces.record_all(hops);
        }
        Ok(())
    }
}

/// A direct message counts for its receiver (the sender has read its own;
/// groups keep no per-member state).
fn received(msg: &magpie_core::Message, arrived: &mut Arrived, hops: &mut Option<Vec<Hop>>) {
    if msg.conv.group_id().is_none() && msg.from != msg.to {
        let id = msg.server_id.to_string();
        arrived.push((msg.to, msg.conv.clone(), msg.seq, id));
        if let Some(hops) = hops {
            hops.push(Hop::of(HopKind::Unread, msg).user(msg.to));
        }
    }
}

type Arrived = Vec<(
    magpie_core::UserId,
    magpie_core::ConvId,
    magpie_core::Seq,
    String,
)>;

/// Writes the gathered queue entries and counts: one state call, one
/// round trip on Redis.
async fn flush(app: &App, arrived: &mut Arrived) -> Result<()> {
    if !arrived.is_empty() {
        // A queue entry and a count per message.
        meters().queue_writes.increment(2 * arrived.len() as u64);
        app.state.arrived(&std::mem::take(arrived)).await?;
    }
    Ok(())
}
