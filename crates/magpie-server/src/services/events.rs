//! The events port: every service publishes durable bus events through it.
//! Events are sealed by the one envelope in core (`magpie_core::Envelope`),
//! so topic, idempotency id and payload are written in one place.

use crate::error::{Result, ServerError};
use crate::metrics::meters;
use magpie_bus::{Bus, Outgoing};
use magpie_core::{BusEvent, Envelope, EventId};
use tokio_util::sync::CancellationToken;

/// An event as the bus takes it.
pub(crate) fn seal(event: &BusEvent, id: &EventId) -> Result<Outgoing> {
    let env = Envelope::seal(event, id).map_err(|e| ServerError::Internal(e.to_string()))?;
    Ok(Outgoing {
        topic: env.topic,
        key: env.key,
        msg_id: env.id,
        payload: env.payload.into(),
    })
}

#[derive(Clone)]
pub struct Events {
    pub(super) bus: Bus,
    /// Republishing stops when the node shuts down (`republish.rs`).
    pub(super) shutdown: CancellationToken,
}

impl Events {
    pub fn new(bus: Bus, shutdown: CancellationToken) -> Events {
        Events { bus, shutdown }
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    pub async fn publish(&self, event: BusEvent, id: EventId) -> Result<()> {
        self.publish_all(vec![(event, id)]).await
    }

    /// All in one bus call (one sync on a log that syncs every append).
    pub async fn publish_all(&self, events: Vec<(BusEvent, EventId)>) -> Result<()> {
        let mut out = Vec::with_capacity(events.len());
        for (event, id) in events {
            out.push(seal(&event, &id)?);
        }
        self.publish_sealed(out).await
    }

    pub async fn publish_sealed(&self, out: Vec<Outgoing>) -> Result<()> {
        if !out.is_empty() {
            let m = meters();
            m.bus_events.increment(out.len() as u64);
            m.bus_appends.increment(1);
            self.bus.publish(out).await?;
        }
        Ok(())
    }
}
