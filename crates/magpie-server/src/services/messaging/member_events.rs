//! Member events on the send path (`magpie_core::member_event`,
//! docs/protocol.md §3.14): the system user's messages in a group's
//! conversation, sent through the node's pipeline like any message, so
//! they are sequenced, durable before this returns, published in
//! acceptance order with the group's other messages, pushed and synced.

use super::Messaging;
use super::send::SendInput;
use crate::error::Result;
use magpie_core::{Accepted, ClientMsgId, GroupId, MemberEvent, MessageMeta, UserId};

impl Messaging {
    /// Writes `event` into group `g`'s conversation, `body` its sentence.
    pub async fn member_event(
        &self,
        g: GroupId,
        event: MemberEvent,
        body: String,
    ) -> Result<Accepted> {
        let input = SendInput {
            to: UserId(0),
            cmid: ClientMsgId::new_v7(),
            body,
            persistence: None,
            group: Some(g),
            chain: None,
            trace: None,
            sample: false,
            refs: Some(Box::new(MessageMeta {
                event: Some(event),
                ..MessageMeta::default()
            })),
        };
        self.send_one(UserId::SYSTEM, None, input).await
    }
}
