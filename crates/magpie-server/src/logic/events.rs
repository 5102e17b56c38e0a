//! Publishing bus events other than messages (reads, deliveries, presence).

use crate::app::App;
use crate::error::{Result, ServerError};
use magpie_bus::Outgoing;
use magpie_core::{BusEvent, ConvId, DeviceId, Presence, Seq, UserId, now_ms};

impl App {
    pub(crate) async fn publish_event(&self, event: BusEvent, msg_id: String) -> Result<()> {
        let payload =
            serde_json::to_vec(&event).map_err(|e| ServerError::Internal(e.to_string()))?;
        self.bus
            .publish(vec![Outgoing {
                topic: event.topic().into_owned(),
                msg_id,
                payload: payload.into(),
            }])
            .await?;
        Ok(())
    }

    /// A device acknowledged delivery: retention may now drop `none` messages.
    pub async fn delivered(
        &self,
        user: UserId,
        device: &DeviceId,
        conv: ConvId,
        seqs: Vec<Seq>,
    ) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let id = format!("d:{user}:{device}:{conv}:{}:{}", seqs[0], now_ms());
        self.publish_event(
            BusEvent::Delivered {
                user,
                device: device.clone(),
                conv,
                seqs,
            },
            id,
        )
        .await
    }

    /// A device came online or went offline (the notes' online/offline events).
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
        let id = format!(
            "p:{user}:{device}:{online}:{at}:{}",
            self.hub.next_conn_id()
        );
        self.publish_event(BusEvent::Presence(p), id).await
    }
}
