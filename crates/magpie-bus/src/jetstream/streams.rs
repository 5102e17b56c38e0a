//! Setting up the partition streams and joining consumer groups on them:
//! the settings correctness depends on, and waiting for a replicated
//! stream's or consumer's leader so the first call finds someone to answer.

use super::{names, unavailable};
use crate::{BusError, Result};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use std::time::Duration;

/// Retention of a stream this backend creates (operators may change it).
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// JetStream's de-duplication window for `Nats-Msg-Id`.
pub(super) const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long opening waits for a new stream (or a joiner for a new
/// consumer group) to have a leader.
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// The stream metadata key recording the partition count.
const PARTITIONS_KEY: &str = "magpie_partitions";

/// Creates partition stream `name`, or checks an existing one: limits
/// retention on file storage (work-queue or interest retention would delete
/// an event once one group acked it, and neither can be changed in place),
/// the subjects and duplicate window correctness needs, and the same
/// partition count.
pub(super) async fn ensure_stream(
    js: &async_nats::jetstream::Context,
    name: &str,
    opts: &names::Options,
) -> Result<stream::Stream> {
    let wanted = stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{name}.>")],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        max_age: MAX_AGE,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: opts.replicas,
        metadata: [(PARTITIONS_KEY.to_string(), opts.partitions.to_string())].into(),
        ..Default::default()
    };
    // A replicated stream's creation can fail on one member for a moment
    // ("error creating store for stream", 10049, seen while another stream
    // of the account was being deleted): two more tries before giving up.
    let mut tries = 0;
    let stream = loop {
        match js.get_or_create_stream(wanted.clone()).await {
            Ok(s) => break s,
            Err(e) if tries < 2 => {
                tries += 1;
                tracing::warn!(stream = name, error = %e, "creating the stream failed; retrying");
                tokio::time::sleep(Duration::from_millis(250 * tries)).await;
            }
            Err(e) => return Err(unavailable("creating the stream", e)),
        }
    };
    let found = stream.cached_info().config.clone();
    if found.retention != RetentionPolicy::Limits || found.storage != StorageType::File {
        return Err(BusError::Config(format!(
            "stream {name:?} exists without limits retention on file storage"
        )));
    }
    let recorded = found.metadata.get(PARTITIONS_KEY);
    if recorded.is_some_and(|p| *p != opts.partitions.to_string()) {
        return Err(BusError::Config(format!(
            "stream {name:?} belongs to a bus of {} partitions, not {}: keys would change partitions",
            recorded.map_or("?", |p| p.as_str()),
            opts.partitions
        )));
    }
    if found.num_replicas != opts.replicas {
        tracing::warn!(
            stream = name,
            found = found.num_replicas,
            configured = opts.replicas,
            "the stream keeps the replica count it was given"
        );
    }
    // Update only what correctness needs; max_age and replicas stay as an
    // operator may have tuned them.
    if found.subjects == wanted.subjects
        && found.duplicate_window == DUPLICATE_WINDOW
        && recorded.is_some()
    {
        return Ok(stream);
    }
    let mut metadata = found.metadata.clone();
    metadata.insert(PARTITIONS_KEY.to_string(), opts.partitions.to_string());
    let update = stream::Config {
        subjects: wanted.subjects,
        duplicate_window: DUPLICATE_WINDOW,
        metadata,
        ..found
    };
    js.update_stream(update)
        .await
        .map_err(|e| unavailable("updating the stream", e))?;
    js.get_stream(name)
        .await
        .map_err(|e| unavailable("reading the stream", e))
}

/// Waits until a replicated stream has elected its leader, so the first
/// publish finds someone to answer it (a single server's stream has no
/// cluster and is ready at once).
pub(super) async fn wait_for_leader(stream: &mut stream::Stream, name: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    loop {
        let info = stream
            .info()
            .await
            .map_err(|e| unavailable("reading the stream", e))?;
        if info.cluster.as_ref().is_none_or(|c| c.leader.is_some()) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(unavailable(
                "opening the stream",
                format!("{name} has no leader"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Joins (creating, or widening to more topics) the durable consumer of
/// `group` on partition stream `stream_name`, and waits for its leader: a
/// replicated consumer elects one of its own, and until it has one pull
/// requests find no responder.
pub(super) async fn join_group(
    stream: &stream::Stream,
    stream_name: &str,
    group: &str,
    topics: &[&str],
    ack_wait: Duration,
) -> Result<PullConsumer> {
    let mut filters = topics
        .iter()
        .map(|t| names::subject(stream_name, t))
        .collect::<Result<Vec<_>>>()?;
    filters.sort();
    filters.dedup();
    // Without a filter a JetStream consumer sees the whole stream.
    if filters.is_empty() {
        return Err(BusError::Config(format!("group {group:?} has no topics")));
    }
    let durable = names::durable_name(group);
    let config = pull::Config {
        durable_name: Some(durable.clone()),
        filter_subjects: filters.clone(),
        ack_policy: AckPolicy::Explicit,
        ack_wait,
        deliver_policy: DeliverPolicy::All,
        // The worker runner dead-letters by `attempt` itself.
        max_deliver: -1,
        // In flight is bounded by what callers fetch; a server cap would
        // make fetch come back empty while events are ready.
        max_ack_pending: -1,
        ..Default::default()
    };
    let mut pull = stream
        .get_or_create_consumer(&durable, config.clone())
        .await
        .map_err(|e| unavailable("joining the consumer group", e))?;
    let found = &pull.cached_info().config;
    let mut have = found.filter_subjects.clone();
    if !found.filter_subject.is_empty() {
        have.push(found.filter_subject.clone());
    }
    let missing = filters.iter().any(|f| !have.contains(f));
    // A joiner with more topics widens the group, like the embedded
    // backend; ack_wait follows the latest joiner.
    if missing || found.ack_wait != ack_wait {
        have.extend(filters);
        have.sort();
        have.dedup();
        let widened = pull::Config {
            filter_subjects: have,
            ..config
        };
        pull = stream
            .update_consumer(widened)
            .await
            .map_err(|e| unavailable("updating the consumer group", e))?;
    }
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    loop {
        let info = pull
            .info()
            .await
            .map_err(|e| unavailable("reading the consumer group", e))?;
        if info.cluster.as_ref().is_none_or(|c| c.leader.is_some()) {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(unavailable("joining the consumer group", "no leader"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(pull)
}
