//! The send path's front half: validate, de-duplicate by the fast path,
//! then hand the checked messages to the node's pipeline
//! (`pipeline.rs`), which makes them durable, answers and pushes.
//!
//! The sender's default persistence comes from the caller (a session holds
//! its device's settings), not from a store read per send.

use super::Messaging;
use crate::error::{Result, ServerError};
use crate::metrics::meters;
use crate::services::trace::{Hop, HopKind};
use magpie_core::{
    Accepted, ChainLink, ClientMsgId, ClientSettings, ConvId, DeviceId, GroupId, MessageMeta,
    NewMessage, Persistence, TraceContext, UserId, now_ms,
};
use std::sync::Arc;
use tracing::Instrument;

/// What a send takes from its sender's settings (the device's, else the
/// user's): the persistence an input does not name, and whether the
/// message may be indexed for search (docs/search.md), fixed at acceptance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendDefaults {
    pub persistence: Persistence,
    pub search: bool,
}

impl From<ClientSettings> for SendDefaults {
    fn from(s: ClientSettings) -> Self {
        SendDefaults {
            persistence: s.persistence,
            search: s.search,
        }
    }
}

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
    /// The message's link in its device's ordering chain (`chain.rs`).
    pub chain: Option<ChainLink>,
    /// The client's trace context, if it sent a valid one.
    pub trace: Option<TraceContext>,
    /// The client asked that this message's trace be sampled.
    pub sample: bool,
    /// What it replies to, edits or recalls, as the client named it
    /// (`revise.rs`); checked before it is stored.
    pub refs: Option<Box<MessageMeta>>,
}

