//! Publishing to the partition streams: windows of sends whose acks are
//! awaited together, the answers of a replicated stream that is still
//! replicating a `msg_id` or electing a leader.

use super::{JetStreamBus, names, unavailable};
use crate::{BusBackend, BusError, Outgoing, Result};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use std::time::Duration;

/// Publishes sent before their acks are awaited. Bounding it (rather than
/// sending a whole huge batch) keeps the ack permits one call holds small.
const PUBLISH_WINDOW: usize = 1024;
/// How long a publish keeps trying a stream that answers nothing (a
/// leader election takes a few seconds at most).
const NO_STREAM_GRACE: Duration = Duration::from_secs(5);

/// Why one try at publishing a partition's events failed.
enum Attempt {
    /// Nothing answered and nothing was acknowledged: worth another try.
    NoStream(BusError),
    Failed(BusError),
}

impl JetStreamBus {
    /// Publishes one partition's events in order (`publish_partition_once`).
    /// A stream that answers nothing yet (just created, or electing a
    /// leader after a server's loss: "no responders") is tried again for a
    /// short while when nothing of this call was acknowledged: events that
    /// did reach it meanwhile are answered as duplicates by their `msg_id`.
    pub(super) async fn publish_partition(
        &self,
        i: u32,
        events: Vec<(usize, Outgoing)>,
    ) -> Result<Vec<(usize, u64)>> {
        let deadline = tokio::time::Instant::now() + NO_STREAM_GRACE;
        loop {
            match self.publish_partition_once(i, &events).await {
                Ok(offsets) => return Ok(offsets),
                Err(Attempt::NoStream(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(Attempt::NoStream(e) | Attempt::Failed(e)) => return Err(e),
            }
        }
    }

    /// The whole window is sent, then its acks awaited (one round trip per
    /// window, not per event). Sends are awaited one by one, which keeps
    /// the window in order.
    async fn publish_partition_once(
        &self,
        i: u32,
        events: &[(usize, Outgoing)],
    ) -> std::result::Result<Vec<(usize, u64)>, Attempt> {
        let stream = &self.streams[i as usize].1;
        let subjects = events
            .iter()
            .map(|(_, e)| names::subject(stream, &e.topic))
            .collect::<Result<Vec<_>>>()
            .map_err(Attempt::Failed)?;
        let p = self.partitions();
        let mut offsets = Vec::with_capacity(events.len());
        let pairs: Vec<_> = events.iter().zip(subjects).collect();
        for window in pairs.chunks(PUBLISH_WINDOW) {
            let mut acks = Vec::with_capacity(window.len());
            for ((at, event), subject) in window {
                let mut msg = PublishMessage::build().payload(event.payload.clone());
                if !event.msg_id.is_empty() {
                    msg = msg.message_id(&event.msg_id);
                }
                let ack = self
                    .js
                    .send_publish(subject.clone(), msg)
                    .await
                    .map_err(|e| Attempt::Failed(unavailable("publishing", e)))?;
                acks.push((*at, ack));
            }
            let mut conflicts = Vec::new();
            for (k, (at, ack)) in acks.into_iter().enumerate() {
                // A duplicate's ack carries `duplicate: true` and the first
                // publish's sequence, which is the offset to return.
                match ack.await {
                    Ok(ack) => offsets.push((at, names::offset(ack.sequence, p, i))),
                    Err(e) if in_process(&e) => conflicts.push(k),
                    Err(e)
                        if offsets.is_empty() && e.kind() == PublishErrorKind::StreamNotFound =>
                    {
                        return Err(Attempt::NoStream(unavailable("publish ack", e)));
                    }
                    Err(e) => return Err(Attempt::Failed(unavailable("publish ack", e))),
                }
            }
            // A replicated stream refuses a `msg_id` whose first publish is
            // still being replicated. That one has been acked by now, so a
            // second try answers as a duplicate, with its offset.
            for k in conflicts {
                let ((at, event), subject) = &window[k];
                let seq = self
                    .publish_again(subject, event)
                    .await
                    .map_err(Attempt::Failed)?;
                offsets.push((*at, names::offset(seq, p, i)));
            }
        }
        Ok(offsets)
    }

    /// Publishes one event alone, retrying while its `msg_id` is "in
    /// process" (a few tries: the first publish is already acknowledged).
    async fn publish_again(&self, subject: &str, event: &Outgoing) -> Result<u64> {
        for _ in 0..50 {
            let msg = PublishMessage::build()
                .payload(event.payload.clone())
                .message_id(&event.msg_id);
            let ack = self
                .js
                .send_publish(subject.to_string(), msg)
                .await
                .map_err(|e| unavailable("publishing", e))?;
            match ack.await {
                Ok(ack) => return Ok(ack.sequence),
                Err(e) if in_process(&e) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(e) => return Err(unavailable("publish ack", e)),
            }
        }
        Err(unavailable("publishing", "a duplicate stayed in process"))
    }
}

/// Whether a publish failed only because an earlier publish of the same
/// `msg_id` is still being replicated (JetStream error 10158).
fn in_process(e: &async_nats::jetstream::context::PublishError) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|j| {
            j.error_code() == async_nats::jetstream::ErrorCode::STREAM_DUPLICATE_MESSAGE_CONFLICT
        })
}
