//! Presence: a device's online and offline changes become bus events
//! (`presence` topic), and the presence worker fans each out to the
//! user's direct contacts (docs/protocol.md §5.7: users who share only a
//! group get none; groups can be large).

use super::Events;
use super::delivery::{Delivery, Notice};
use crate::error::Result;
use magpie_core::{BusEvent, DeviceId, EventId, UserId, now_ms};
use magpie_store::Store;
use std::sync::Arc;

pub struct Presence {
    node: String,
    store: Store,
    events: Events,
    delivery: Arc<Delivery>,
}

impl Presence {
    pub fn new(node: String, store: Store, events: Events, delivery: Arc<Delivery>) -> Presence {
        Presence {
            node,
            store,
            events,
            delivery,
        }
    }

    /// Publishes that `device` of `user` came online or went offline here.
    pub async fn changed(
        &self,
        user: UserId,
        device: &DeviceId,
        online: bool,
        reason: Option<&str>,
    ) -> Result<()> {
        let at = now_ms();
        let p = magpie_core::Presence {
            user,
            device: device.clone(),
            online,
            node: self.node.clone(),
            at,
            reason: reason.map(Into::into),
        };
        let id = EventId::Presence {
            user,
            device: device.clone(),
            online,
            at,
            conn: self.delivery.hub.next_conn_id(),
        };
        self.events.publish(BusEvent::Presence(p), id).await
    }

    /// Tells every direct contact of the event's user (the presence worker).
    pub async fn fan_out(&self, p: &magpie_core::Presence) -> Result<()> {
        let notice = Notice::Presence {
            user: p.user,
            device: p.device.clone(),
            online: p.online,
            reason: p.reason.clone(),
        };
        for c in self.store.messages().conversations(p.user).await? {
            if c.peer != p.user {
                self.delivery.notify(c.peer, notice.clone()).await;
            }
        }
        Ok(())
    }
}
