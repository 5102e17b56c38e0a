//! Best-effort pushes to the devices that are online now.
//!
//! Routes are looked up once per batch for all users involved. Connections
//! on this node are reached through the local hub; connections on other
//! nodes through one `Deliver` event per node on that node's topic. A push
//! that fails is not an error: the message is durable and the device gets
//! it by resend or sync.

use crate::app::App;
use crate::conn::hub::{Outbound, Push};
use crate::metrics::{self as m, meters};
use magpie_bus::Outgoing;
use magpie_core::{BusEvent, DeliverPayload, DeviceId, EventId, GroupId, Message, UserId};
use magpie_proto::ServerFrame;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Remote pushes gathered per (node, item) before publishing them together.
/// Per remote node, per message (by index), the connections there.
type Remote = BTreeMap<String, BTreeMap<usize, Vec<(UserId, u64)>>>;
/// Messages per cross-node delivery event.
const DELIVER_MSGS: usize = 256;

/// Who a batch's messages go to.
#[derive(Default)]
struct Audience {
    /// Members of each small group of the batch.
    members: HashMap<GroupId, Vec<UserId>>,
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
    fn targets(&self, m: &Message) -> Vec<UserId> {
        match m.conv.group_id() {
            Some(g) => self.members.get(&g).cloned().unwrap_or_default(),
            None if m.from != m.to => vec![m.to, m.from],
            None => vec![m.to],
        }
    }
}

