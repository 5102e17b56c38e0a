//! The broadcast consumer every connection node runs (its own group on
//! topic `bcast`): super-group messages are pushed to the members connected
//! here, found through the local group index, and membership changes keep
//! that index current. Work per message is per node, not per member.

use super::Worker;
use crate::app::App;
use crate::conn::hub::{Outbound, Push};
use crate::error::Result;
use async_trait::async_trait;
use magpie_core::{BROADCAST_TOPIC, BusEvent, now_ms};

/// A broadcast older than this is not pushed: a node that joins the cluster
/// starts its group at the beginning of the bus's retention, and members
/// sync what they missed anyway.
const STALE_MS: i64 = 60_000;

pub struct Broadcast {
    node: String,
}

impl Broadcast {
    pub fn for_node(node: &str) -> Self {
        Broadcast {
            node: node.to_string(),
        }
    }
}

#[async_trait]
impl Worker for Broadcast {
    fn group(&self) -> String {
        format!("bcast-{}", self.node)
    }
    fn topics(&self) -> Vec<String> {
        vec![BROADCAST_TOPIC.to_string()]
    }
    async fn apply(&self, app: &App, events: &[BusEvent]) -> Result<()> {
        let mut pushed = 0u64;
        let now = now_ms();
        for ev in events {
            match ev {
                BusEvent::GroupMember {
                    group,
                    user,
                    joined,
                } => app.group_index.set_member(*group, *user, *joined),
                BusEvent::GroupBroadcast { msg, origin } => {
                    let Some(g) = msg.conv.group_id() else {
                        continue;
                    };
                    if now - msg.sent_at > STALE_MS {
                        continue;
                    }
                    // Encoded once for every member connected here.
                    let out = Outbound::Push(Push::new(msg.clone()));
                    for user in app.group_index.users(g) {
                        let skip = origin.as_ref().filter(|_| user == msg.from);
                        pushed += app.hub.deliver_user(user, skip, &out);
                    }
                }
                BusEvent::RoomBroadcast { msg } => {
                    if !app.rooms.has_room(&msg.room) || now - msg.sent_at > STALE_MS {
                        continue;
                    }
                    let cfg = &app.cfg.rooms;
                    let Some(audience) = app.rooms.arrive(msg, now, cfg.max_rate, cfg.recent)
                    else {
                        metrics::counter!(crate::metrics::ROOM_MESSAGES, "outcome" => "shed")
                            .increment(1);
                        continue;
                    };
                    metrics::counter!(crate::metrics::ROOM_MESSAGES, "outcome" => "delivered")
                        .increment(1);
                    let frame =
                        Outbound::frame(&magpie_proto::ServerFrame::RoomMsg { msg: msg.clone() });
                    for (user, conn) in audience {
                        app.hub.deliver(user, conn, frame.clone());
                    }
                }
                _ => {}
            }
        }
        crate::metrics::meters().pushed.increment(pushed);
        Ok(())
    }
}
