//! Publishing bus events other than messages (reads, deliveries, presence).

use crate::app::App;
use crate::error::{Result, ServerError};
use magpie_bus::Outgoing;
use magpie_core::{BusEvent, ConvId, DeviceId, Envelope, EventId, Presence, Seq, UserId, now_ms};
use std::collections::BTreeMap;

/// An event as the bus takes it, sealed by the one envelope in core.
pub(crate) fn seal(event: &BusEvent, id: &EventId) -> Result<Outgoing> {
    let env = Envelope::seal(event, id).map_err(|e| ServerError::Internal(e.to_string()))?;
    Ok(Outgoing {
        topic: env.topic,
        msg_id: env.id,
        payload: env.payload.into(),
    })
}

impl App {
    pub(crate) async fn publish_event(&self, event: BusEvent, id: EventId) -> Result<()> {
        self.publish_events(vec![(event, id)]).await
    }

    /// Publishes several events in one bus call (one round trip).
    pub(crate) async fn publish_events(&self, events: Vec<(BusEvent, EventId)>) -> Result<()> {
        let mut out = Vec::with_capacity(events.len());
        for (event, id) in events {
            out.push(seal(&event, &id)?);
        }
        if !out.is_empty() {
            metrics::counter!(crate::metrics::BUS_EVENTS).increment(out.len() as u64);
            self.bus.publish(out).await?;
        }
        Ok(())
    }

    /// A device acknowledged delivery: retention may now drop `none` messages.
    /// Takes every ack a connection has queued at once: one event per
    /// conversation, all in one bus call, not one round trip per message.
    pub async fn delivered(
        &self,
        user: UserId,
        device: &DeviceId,
        acks: BTreeMap<ConvId, Vec<Seq>>,
    ) -> Result<()> {
        let at = now_ms();
        let events = acks
            .into_iter()
            .filter(|(_, seqs)| !seqs.is_empty())
            .map(|(conv, seqs)| {
                let id = EventId::Delivered {
                    user,
                    device: device.clone(),
                    conv: conv.clone(),
                    first: seqs[0],
                    at,
                };
                let event = BusEvent::Delivered {
                    user,
                    device: device.clone(),
                    conv,
                    seqs,
                };
                (event, id)
            })
            .collect();
        self.publish_events(events).await
    }

    /// A device came online or went offline (topic `presence`).
    pub async fn presence(
        &self,
        user: UserId,
        device: &DeviceId,
        online: bool,
        reason: Option<&str>,
    ) -> Result<()> {
        let at = now_ms();
        let p = Presence {
            user,
            device: device.clone(),
            online,
            node: self.cfg.node.clone(),
            at,
            reason: reason.map(Into::into),
        };
        let id = EventId::Presence {
            user,
            device: device.clone(),
            online,
            at,
            conn: self.hub.next_conn_id(),
        };
        self.publish_event(BusEvent::Presence(p), id).await
    }
}
