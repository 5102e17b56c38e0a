//! Live rooms: join, leave, send. Nothing is stored. An ordinary message is
//! sampled against the room's rate on the sending node, then admitted at
//! the room's one admission point, a per-second counter in the state shared
//! by every node (ordinary ones beyond `rooms.max_rate` in that second are
//! shed at once, wherever they were sent); it is broadcast to the nodes with
//! viewers, and each sheds again for its own audience should more arrive
//! (`delivery/room_index.rs`). VIP messages (from or to a user in
//! `rooms.vip`) are never shed.

use super::delivery::Delivery;
use crate::config::Config;
use crate::error::{Result, ServerError};
use crate::metrics as m;
use magpie_core::{MsgIdGen, RoomMessage, UserId, now_ms, valid_room};
use magpie_store::State;
use std::sync::Arc;

fn check_room(room: &str) -> Result<()> {
    if valid_room(room) {
        Ok(())
    } else {
        Err(ServerError::bad_field(
            "room: 1 to 64 characters of [A-Za-z0-9._-]",
        ))
    }
}

pub struct Rooms {
    cfg: Arc<Config>,
    ids: Arc<MsgIdGen>,
    /// The rooms' admission counters.
    state: State,
    delivery: Arc<Delivery>,
}

impl Rooms {
    pub fn new(
        cfg: Arc<Config>,
        ids: Arc<MsgIdGen>,
        state: State,
        delivery: Arc<Delivery>,
    ) -> Rooms {
        Rooms {
            cfg,
            ids,
            state,
            delivery,
        }
    }

    /// Joins a room's audience here; answers after this node listens to
    /// the room's broadcasts, with the recent messages it holds.
    pub async fn join(&self, user: UserId, conn: u64, room: &str) -> Result<Vec<RoomMessage>> {
        check_room(room)?;
        let recent = self.delivery.rooms.join(room, (user, conn));
        self.delivery.reconcile_room(room).await;
        Ok(recent)
    }

    pub async fn leave(&self, user: UserId, conn: u64, room: &str) -> Result<()> {
        check_room(room)?;
        self.delivery.rooms.leave(room, (user, conn));
        self.delivery.reconcile_room(room).await;
        Ok(())
    }

    /// The room's one admission point: at most `cap` ordinary messages per
    /// second across every node. A state that cannot answer leaves the
    /// node's own limit in charge (a room then admits up to `cap` per
    /// sending node until it answers again).
    async fn admit_everywhere(&self, room: &str, now: i64, cap: u32) -> bool {
        match self.state.room_admit(room, now.div_euclid(1000)).await {
            Ok(n) => n <= u64::from(cap),
            Err(e) => {
                tracing::debug!(error = %e, room, "room admission point unreachable");
                true
            }
        }
    }

    fn is_vip(&self, user: UserId) -> bool {
        self.cfg.rooms.vip.contains(&user.0)
    }

    /// Returns the message id and whether it was shed here.
    pub async fn send(
        &self,
        user: UserId,
        conn: u64,
        room: &str,
        body: String,
        to: Option<UserId>,
    ) -> Result<(String, bool)> {
        check_room(room)?;
        if !self.delivery.rooms.is_in(room, (user, conn)) {
            return Err(ServerError::Forbidden(format!("join room {room} first")));
        }
        if body.len() > self.cfg.limits.max_frame_bytes {
            return Err(ServerError::TooLarge("body too large".into()));
        }
        let now = now_ms();
        let vip = self.is_vip(user) || to.is_some_and(|t| self.is_vip(t));
        let id = self.ids.next().to_string();
        let cap = self.cfg.rooms.max_rate;
        let admitted = self.delivery.rooms.admit_outgoing(room, now, vip, cap)
            && (vip || self.admit_everywhere(room, now, cap).await);
        if !admitted {
            metrics::counter!(m::ROOM_MESSAGES, "outcome" => "shed").increment(1);
            return Ok((id, true));
        }
        let msg = RoomMessage {
            room: room.to_string(),
            id: id.clone(),
            from: user,
            to,
            body,
            vip,
            sent_at: now,
        };
        self.delivery.broadcast_room(msg);
        Ok((id, false))
    }
}
