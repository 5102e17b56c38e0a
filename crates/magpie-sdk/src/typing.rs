//! Typing indicators (docs/protocol.md, "Typing"), as a method of
//! [`Client`]: a frame with no reply, dropped while disconnected (an
//! indicator is worth nothing later).

use crate::client::Client;
use magpie_core::ConvId;
use magpie_proto::ClientOp;

impl Client {
    /// Tells the other members of `conv` that the user is typing
    /// (`active`) or stopped. Call it again at most every few seconds
    /// while the user types (the server forwards a repeat within
    /// `typing.repeat_ms` once), and with `false` when they stop without
    /// sending. A refusal (not in the conversation, over the rate) arrives
    /// as an error without a request and is logged.
    pub fn typing(&self, conv: &ConvId, active: bool) {
        self.send_oneway(ClientOp::Typing {
            conv: conv.clone(),
            active,
        });
    }
}
