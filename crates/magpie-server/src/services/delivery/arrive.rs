//! What reaches this node for its own connections: delivery events other
//! nodes address to it, and broadcasts every node receives (super-group
//! messages, room messages, membership changes for the local index).
//! Work per broadcast is per node, not per member.

use super::hub::{Outbound, Push};
use super::{ConnAddr, Delivery};
use crate::metrics::{self as m, meters};
use magpie_core::{BusEvent, DeliverPayload, DeviceId, Message, RoomMessage, now_ms};
use magpie_proto::ServerFrame;
use std::sync::atomic::Ordering;

/// A broadcast older than this is not pushed: a node that joins the cluster
/// starts its group at the beginning of the bus's retention, and members
/// sync what they missed anyway.
const STALE_MS: i64 = 60_000;

impl Delivery {
    /// Queues a delivery event's pushes for the connections it names here;
    /// routes to connections that are gone are dropped.
    pub async fn arrive_delivery(&self, events: &[BusEvent]) {
        let mut pushed = 0u64;
        let mut stale = Vec::new();
        for ev in events {
            let BusEvent::Deliver {
                targets, payload, ..
            } = ev
            else {
                continue;
            };
            let out = match payload {
                DeliverPayload::Msg { msg } => Outbound::Push(Push::new(msg.clone())),
                DeliverPayload::Msgs { msgs } => {
                    for (msg, targets) in msgs {
                        let out = Outbound::Push(Push::new(msg.clone()));
                        self.deliver_to(targets, &out, &mut pushed, &mut stale);
                    }
                    continue;
                }
                DeliverPayload::Frame { frame } => Outbound::Frame(frame.clone().into()),
                DeliverPayload::Settings => Outbound::Settings,
                DeliverPayload::GroupReads { ranges } => {
                    self.reads.merge_all(ranges);
                    continue;
                }
            };
            self.deliver_to(targets, &out, &mut pushed, &mut stale);
        }
        meters().pushed.increment(pushed);
        self.drop_stale_routes(&stale).await;
    }

    fn deliver_to(
        &self,
        targets: &[ConnAddr],
        out: &Outbound,
        pushed: &mut u64,
        stale: &mut Vec<ConnAddr>,
    ) {
        for (user, conn) in targets {
            if self.hub.deliver(*user, *conn, out.clone()) {
                *pushed += 1;
            } else {
                stale.push((*user, *conn));
            }
        }
    }

    /// Applies membership changes to the local group index, and listens to
    /// a group's broadcasts from its first member here to its last.
    pub async fn arrive_members(&self, events: &[BusEvent]) {
        for ev in events {
            if let BusEvent::GroupMember {
                group,
                user,
                joined,
            } = ev
                && self.groups.set_member(*group, *user, *joined)
            {
                self.reconcile_groups(vec![*group]).await;
            }
        }
    }

    /// Applies broadcasts: super-group and room messages to the
    /// connections here.
    pub fn arrive_broadcast(&self, events: &[BusEvent]) {
        let now = now_ms();
        let mut pushed = 0u64;
        for ev in events {
            meters().broadcasts_arrived.increment(1);
            self.broadcasts_arrived.fetch_add(1, Ordering::Relaxed);
            match ev {
                BusEvent::GroupBroadcast { msg, origin } => {
                    pushed += self.arrive_group_message(msg, origin.as_ref(), now)
                }
                BusEvent::RoomBroadcast { msg } => self.arrive_room_message(msg, now),
                _ => {}
            }
        }
        meters().pushed.increment(pushed);
    }

    fn arrive_group_message(&self, msg: &Message, origin: Option<&DeviceId>, now: i64) -> u64 {
        let Some(g) = msg.conv.group_id() else {
            return 0;
        };
        if now - msg.sent_at > STALE_MS {
            return 0;
        }
        // Encoded once for every member connected here.
        let out = Outbound::Push(Push::new(msg.clone()));
        let mut pushed = 0;
        for user in self.groups.users(g) {
            let skip = origin.filter(|_| user == msg.from);
            pushed += self.hub.deliver_user(user, skip, &out);
        }
        pushed
    }

    fn arrive_room_message(&self, msg: &RoomMessage, now: i64) {
        if !self.rooms.has_room(&msg.room) || now - msg.sent_at > STALE_MS {
            return;
        }
        let cfg = &self.cfg.rooms;
        let Some(audience) = self.rooms.arrive(msg, now, cfg.max_rate, cfg.recent) else {
            metrics::counter!(m::ROOM_MESSAGES, "outcome" => "shed").increment(1);
            return;
        };
        metrics::counter!(m::ROOM_MESSAGES, "outcome" => "delivered").increment(1);
        let frame = Outbound::frame(&ServerFrame::RoomMsg { msg: msg.clone() });
        for (user, conn) in audience {
            self.hub.deliver(user, conn, frame.clone());
        }
    }
}
