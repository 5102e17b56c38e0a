//! Live rooms (docs/protocol.md, "Live rooms") as methods of [`Client`]:
//! join, say, leave. A room keeps no history beyond a short recent buffer
//! and nothing is resent, so the client joins its rooms again after a
//! reconnect (`session.rs`) and what was said in between is gone.

use crate::client::Client;
use crate::error::Result;
use crate::requests::{lock, unexpected};
use magpie_core::RoomMessage;
use magpie_proto::{ClientOp, ServerFrame};

/// What saying something in a room came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSent {
    /// The message's id, as the room's audience receives it.
    pub id: String,
    /// `true`: the room was over its rate and the message was dropped.
    pub shed: bool,
}

impl Client {
    /// Joins `room`'s audience; answers its recent messages, oldest
    /// first. Its messages then arrive as `Event::Room`.
    pub async fn join_room(&self, room: &str) -> Result<Vec<RoomMessage>> {
        let op = ClientOp::RoomJoin { room: room.into() };
        match self.request(op).await? {
            ServerFrame::RoomJoined { recent, .. } => {
                let mut rooms = lock(&self.inner.rooms);
                if !rooms.iter().any(|r| r == room) {
                    rooms.push(room.into());
                }
                Ok(recent)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Leaves `room`.
    pub async fn leave_room(&self, room: &str) -> Result<()> {
        lock(&self.inner.rooms).retain(|r| r != room);
        let op = ClientOp::RoomLeave { room: room.into() };
        match self.request(op).await? {
            ServerFrame::RoomLeft { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Says `body` in `room` (joined first).
    pub async fn room_send(&self, room: &str, body: impl Into<String>) -> Result<RoomSent> {
        let op = ClientOp::RoomSend {
            room: room.into(),
            body: body.into(),
            to: None,
        };
        match self.request(op).await? {
            ServerFrame::RoomSent { id, shed, .. } => Ok(RoomSent { id, shed }),
            other => Err(unexpected(other)),
        }
    }
}