impl Messaging {
    /// Sends `inputs` from `from` (whose `device`, if any, is excluded from
    /// the echo to the sender's own devices), with its sender's `defaults`.
    /// One result per input, in order.
    ///
    /// Chained inputs go their own way (`chain.rs`), each held until its
    /// turn; a batch without one (the common case) takes the plain path
    /// alone and never touches the chain state.
    pub async fn send_batch(
        &self,
        from: UserId,
        device: Option<&DeviceId>,
        defaults: SendDefaults,
        inputs: Vec<SendInput>,
    ) -> Vec<Result<Accepted>> {
        if inputs.iter().all(|i| i.chain.is_none()) {
            return self.send_plain(from, device, defaults, inputs).await;
        }
        let mut plain = Vec::new();
        let mut plain_idx = Vec::new();
        let mut chained = Vec::new();
        let mut chained_idx = Vec::new();
        for (i, mut input) in inputs.into_iter().enumerate() {
            match input.chain.take() {
                None => {
                    plain.push(input);
                    plain_idx.push(i);
                }
                Some(link) => {
                    chained.push(async move {
                        let Some(device) = device else {
                            return Err(ServerError::bad_field("chain: only on sends of a device"));
                        };
                        self.send_chained(from, device, defaults, input, link).await
                    });
                    chained_idx.push(i);
                }
            }
        }
        let n = plain_idx.len() + chained_idx.len();
        let (plain_out, chained_out) = tokio::join!(
            async {
                if plain.is_empty() {
                    Vec::new()
                } else {
                    self.send_plain(from, device, defaults, plain).await
                }
            },
            futures_util::future::join_all(chained)
        );
        let mut results: Vec<Option<Result<Accepted>>> = (0..n).map(|_| None).collect();
        for (i, r) in plain_idx
            .into_iter()
            .zip(plain_out)
            .chain(chained_idx.into_iter().zip(chained_out))
        {
            results[i] = Some(r);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ServerError::Internal("send result missing".into()))))
            .collect()
    }

    /// Sends un-chained inputs (a chained one's link is ignored here): the
    /// idempotency fast path for the batch, the checks, the pipeline.
    pub(super) async fn send_plain(
        &self,
        from: UserId,
        device: Option<&DeviceId>,
        defaults: SendDefaults,
        inputs: Vec<SendInput>,
    ) -> Vec<Result<Accepted>> {
        let mut results: Vec<Option<Result<Accepted>>> = (0..inputs.len()).map(|_| None).collect();
        // The fast path for the whole batch in one round trip; if the state
        // is unreachable, the store's durable key still answers.
        let cmids: Vec<ClientMsgId> = inputs.iter().map(|i| i.cmid).collect();
        let started = std::time::Instant::now();
        let known = self
            .state
            .idem_get_many(from, &cmids)
            .await
            .unwrap_or_default();
        meters()
            .stage_idempotency
            .record(started.elapsed().as_secs_f64());
        let dev: Option<Arc<str>> = device
            .filter(|_| self.traces.enabled())
            .map(|d| d.as_str().into());
        // The `accepted` hops (none when traces go nowhere).
        let mut hops = self.traces.enabled().then(Vec::new);
        let mut fresh = Vec::new();
        let mut fresh_idx = Vec::new();
        // Group senders are checked by the store, inside the transaction
        // that stores the message (membership, mute, dissolution): one
        // check, under the locks, and a retry of a message accepted before
        // a mute still answers with the original.
        // Which messages start their own trace (no client context).
        let root_trace: Vec<bool> = inputs.iter().map(|i| i.trace.is_none()).collect();
        for (i, input) in inputs.into_iter().enumerate() {
            let hit = known.get(i).cloned().flatten();
            match self.prepare(from, input, hit, defaults).await {
                Ok(Prepared::Known(acc)) => results[i] = Some(Ok(acc)),
                Ok(Prepared::New(nm)) => {
                    if let Some(hops) = &mut hops {
                        let mut hop = Hop::at(HopKind::Accepted, &nm.conv, 0)
                            .carrying(nm.trace)
                            .user(from)
                            .device(dev.as_ref());
                        hop.server_id = nm.server_id.0;
                        hop.root = root_trace[i];
                        hops.push(hop);
                    }
                    fresh.push(nm);
                    fresh_idx.push(i);
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if let Some(hops) = hops {
            self.traces.record_all(hops);
        }
        if !fresh.is_empty() {
            // Debug: free at the default filter; when an operator turns it
            // on (docs/observability.md "Logs"), a line logged while these
            // messages wait for the pipeline names their sender and traces
            // (its stages log each message themselves: `Traces::published`).
            let span = tracing::debug_span!(
                "accept",
                user = from.0,
                messages = fresh.len(),
                trace_id = tracing::field::Empty,
            );
            if !span.is_disabled() {
                let ids: Vec<String> = fresh
                    .iter()
                    .map(|m| {
                        m.trace
                            .unwrap_or_else(|| TraceContext::derived(m.server_id.0))
                            .trace_hex()
                    })
                    .collect();
                span.record("trace_id", ids.join(","));
            }
            let outcomes = self.pipeline.submit(device, fresh).instrument(span).await;
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
    /// stored settings.
    pub async fn send_one(
        &self,
        from: UserId,
        device: Option<&DeviceId>,
        input: SendInput,
    ) -> Result<Accepted> {
        let settings = self.store.accounts().get_settings(from, device).await?;
        let mut results = self
            .send_batch(from, device, settings.into(), vec![input])
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
        defaults: SendDefaults,
    ) -> Result<Prepared> {
        let default_persistence = defaults.persistence;
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
        let meta = match self.check_refs(from, &conv, &input).await {
            Ok(meta) => meta,
            Err(e) => return self.refused_unless_known(from, input.cmid, e).await,
        };
        // An edit or recall is not itself a searchable text: the message it
        // revises is re-indexed instead (docs/search.md).
        // Nor is a member event.
        let search = defaults.search
            && meta
                .as_ref()
                .is_none_or(|m| m.revises().is_none() && m.event.is_none());
        Ok(Prepared::New(NewMessage {
            trace: self.traces.decide(input.trace, input.sample),
            server_id: self.ids.next(),
            conv,
            from,
            to: input.to,
            cmid: input.cmid,
            body: input.body,
            persistence,
            sent_at: now_ms(),
            search,
            meta,
        }))
    }
}

pub(super) enum Prepared {
    Known(Accepted),
    New(NewMessage),
}
