//! What the other services tell online users besides messages, and the one
//! mapping of each to its wire frame (docs/protocol.md §5).

use super::hub::Outbound;
use super::{ConnAddr, Delivery};
use crate::metrics::meters;
use magpie_core::DeliverPayload;
use magpie_core::{ConvId, DeviceId, GroupId, Post, Seq, UserId};
use magpie_proto::ServerFrame;

#[derive(Debug, Clone)]
pub enum Notice {
    /// The peer of a direct conversation read up to `seq`.
    Receipt {
        conv: ConvId,
        reader: UserId,
        seq: Seq,
    },
    /// A device of `receiver` received the sender's messages of the
    /// direct conversation `conv` up to `seq`.
    Delivered {
        conv: ConvId,
        receiver: UserId,
        seq: Seq,
    },
    /// How many members have read a sender's newest message of a group.
    GroupReceipt {
        conv: ConvId,
        seq: Seq,
        read: i64,
        unread: i64,
    },
    /// A new post of a user the receiver follows.
    Post(Post),
    /// A member of `conv` is typing, or stopped.
    Typing {
        conv: ConvId,
        user: UserId,
        name: String,
        active: bool,
        ttl_ms: u64,
    },
    /// The receiver read `conv` up to `seq` on one of their devices.
    ReadSync { conv: ConvId, seq: Seq },
    /// A contact's device came online or went offline.
    Presence {
        user: UserId,
        device: DeviceId,
        online: bool,
        reason: Option<String>,
    },
}

impl From<Notice> for ServerFrame {
    fn from(n: Notice) -> ServerFrame {
        match n {
            Notice::Receipt { conv, reader, seq } => ServerFrame::Receipt { conv, reader, seq },
            Notice::Delivered {
                conv,
                receiver,
                seq,
            } => ServerFrame::Delivered {
                conv,
                receiver,
                seq,
            },
            Notice::GroupReceipt {
                conv,
                seq,
                read,
                unread,
            } => ServerFrame::GroupReceipt {
                conv,
                seq,
                read,
                unread,
            },
            Notice::Post(post) => ServerFrame::Post { post },
            Notice::Typing {
                conv,
                user,
                name,
                active,
                ttl_ms,
            } => ServerFrame::Typing {
                conv,
                user,
                name,
                active,
                ttl_ms,
            },
            Notice::ReadSync { conv, seq } => ServerFrame::ReadSync { conv, seq },
            Notice::Presence {
                user,
                device,
                online,
                reason,
            } => ServerFrame::Presence {
                user,
                device,
                online,
                reason,
            },
        }
    }
}

impl Delivery {
    /// Sends `notice` to every online device of `user`, here and on other
    /// nodes (best effort, like every push).
    pub async fn notify(&self, user: UserId, notice: Notice) {
        self.push_frame(user, notice.into()).await
    }

    /// Sends `notice` to every online device of `user` but `device`.
    pub async fn notify_except(&self, user: UserId, device: &DeviceId, notice: Notice) {
        self.push_frame_except(user, Some(device), notice.into())
            .await
    }

    /// Sends `notice` to every online device of each of `users`: one route
    /// lookup for all of them, then one push per connection here and one
    /// relay message per other node.
    pub async fn notify_users(&self, users: &[UserId], notice: Notice) {
        if users.is_empty() {
            return;
        }
        meters().route_lookups.increment(users.len() as u64);
        let Ok(routes) = self.state.routes(users).await else {
            return;
        };
        let conns: Vec<(&str, ConnAddr)> = routes
            .values()
            .flatten()
            .map(|r| (r.node.as_str(), (r.user, r.conn)))
            .collect();
        if !conns.is_empty() {
            self.notify_conns(&conns, notice);
        }
    }

    /// Sends `notice` to the online devices of every member of `g` but
    /// `except`, from the member list at membership `version` or later
    /// (cached: `members.rs`).
    pub async fn notify_members(&self, g: GroupId, version: i64, except: UserId, notice: Notice) {
        let members = self.members_at(g, version).await;
        let others: Vec<UserId> = members.iter().copied().filter(|u| *u != except).collect();
        self.notify_users(&others, notice).await
    }

    /// Sends `notice` to exactly these connections (`(node, (user, conn))`),
    /// with no route lookup: the addresses come from the caller (presence
    /// watchers). A connection gone meanwhile gets nothing.
    pub fn notify_conns(&self, conns: &[(&str, ConnAddr)], notice: Notice) {
        let frame: ServerFrame = notice.into();
        self.push_conns(conns, Outbound::frame(&frame), || {
            Some(DeliverPayload::Frame {
                frame: String::from_utf8(frame.encode()).ok()?,
            })
        })
    }
}
