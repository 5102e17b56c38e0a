//! Delivered acks: a device's acknowledged pushes become `delivered`
//! events, one per conversation (the retention worker removes what the
//! `offline` persistence level keeps only until delivery).

use super::Messaging;
use crate::error::Result;
use magpie_core::{BusEvent, ConvId, DeviceId, EventId, Seq, UserId, now_ms};
use std::collections::BTreeMap;

impl Messaging {
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
        self.events.publish_all(events).await
    }
}
