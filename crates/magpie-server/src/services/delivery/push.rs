//! Best-effort pushes to the devices that are online now.
//!
//! Routes are looked up once per batch for all users involved. Connections
//! on this node are reached through the local hub; connections on other
//! nodes through one `Deliver` event per node on that node's topic. A push
//! that fails is not an error: the message is durable and the device gets
//! it by resend or sync.

use super::hub::{Outbound, Push};
use super::members::Stamps;
use super::{ConnAddr, Delivery};
use crate::metrics::meters;
use crate::services::trace::{Hop, HopKind};
use magpie_core::{
    BusEvent, DeliverPayload, DeviceId, EventId, GroupId, GroupStamp, Message, RoomMessage, UserId,
};
use magpie_proto::ServerFrame;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Pushes for other nodes, gathered per (node, message) before publishing them together.
/// Per remote node, per message (by index), the connections there.
type ElsewhereTargets = BTreeMap<String, BTreeMap<usize, Vec<ConnAddr>>>;
/// Messages per cross-node delivery event.
const DELIVER_MSGS: usize = 256;

/// Who a batch's messages go to.
#[derive(Default)]
struct Audience {
    /// Members of each small group of the batch.
    members: HashMap<GroupId, Arc<[UserId]>>,
    /// Whether each group of the batch is a super group.
    supers: HashMap<GroupId, bool>,
}

impl Audience {
    fn is_super(&self, m: &Message) -> bool {
        m.conv
            .group_id()
            .is_some_and(|g| self.supers.get(&g).copied().unwrap_or(false))
    }

    /// Both parties of a direct message (once for a note to self), every
    /// member of a small group.
    fn targets(&self, m: &Message) -> Targets<'_> {
        match m.conv.group_id() {
            Some(g) => Targets::Members(self.members.get(&g).map_or(&[], |l| l)),
            None if m.from != m.to => Targets::Pair([m.to, m.from], 2),
            None => Targets::Pair([m.to, m.to], 1),
        }
    }
}

/// A message's receivers without an allocation per message: a group's
/// list, or the one or two parties of a direct message.
enum Targets<'a> {
    Members(&'a [UserId]),
    Pair([UserId; 2], usize),
}

impl Targets<'_> {
    fn as_slice(&self) -> &[UserId] {
        match self {
            Targets::Members(l) => l,
            Targets::Pair(p, n) => &p[..*n],
        }
    }
}

