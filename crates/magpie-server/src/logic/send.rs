//! The send path: validate, de-duplicate, make durable, acknowledge, push.
//!
//! A batch of sends (all queued requests of one connection, or one HTTP
//! call) costs one store transaction and one bus append, not one per
//! message.

use crate::app::App;
use crate::error::{Result, ServerError};
use crate::metrics as m;
use magpie_bus::Outgoing;
use magpie_core::{
    Accepted, BusEvent, ClientMsgId, ConvId, DeviceId, GroupId, Message, NewMessage, Persistence,
    UserId, now_ms,
};
use std::collections::HashSet;
use std::sync::Arc;

/// One message to send, as the client gave it.
#[derive(Debug, Clone)]
pub struct SendInput {
    /// The receiver of a direct message (0 for a group message).
    pub to: UserId,
    pub cmid: ClientMsgId,
    pub body: String,
    pub persistence: Option<Persistence>,
    /// The group of a group message.
    pub group: Option<GroupId>,
}

impl App {
    /// Sends `inputs` from `from` (whose `device`, if any, is excluded from
    /// the echo to the sender's own devices). One result per input, in order.
    pub async fn send_batch(
        &self,
        from: UserId,
        device: Option<&DeviceId>,
        inputs: Vec<SendInput>,
    ) -> Vec<Result<Accepted>> {
        let mut results: Vec<Option<Result<Accepted>>> = (0..inputs.len()).map(|_| None).collect();
        let default_persistence = match self.store.get_settings(from, device).await {
            Ok(s) => s.persistence,
            Err(e) => {
                let msg = e.to_string();
                return inputs
                    .iter()
                    .map(|_| Err(ServerError::Unavailable(msg.clone())))
                    .collect();
            }
        };
        // The fast path for the whole batch in one round trip; if the state
        // is unreachable, the store's durable key still answers.
        let cmids: Vec<ClientMsgId> = inputs.iter().map(|i| i.cmid).collect();
        let known = self
            .state
            .idem_get_many(from, &cmids)
            .await
            .unwrap_or_default();
        let mut fresh = Vec::new();
        let mut fresh_idx = Vec::new();
        // Groups this batch may send to, checked once per batch, not per
        // message (the store checks again inside its transaction).
        let mut allowed = HashSet::new();
        for (i, input) in inputs.into_iter().enumerate() {
            let hit = known.get(i).cloned().flatten();
            match self
                .prepare(from, input, hit, default_persistence, &mut allowed)
                .await
            {
                Ok(Prepared::Known(acc)) => results[i] = Some(Ok(acc)),
                Ok(Prepared::New(nm)) => {
                    fresh.push(nm);
                    fresh_idx.push(i);
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if !fresh.is_empty() {
            let outcome = self.commit(fresh, device).await;
            match outcome {
                Ok(accepted) => {
                    for (i, acc) in fresh_idx.into_iter().zip(accepted) {
                        results[i] = Some(Ok(acc));
                    }
                }
                Err(e) => {
                    // Whatever failed (store or bus), the client's answer is
                    // the same: not accepted, retry with the same id.
                    let msg = e.to_string();
                    for i in fresh_idx {
                        results[i] = Some(Err(ServerError::Unavailable(msg.clone())));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ServerError::Internal("send result missing".into()))))
            .collect()
    }

    /// Sends one message (HTTP and the internal API).
    pub async fn send_one(
        &self,
        from: UserId,
        device: Option<&DeviceId>,
        input: SendInput,
    ) -> Result<Accepted> {
        let mut results = self.send_batch(from, device, vec![input]).await;
        results
            .pop()
            .unwrap_or_else(|| Err(ServerError::Internal("send result missing".into())))
    }

    async fn prepare(
        &self,
        from: UserId,
        input: SendInput,
        known: Option<Accepted>,
        default_persistence: Persistence,
        allowed: &mut HashSet<GroupId>,
    ) -> Result<Prepared> {
        if input.body.len() > self.cfg.limits.max_frame_bytes {
            return Err(ServerError::BadRequest(
                magpie_proto::ErrorCode::FrameTooLarge,
                "body too large".into(),
            ));
        }
        let (conv, persistence) = match input.group {
            Some(_) if !input.to.is_unset() => {
                return Err(ServerError::bad_field("give either to or group, not both"));
            }
            Some(g) => {
                if !allowed.contains(&g) {
                    self.check_group_sender(g, from).await?;
                    allowed.insert(g);
                }
                // Read diffusion: one copy for every member, so per-receiver
                // levels (none, offline) do not apply; days:N does.
                let p = match input.persistence.unwrap_or(default_persistence) {
                    p @ Persistence::Days(_) => p,
                    _ => Persistence::Forever,
                };
                (ConvId::group(g), p)
            }
            // Absent and 0 are the same on the wire: neither names anyone.
            None if input.to.is_unset() => {
                return Err(ServerError::bad_field("to: required (or group)"));
            }
            None if !self.user_exists(input.to).await? => {
                return Err(ServerError::UnknownRecipient(input.to.0));
            }
            None => (
                ConvId::direct(from, input.to),
                input.persistence.unwrap_or(default_persistence),
            ),
        };
        if let Some(mut acc) = known {
            acc.duplicate = true;
            metrics::counter!(m::DUPLICATES).increment(1);
            return Ok(Prepared::Known(acc));
        }
        Ok(Prepared::New(NewMessage {
            server_id: self.ids.next(),
            conv,
            from,
            to: input.to,
            cmid: input.cmid,
            body: input.body,
            persistence,
            sent_at: now_ms(),
        }))
    }

    /// Store, then bus, then acknowledge; then push. A duplicate found by the
    /// store (the durable key) is re-published: the first attempt may have
    /// died between the store and the bus, and the bus de-duplicates by id.
    async fn commit(
        &self,
        fresh: Vec<NewMessage>,
        origin: Option<&DeviceId>,
    ) -> Result<Vec<Accepted>> {
        let originals = fresh.clone();
        let accepted = self.store.accept(fresh).await?;
        let mut items: Vec<(Accepted, Message)> = Vec::with_capacity(accepted.len());
        for (nm, acc) in originals.into_iter().zip(&accepted) {
            let msg = if acc.duplicate {
                // The original message: re-read so the event carries its body.
                let orig = self
                    .store
                    .messages_after(nm.from, &acc.conv, acc.seq - 1, 1)
                    .await?;
                match orig.into_iter().next() {
                    Some(orig) if orig.seq == acc.seq => orig,
                    _ => continue, // removed by retention: nothing left to deliver
                }
            } else {
                Message::from_new(nm, acc.seq)
            };
            items.push((acc.clone(), msg));
        }
        let mut events = Vec::with_capacity(items.len());
        for (_, msg) in &items {
            let event = BusEvent::Message { msg: msg.clone() };
            let payload =
                serde_json::to_vec(&event).map_err(|e| ServerError::Internal(e.to_string()))?;
            events.push(Outgoing {
                topic: event.topic().into_owned(),
                msg_id: format!("m:{}", msg.server_id),
                payload: payload.into(),
            });
        }
        if !events.is_empty() {
            metrics::counter!(m::BUS_EVENTS).increment(events.len() as u64);
            if let Err(e) = self.bus.publish(events.clone()).await {
                // Stored but not published: the sender retries, and so do we.
                self.republish_later(events);
                return Err(e.into());
            }
        }
        let ttl = self.cfg.limits.idempotency_ttl_secs * 1000;
        // Fast path only (one pipeline): on failure the durable key still answers.
        if let Some((_, first)) = items.first() {
            let entries: Vec<(ClientMsgId, Accepted)> = items
                .iter()
                .map(|(acc, msg)| (msg.cmid, acc.clone()))
                .collect();
            let _ = self.state.idem_put_many(first.from, &entries, ttl).await;
        }
        // A duplicate found by the store is pushed again as well: the first
        // attempt failed before its acknowledgement, perhaps before its push,
        // and a receiver with no later message would see no gap to sync.
        // Devices that already have it drop the copy by sequence.
        let fresh = items.iter().filter(|(acc, _)| !acc.duplicate).count();
        metrics::counter!(m::ACCEPTED).increment(fresh as u64);
        // Rows the store wrote: the body, plus one box row per party of a
        // direct message; a group message is its body alone (read diffusion).
        let rows: u64 = items
            .iter()
            .filter(|(acc, _)| !acc.duplicate)
            .map(|(_, m)| match m.conv.group_id() {
                Some(_) => 1,
                None if m.from == m.to => 2,
                None => 3,
            })
            .sum();
        metrics::counter!(m::STORE_ROWS).increment(rows);
        let to_push: Vec<Arc<Message>> = items.into_iter().map(|(_, m)| Arc::new(m)).collect();
        self.push_messages(&to_push, origin).await;
        Ok(accepted)
    }
}

enum Prepared {
    Known(Accepted),
    New(NewMessage),
}
