//! Best-effort pushes to the devices that are online now.
//!
//! Routes are looked up once per batch for all users involved. Connections
//! on this node are reached through the local hub; connections on other
//! nodes through one `Deliver` event per node on that node's topic. A push
//! that fails is not an error: the message is durable and the device gets
//! it by resend or sync.

use crate::app::App;
use crate::conn::hub::Outbound;
use crate::metrics as m;
use magpie_bus::Outgoing;
use magpie_core::{BusEvent, DeliverPayload, DeviceId, GroupId, Message, UserId};
use magpie_proto::ServerFrame;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Remote pushes gathered per (node, item) before publishing them together.
type Remote = BTreeMap<(String, usize), Vec<(UserId, u64)>>;

impl App {
    /// Pushes each message to every device of its receiver and to the
    /// sender's devices other than `origin` (the one that sent it).
    pub(crate) async fn push_messages(&self, msgs: &[Arc<Message>], origin: Option<&DeviceId>) {
        if msgs.is_empty() {
            return;
        }
        // Who each message goes to: both parties of a direct message, every
        // member of a small group. A super group's message is broadcast to
        // the connection nodes instead: no member list, no route lookup.
        let mut members: HashMap<GroupId, Vec<UserId>> = HashMap::new();
        let mut supers: HashMap<GroupId, bool> = HashMap::new();
        for m in msgs {
            if let Some(g) = m.conv.group_id()
                && !supers.contains_key(&g)
            {
                let size = match self.store.group(g).await {
                    Ok(Some(info)) => info.members,
                    _ => 0,
                };
                let is_super = size > self.cfg.groups.super_threshold;
                supers.insert(g, is_super);
                if !is_super {
                    members.insert(g, self.group_member_ids(g).await);
                }
            }
        }
        let (broadcast, msgs): (Vec<&Arc<Message>>, Vec<&Arc<Message>>) = msgs
            .iter()
            .partition(|m| m.conv.group_id().is_some_and(|g| supers[&g]));
        if !broadcast.is_empty() {
            self.broadcast(&broadcast, origin).await;
        }
        if msgs.is_empty() {
            return;
        }
        let targets_of = |m: &Message| -> Vec<UserId> {
            match m.conv.group_id() {
                Some(g) => members.get(&g).cloned().unwrap_or_default(),
                None if m.from != m.to => vec![m.to, m.from],
                None => vec![m.to],
            }
        };
        let mut users: Vec<UserId> = msgs.iter().flat_map(|m| targets_of(m)).collect();
        users.sort();
        users.dedup();
        metrics::counter!(m::ROUTE_LOOKUPS).increment(users.len() as u64);
        let routes = match self.state.routes(&users).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "route lookup failed; receivers will sync");
                return;
            }
        };
        let mut pushed = 0u64;
        let mut stale = Vec::new();
        let mut remote = Remote::new();
        for (i, msg) in msgs.iter().enumerate() {
            for user in targets_of(msg) {
                for route in routes.get(&user).into_iter().flatten() {
                    if user == msg.from && Some(&route.device) == origin {
                        continue;
                    }
                    if route.node != self.cfg.node {
                        remote
                            .entry((route.node.clone(), i))
                            .or_default()
                            .push((user, route.conn));
                    } else if self
                        .hub
                        .deliver(user, route.conn, Outbound::Push(Arc::clone(msg)))
                    {
                        pushed += 1;
                    } else {
                        stale.push((user, route.conn));
                    }
                }
            }
        }
        metrics::counter!(m::PUSHED).increment(pushed);
        self.drop_stale_routes(&stale).await;
        let events = remote.into_iter().map(|((node, i), targets)| {
            let id = format!("x:{node}:{}", msgs[i].server_id);
            (
                BusEvent::Deliver {
                    node,
                    targets,
                    payload: DeliverPayload::Msg {
                        msg: (**msgs[i]).clone(),
                    },
                },
                id,
            )
        });
        self.publish_deliveries(events.collect()).await;
    }

    /// Sends one event frame to every online device of `user`.
    pub(crate) async fn push_frame(&self, user: UserId, frame: ServerFrame) {
        metrics::counter!(m::ROUTE_LOOKUPS).increment(1);
        let Ok(routes) = self.state.routes(&[user]).await else {
            return;
        };
        let mut remote: BTreeMap<String, Vec<(UserId, u64)>> = BTreeMap::new();
        for route in routes.get(&user).into_iter().flatten() {
            if route.node == self.cfg.node {
                self.hub
                    .deliver(user, route.conn, Outbound::Frame(frame.clone()));
            } else {
                remote
                    .entry(route.node.clone())
                    .or_default()
                    .push((user, route.conn));
            }
        }
        if remote.is_empty() {
            return;
        }
        let Ok(json) = serde_json::to_value(&frame) else {
            return;
        };
        let events = remote.into_iter().map(|(node, targets)| {
            let id = format!("f:{node}:{}", self.ids.next());
            (
                BusEvent::Deliver {
                    node,
                    targets,
                    payload: DeliverPayload::Frame {
                        frame: json.clone(),
                    },
                },
                id,
            )
        });
        self.publish_deliveries(events.collect()).await;
    }

    /// One `GroupBroadcast` per super-group message, all in one bus call.
    async fn broadcast(&self, msgs: &[&Arc<Message>], origin: Option<&DeviceId>) {
        metrics::counter!(m::BROADCASTS).increment(msgs.len() as u64);
        let events = msgs
            .iter()
            .map(|msg| {
                let event = BusEvent::GroupBroadcast {
                    msg: (***msg).clone(),
                    origin: origin.cloned(),
                };
                (event, format!("b:{}", msg.server_id))
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
            match self.store.members(g, after, 1000).await {
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
    /// route outlived it (the notes: the send path decides, after a failed
    /// push, whether the route is stale). Removes such routes, conditionally:
    /// only while they still name that connection here. A connection that
    /// is merely closing is left to its own clean-up.
    pub(crate) async fn drop_stale_routes(&self, failed: &[(UserId, u64)]) {
        let gone: Vec<(UserId, u64)> = failed
            .iter()
            .copied()
            .filter(|(u, c)| self.hub.get(*u, *c).is_none())
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

    async fn publish_deliveries(&self, events: Vec<(BusEvent, String)>) {
        if events.is_empty() {
            return;
        }
        let out: Vec<Outgoing> = events
            .into_iter()
            .filter_map(|(ev, msg_id)| {
                let payload = serde_json::to_vec(&ev).ok()?;
                Some(Outgoing {
                    topic: ev.topic().into_owned(),
                    msg_id,
                    payload: payload.into(),
                })
            })
            .collect();
        metrics::counter!(m::BUS_EVENTS).increment(out.len() as u64);
        if let Err(e) = self.bus.publish(out).await {
            tracing::warn!(error = %e, "cross-node push not published; devices will sync");
        }
    }
}
