//! Which broadcast topics this node listens to: a super group's topic while
//! members of the group are connected here, a live room's while it has
//! viewers here, no others. A broadcast then costs work on the nodes with
//! an audience only, instead of on every connection node (ARCHITECTURE.md,
//! "super groups").
//!
//! Invariant: the local indexes (`group_index.rs`, `room_index.rs`) are the
//! truth; a subscription follows them. Every change that can empty or fill
//! an index entry calls [`Delivery::reconcile`] for its topic, which reads
//! the index again at each decision, so concurrent changes cannot leave a
//! topic unsubscribed while it has an audience (nor subscribed for long
//! without one). A registration awaits its reconciles before the client is
//! welcomed, so no broadcast meant for it is published before this node
//! listens. Frames of every subscription reach the relay loop
//! (`relay.rs`) through one bounded channel: a loop that falls behind
//! leaves frames in the subscriptions, whose relay reports the overflow as
//! a gap (clients resync), instead of queueing without limit here.

use super::Delivery;
use magpie_bus::{RelayEvent, RelaySubscription};
use magpie_core::{GroupId, group_topic, room_topic};
use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// Broadcast frames waiting for the relay loop.
const INBOX: usize = 1024;

/// The node's broadcast subscriptions.
pub(super) struct Interest {
    /// Topic → the task forwarding that subscription's frames.
    active: Mutex<HashMap<String, AbortHandle>>,
    /// Where the forwarding tasks put frames and gaps.
    events: mpsc::Sender<RelayEvent>,
    /// The relay loop's end, taken once by `run_relay`.
    pub(super) inbox: Mutex<Option<mpsc::Receiver<RelayEvent>>>,
}

impl Interest {
    pub(super) fn new() -> Interest {
        let (events, inbox) = mpsc::channel(INBOX);
        Interest {
            active: Mutex::default(),
            events,
            inbox: Mutex::new(Some(inbox)),
        }
    }

    /// Topics subscribed to now.
    pub(super) fn topics(&self) -> Vec<String> {
        self.active.lock().keys().cloned().collect()
    }

    /// Stops every subscription (shutdown).
    pub(super) fn stop_all(&self) {
        for (_, task) in self.active.lock().drain() {
            task.abort();
        }
    }
}

impl Delivery {
    /// Subscribes to the broadcast topic of `of` or drops its subscription,
    /// whichever the local indexes say now (module docs).
    async fn reconcile(&self, of: Audience<'_>) {
        if !self.cfg.cluster.has("conn") {
            return;
        }
        let topic = of.topic();
        if !self.has_audience(&of) {
            if let Some(task) = self.interest.active.lock().remove(&topic) {
                task.abort();
            }
            return;
        }
        if self.interest.active.lock().contains_key(&topic) {
            return;
        }
        let sub = match self.relay.subscribe(&topic).await {
            Ok(sub) => sub,
            Err(e) => {
                // Its audience misses pushes until the next change: say so.
                tracing::warn!(error = %e, topic, "broadcast subscription failed");
                let _ = self
                    .interest
                    .events
                    .send(RelayEvent::Gap { from: None })
                    .await;
                return;
            }
        };
        // Decide again: the audience may have left while we subscribed.
        let mut active = self.interest.active.lock();
        if !self.has_audience(&of) || active.contains_key(&topic) {
            return;
        }
        let task = tokio::spawn(forward(sub, self.interest.events.clone()));
        active.insert(topic, task.abort_handle());
    }

    /// Reconciles the topics of these groups, all at once: a user's first
    /// connection here may bring many groups, and each subscription may
    /// wait for a round trip to the relay's server.
    pub(super) async fn reconcile_groups(&self, groups: Vec<GroupId>) {
        let all = groups
            .into_iter()
            .map(|g| self.reconcile(Audience::Group(g)));
        futures_util::future::join_all(all).await;
    }

    /// Reconciles a room's topic.
    pub async fn reconcile_room(&self, room: &str) {
        self.reconcile(Audience::Room(room)).await;
    }

    /// Whether the indexes here hold an audience for `of`.
    fn has_audience(&self, of: &Audience<'_>) -> bool {
        match of {
            Audience::Group(g) => self.groups.has_group(*g),
            Audience::Room(room) => self.rooms.has_room(room),
        }
    }

    /// The broadcast topics this node listens to now (tests, metrics).
    pub fn broadcast_topics(&self) -> Vec<String> {
        self.interest.topics()
    }
}

/// Whose broadcasts a topic carries.
enum Audience<'a> {
    Group(GroupId),
    Room(&'a str),
}

impl Audience<'_> {
    fn topic(&self) -> String {
        match self {
            Audience::Group(g) => group_topic(*g),
            Audience::Room(room) => room_topic(room),
        }
    }
}

/// Forwards one subscription's events to the relay loop until either ends.
async fn forward(mut sub: RelaySubscription, to: mpsc::Sender<RelayEvent>) {
    while let Some(event) = sub.next().await {
        if to.send(event).await.is_err() {
            return;
        }
    }
}
