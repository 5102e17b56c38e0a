//! The send path's front half: validate, de-duplicate by the fast path,
//! then hand the checked messages to the node's pipeline
//! (`pipeline.rs`), which makes them durable, answers and pushes.
//!
//! The sender's default persistence comes from the caller (a session holds
//! its device's settings), not from a store read per send.

use super::Messaging;
use crate::error::{Result, ServerError};
use crate::metrics::meters;
use magpie_core::{
    Accepted, ClientMsgId, ConvId, DeviceId, GroupId, NewMessage, Persistence, UserId, now_ms,
};

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

impl Messaging {
    /// Sends `inputs` from `from` (whose `device`, if any, is excluded from
    /// the echo to the sender's own devices); `persistence` is the sender's
    /// default. One result per input, in order.
    pub async fn send_batch(
        &self,
        from: UserId,
        device: Option<&DeviceId>,
        persistence: Persistence,
        inputs: Vec<SendInput>,
    ) -> Vec<Result<Accepted>> {
        let mut results: Vec<Option<Result<Accepted>>> = (0..inputs.len()).map(|_| None).collect();
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
        // Group senders are checked by the store, inside the transaction
        // that stores the message (membership, mute, dissolution): one
        // check, under the locks, and a retry of a message accepted before
        // a mute still answers with the original.
        for (i, input) in inputs.into_iter().enumerate() {
            let hit = known.get(i).cloned().flatten();
            match self.prepare(from, input, hit, persistence).await {
                Ok(Prepared::Known(acc)) => results[i] = Some(Ok(acc)),
                Ok(Prepared::New(nm)) => {
                    fresh.push(nm);
                    fresh_idx.push(i);
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if !fresh.is_empty() {
            let outcomes = self.pipeline.submit(device, fresh).await;
            for (i, outcome) in fresh_idx.into_iter().zip(outcomes) {
                results[i] = Some(outcome);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ServerError::Internal("send result missing".into()))))
            .collect()
    }

    /// Sends one message (HTTP and the internal API), with the sender's
    /// stored default persistence.
    pub async fn send_one(
        &self,
        from: UserId,
        device: Option<&DeviceId>,
        input: SendInput,
    ) -> Result<Accepted> {
        let persistence = self
            .store
            .accounts()
            .get_settings(from, device)
            .await?
            .persistence;
        let mut results = self
            .send_batch(from, device, persistence, vec![input])
            .await;
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
    ) -> Result<Prepared> {
        if input.body.len() > self.cfg.limits.max_frame_bytes {
            return Err(ServerError::TooLarge("body too large".into()));
        }
        if input.to.0 < 0 || input.group.is_some_and(|g| g.0 <= 0) {
            return Err(ServerError::bad_field("to, group: positive ids"));
        }
        let (conv, persistence) = match input.group {
            Some(_) if !input.to.is_unset() => {
                return Err(ServerError::bad_field("give either to or group, not both"));
            }
            Some(g) => {
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
            None if !self.users.exists(input.to).await? => {
                return Err(ServerError::UnknownRecipient(input.to.0));
            }
            None => (
                ConvId::direct(from, input.to),
                input.persistence.unwrap_or(default_persistence),
            ),
        };
        if let Some(mut acc) = known {
            acc.duplicate = true;
            meters().duplicates.increment(1);
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
}

enum Prepared {
    Known(Accepted),
    New(NewMessage),
}
