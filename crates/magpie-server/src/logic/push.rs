//! Best-effort pushes to the devices that are online now.
//!
//! Routes are looked up once per batch for all users involved. A push that
//! fails is not an error: the message is durable and the device gets it by
//! resend or sync.

use crate::app::App;
use crate::conn::hub::Outbound;
use crate::metrics as m;
use magpie_core::{DeviceId, Message, UserId};
use magpie_proto::ServerFrame;
use std::sync::Arc;

impl App {
    /// Pushes each message to every device of its receiver and to the
    /// sender's devices other than `origin` (the one that sent it).
    pub(crate) async fn push_messages(&self, msgs: &[Arc<Message>], origin: Option<&DeviceId>) {
        if msgs.is_empty() {
            return;
        }
        let mut users: Vec<UserId> = msgs.iter().flat_map(|m| [m.from, m.to]).collect();
        users.sort();
        users.dedup();
        let routes = match self.state.routes(&users).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "route lookup failed; receivers will sync");
                return;
            }
        };
        let mut pushed = 0u64;
        for msg in msgs {
            let mut targets: Vec<UserId> = vec![msg.to];
            if msg.from != msg.to {
                targets.push(msg.from);
            }
            for user in targets {
                for route in routes.get(&user).into_iter().flatten() {
                    if user == msg.from && Some(&route.device) == origin {
                        continue;
                    }
                    if route.node != self.cfg.node {
                        // Another node holds this device: cross-node delivery
                        // belongs to cluster mode; the device syncs meanwhile.
                        continue;
                    }
                    if self
                        .hub
                        .deliver(user, route.conn, Outbound::Push(msg.clone()))
                    {
                        pushed += 1;
                    }
                }
            }
        }
        metrics::counter!(m::PUSHED).increment(pushed);
    }

    /// Sends one event frame to every online device of `user`.
    pub(crate) async fn push_frame(&self, user: UserId, frame: ServerFrame) {
        let Ok(routes) = self.state.routes(&[user]).await else {
            return;
        };
        for route in routes.get(&user).into_iter().flatten() {
            if route.node == self.cfg.node {
                self.hub
                    .deliver(user, route.conn, Outbound::Frame(frame.clone()));
            }
        }
    }
}