impl App {
    /// Pushes each message to every device of its receiver and to the
    /// sender's devices other than its origin (the one that sent it).
    /// Routes are looked up once for every user of the batch.
    pub(crate) async fn push_messages(&self, msgs: Vec<(Message, Option<DeviceId>)>) {
        if msgs.is_empty() {
            return;
        }
        let audience = self.audience(&msgs).await;
        // A super group's message is broadcast to the connection nodes
        // instead: no member list, no route lookup.
        let (broadcast, msgs): (Vec<_>, Vec<_>) =
            msgs.into_iter().partition(|(m, _)| audience.is_super(m));
        if !broadcast.is_empty() {
            self.broadcast(broadcast).await;
        }
        if msgs.is_empty() {
            return;
        }
        let mut users: Vec<UserId> = msgs.iter().flat_map(|(m, _)| audience.targets(m)).collect();
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
    /// group (read once per group), or the broadcast path for a super group.
    async fn audience(&self, msgs: &[(Message, Option<DeviceId>)]) -> Audience {
        let mut a = Audience::default();
        for (m, _) in msgs {
            if let Some(g) = m.conv.group_id()
                && !a.supers.contains_key(&g)
            {
                let size = match self.store.groups().group(g).await {
                    Ok(Some(info)) => info.members,
                    _ => 0,
                };
                let is_super = size > self.cfg.groups.super_threshold;
                a.supers.insert(g, is_super);
                if !is_super {
                    a.members.insert(g, self.group_member_ids(g).await);
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
    ) -> Remote {
        let mut pushed = 0u64;
        let mut stale = Vec::new();
        let mut remote = Remote::new();
        for (i, (push, origin)) in pushes.iter().enumerate() {
            let msg = &push.msg;
            for user in audience.targets(msg) {
                for route in routes.get(&user).into_iter().flatten() {
                    if user == msg.from && Some(&route.device) == origin.as_ref() {
                        continue;
                    }
                    if route.node != self.cfg.node {
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
    async fn push_elsewhere(&self, remote: Remote, pushes: &[(Arc<Push>, Option<DeviceId>)]) {
        let mut events = Vec::new();
        for (node, per_msg) in remote {
            let per_msg: Vec<_> = per_msg.into_iter().collect();
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
        self.publish_deliveries(events).await;
    }

    /// Sends one event frame to every online device of `user`.
    pub(crate) async fn push_frame(&self, user: UserId, frame: ServerFrame) {
        let local = Outbound::frame(&frame);
        self.push_user(user, local, || {
            Some(DeliverPayload::Frame {
                frame: String::from_utf8(frame.encode()).ok()?,
            })
        })
        .await
    }

    /// Tells every connection of `user` that their settings changed.
    pub(crate) async fn settings_changed(&self, user: UserId) {
        self.push_user(user, Outbound::Settings, || Some(DeliverPayload::Settings))
            .await
    }

    /// `local` to this node's connections of `user`, the payload `remote`
    /// makes to the other nodes holding one (made only if there are any).
    async fn push_user(
        &self,
        user: UserId,
        local: Outbound,
        remote: impl FnOnce() -> Option<DeliverPayload>,
    ) {
        meters().route_lookups.increment(1);
        let Ok(routes) = self.state.routes(&[user]).await else {
            return;
        };
        let mut nodes: BTreeMap<String, Vec<(UserId, u64)>> = BTreeMap::new();
        for route in routes.get(&user).into_iter().flatten() {
            if route.node == self.cfg.node {
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
        self.publish_deliveries(events.collect()).await;
    }

    /// One `GroupBroadcast` per super-group message, all in one bus call.
    async fn broadcast(&self, msgs: Vec<(Message, Option<DeviceId>)>) {
        meters().broadcasts.increment(msgs.len() as u64);
        let events = msgs
            .into_iter()
            .map(|(msg, origin)| {
                let id = EventId::Broadcast { msg: msg.server_id };
                (BusEvent::GroupBroadcast { msg, origin }, id)
            })
            .collect();
        if let Err(e) = self.publish_events(events).await {
            tracing::warn!(error = %e, "super-group broadcast not published; members will sync");
        }
    }

    /// Every member of a group (one paged read; empty if it fails: the
    /// members sync).
    async fn group_member_ids(&self, g: GroupId) -> Vec<UserId> {
        let mut out = Vec::new();
        let mut after = UserId(0);
        loop {
            match self.store.groups().members(g, after, 1000).await {
                Ok(page) if !page.is_empty() => {
                    after = page[page.len() - 1].user;
                    out.extend(page.into_iter().map(|m| m.user));
                }
                Ok(_) => return out,
                Err(e) => {
                    tracing::warn!(error = %e, group = %g, "member list failed; members will sync");
                    return out;
                }
            }
        }
    }

    /// A push to a connection of this node that does not exist means the
    /// route outlived it: the send path decides, after a failed push,
    /// whether the route is stale. Removes such routes, conditionally:
    /// only while they still name that connection here. A connection that
    /// is merely closing is left to its own clean-up.
    pub(crate) async fn drop_stale_routes(&self, failed: &[(UserId, u64)]) {
        let gone: Vec<(UserId, u64)> = failed
            .iter()
            .copied()
            .filter(|(u, c)| !self.hub.has(*u, *c))
            .collect();
        if gone.is_empty() {
            return;
        }
        let users: Vec<UserId> = gone.iter().map(|(u, _)| *u).collect();
        let Ok(routes) = self.state.routes(&users).await else {
            return;
        };
        for route in routes.values().flatten() {
            if route.node == self.cfg.node && gone.contains(&(route.user, route.conn)) {
                let removed = self
                    .state
                    .remove_route(route.user, &route.device, &route.node, route.conn)
                    .await;
                if matches!(removed, Ok(true)) {
                    metrics::counter!(m::STALE_ROUTES).increment(1);
                    tracing::debug!(user = %route.user, conn = route.conn, "stale route removed");
                }
            }
        }
    }

    async fn publish_deliveries(&self, events: Vec<(BusEvent, EventId)>) {
        if events.is_empty() {
            return;
        }
        let out: Vec<Outgoing> = events
            .iter()
            .filter_map(|(ev, id)| super::events::seal(ev, id).ok())
            .collect();
        meters().bus_events.increment(out.len() as u64);
        if let Err(e) = self.bus.publish(out).await {
            tracing::warn!(error = %e, "cross-node push not published; devices will sync");
        }
    }
}