impl Delivery {
    /// Pushes each message to every device of its receiver and to the
    /// sender's devices other than its origin (the one that sent it).
    /// Routes are looked up once for every user of the batch. `stamps`:
    /// the membership each group's messages were accepted under
    /// (`members.rs`); a group without one is read from the store.
    pub async fn push_messages(&self, msgs: Vec<(Message, Option<DeviceId>)>, stamps: &Stamps) {
        if msgs.is_empty() {
            return;
        }
        let audience = self.audience(&msgs, stamps).await;
        // A super group's message is broadcast to the connection nodes
        // instead: no member list, no route lookup.
        let (broadcast, msgs): (Vec<_>, Vec<_>) =
            msgs.into_iter().partition(|(m, _)| audience.is_super(m));
        if !broadcast.is_empty() {
            self.broadcast(broadcast);
        }
        if msgs.is_empty() {
            return;
        }
        let mut users: Vec<UserId> = Vec::with_capacity(2 * msgs.len());
        for (m, _) in &msgs {
            users.extend_from_slice(audience.targets(m).as_slice());
        }
        users.sort();
        users.dedup();
        meters().route_lookups.increment(users.len() as u64);
        let routes = match self.state.routes(&users).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "route lookup failed; receivers will sync");
                return;
            }
        };
        let pushes: Vec<(Arc<Push>, Option<DeviceId>)> = msgs
            .into_iter()
            .map(|(m, origin)| (Push::new(m), origin))
            .collect();
        let remote = self.push_here(&pushes, &routes, &audience).await;
        self.push_elsewhere(remote, &pushes).await;
    }

    /// Who each group message of the batch goes to: the members of a small
    /// group (cached, `members.rs`), or the broadcast path for a super
    /// group. The size and membership version come with the acceptance; a
    /// group without them (a repeated duplicate) is read once.
    async fn audience(&self, msgs: &[(Message, Option<DeviceId>)], stamps: &Stamps) -> Audience {
        let mut a = Audience::default();
        for (m, _) in msgs {
            if let Some(g) = m.conv.group_id()
                && !a.supers.contains_key(&g)
            {
                let stamp = match stamps.get(&g) {
                    Some(s) => *s,
                    None => match self.store.groups().group(g).await {
                        Ok(Some(info)) => GroupStamp {
                            version: info.member_version,
                            members: info.members,
                        },
                        // Gone, or the store failed: no push; members sync.
                        _ => {
                            a.supers.insert(g, false);
                            continue;
                        }
                    },
                };
                let is_super = stamp.members > self.cfg.groups.super_threshold;
                a.supers.insert(g, is_super);
                if !is_super {
                    a.members.insert(g, self.members_at(g, stamp.version).await);
                }
            }
        }
        a
    }

    /// Delivers to this node's connections through the hub; returns what
    /// goes to other nodes. Routes naming a connection that is gone here
    /// are dropped.
    async fn push_here(
        &self,
        pushes: &[(Arc<Push>, Option<DeviceId>)],
        routes: &HashMap<UserId, Vec<magpie_store::Route>>,
        audience: &Audience,
    ) -> ElsewhereTargets {
        let mut pushed = 0u64;
        let mut stale = Vec::new();
        let mut remote = ElsewhereTargets::new();
        let tracing = self.traces.enabled();
        for (i, (push, origin)) in pushes.iter().enumerate() {
            let msg = &push.msg;
            for &user in audience.targets(msg).as_slice() {
                // The receiver of a direct message with no device online:
                // the answer to "why did Bob not get it" (he syncs later).
                if tracing
                    && user == msg.to
                    && msg.conv.group_id().is_none()
                    && routes.get(&user).is_none_or(|r| r.is_empty())
                {
                    self.traces
                        .record(Hop::of(HopKind::Offline, msg).user(user));
                }
                for route in routes.get(&user).into_iter().flatten() {
                    if user == msg.from && Some(&route.device) == origin.as_ref() {
                        continue;
                    }
                    if route.node != self.node() {
                        remote
                            .entry(route.node.clone())
                            .or_default()
                            .entry(i)
                            .or_default()
                            .push((user, route.conn));
                    } else if self
                        .hub
                        .deliver(user, route.conn, Outbound::Push(Arc::clone(push)))
                    {
                        pushed += 1;
                    } else {
                        stale.push((user, route.conn));
                    }
                }
            }
        }
        meters().pushed.increment(pushed);
        self.drop_stale_routes(&stale).await;
        remote
    }

    /// One event per node and batch (in chunks): each append to a log that
    /// syncs every append costs a sync.
    async fn push_elsewhere(
        &self,
        remote: ElsewhereTargets,
        pushes: &[(Arc<Push>, Option<DeviceId>)],
    ) {
        let mut events = Vec::new();
        for (node, per_msg) in remote {
            let per_msg: Vec<_> = per_msg.into_iter().collect();
            if self.traces.enabled() {
                let to: Arc<str> = node.as_str().into();
                for (i, _) in &per_msg {
                    let hop = Hop::of(HopKind::Forwarded, &pushes[*i].0.msg);
                    self.traces.record(hop.detail(to.clone()));
                }
            }
            for chunk in per_msg.chunks(DELIVER_MSGS) {
                let id = EventId::DeliverMessages {
                    node: node.clone(),
                    first: pushes[chunk[0].0].0.msg.server_id,
                    count: chunk.len(),
                };
                let msgs = chunk
                    .iter()
                    .map(|(i, targets)| (pushes[*i].0.msg.clone(), targets.clone()))
                    .collect();
                let event = BusEvent::Deliver {
                    node: node.clone(),
                    targets: Vec::new(),
                    payload: DeliverPayload::Msgs { msgs },
                };
                events.push((event, id));
            }
        }
        self.relay_events(events);
    }

    /// Sends one event frame to every online device of `user`.
    pub(super) async fn push_frame(&self, user: UserId, frame: ServerFrame) {
        self.push_frame_except(user, None, frame).await
    }

    /// Sends one event frame to every online device of `user` but `skip`.
    pub(super) async fn push_frame_except(
        &self,
        user: UserId,
        skip: Option<&DeviceId>,
        frame: ServerFrame,
    ) {
        let local = Outbound::frame(&frame);
        self.push_user(user, skip, local, || {
            Some(DeliverPayload::Frame {
                frame: String::from_utf8(frame.encode()).ok()?,
            })
        })
        .await
    }

    /// Tells every connection of `user` that their settings changed.
    pub async fn settings_changed(&self, user: UserId) {
        self.push_user(user, None, Outbound::Settings, || {
            Some(DeliverPayload::Settings)
        })
        .await
    }

    /// `local` to this node's connections of `user` (but `skip`'s), the
    /// payload `remote` makes to the other nodes holding one (made only if
    /// there are any).
    async fn push_user(
        &self,
        user: UserId,
        skip: Option<&DeviceId>,
        local: Outbound,
        remote: impl FnOnce() -> Option<DeliverPayload>,
    ) {
        meters().route_lookups.increment(1);
        let Ok(routes) = self.state.routes(&[user]).await else {
            return;
        };
        let mut nodes: BTreeMap<String, Vec<ConnAddr>> = BTreeMap::new();
        let routes = routes.get(&user).into_iter().flatten();
        for route in routes.filter(|r| skip != Some(&r.device)) {
            if route.node == self.node() {
                self.hub.deliver(user, route.conn, local.clone());
            } else {
                nodes
                    .entry(route.node.clone())
                    .or_default()
                    .push((user, route.conn));
            }
        }
        if nodes.is_empty() {
            return;
        }
        let Some(payload) = remote() else { return };
        self.relay_deliver(nodes, payload);
    }

    /// `local` to the listed connections on this node, the payload `remote`
    /// makes to those on other nodes (made only if there are any).
    pub(super) fn push_conns(
        &self,
        conns: &[(&str, ConnAddr)],
        local: Outbound,
        remote: impl FnOnce() -> Option<DeliverPayload>,
    ) {
        let mut nodes: BTreeMap<String, Vec<ConnAddr>> = BTreeMap::new();
        for &(node, (user, conn)) in conns {
            if node == self.node() {
                self.hub.deliver(user, conn, local.clone());
            } else {
                nodes
                    .entry(node.to_string())
                    .or_default()
                    .push((user, conn));
            }
        }
        if nodes.is_empty() {
            return;
        }
        if let Some(payload) = remote() {
            self.relay_deliver(nodes, payload);
        }
    }

    /// One `Deliver` per node over the relay, naming its connections.
    fn relay_deliver(&self, nodes: BTreeMap<String, Vec<ConnAddr>>, payload: DeliverPayload) {
        let events = nodes.into_iter().map(|(node, targets)| {
            let id = EventId::DeliverOther {
                node: node.clone(),
                nonce: self.ids.next().0 as u64,
            };
            let payload = payload.clone();
            (
                BusEvent::Deliver {
                    node,
                    targets,
                    payload,
                },
                id,
            )
        });
        self.relay_events(events.collect());
    }

    /// A live room's message to every connection node.
    pub fn broadcast_room(&self, msg: RoomMessage) {
        let id = EventId::Room { id: msg.id.clone() };
        self.relay_events(vec![(BusEvent::RoomBroadcast { msg }, id)]);
    }

    /// One `GroupBroadcast` per super-group message, all in one bus call.
    fn broadcast(&self, msgs: Vec<(Message, Option<DeviceId>)>) {
        meters().broadcasts.increment(msgs.len() as u64);
        let events = msgs
            .into_iter()
            .map(|(msg, origin)| {
                let id = EventId::Broadcast { msg: msg.server_id };
                (BusEvent::GroupBroadcast { msg, origin }, id)
            })
            .collect();
        self.relay_events(events);
    }
}
