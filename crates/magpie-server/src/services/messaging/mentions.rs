//! Mentions on the send path (docs/protocol.md §5.11).
//!
//! A group message may name members (`mentions`) or everyone
//! (`mention_all`, owners and admins only). They travel in the message's
//! `meta` and the store keeps one row per mentioned user in the accepting
//! transaction, so each member's mention count is derived from their read
//! position like unread. Mentions reach a member through a muted
//! conversation (the offline push honours them, docs/protocol.md §8).
//!
//! Not checked: whether a named user is a member. A non-member has no
//! conversation summary to count it in, and a later joiner counts only from
//! their join position, so a stale name costs one row and nothing else.

use super::Messaging;
use crate::error::{Result, ServerError};
use magpie_core::{ConvId, MessageMeta, UserId};

/// The most members one message may name.
pub const MAX_MENTIONS: usize = 100;

impl Messaging {
    /// The mentions `refs` carries, checked, sorted and each once; empty
    /// and false when there are none.
    pub(super) async fn check_mentions(
        &self,
        from: UserId,
        conv: &ConvId,
        refs: &MessageMeta,
    ) -> Result<(Vec<UserId>, bool)> {
        if refs.mentions.is_empty() && !refs.mention_all {
            return Ok((Vec::new(), false));
        }
        if conv.group_id().is_none() {
            return Err(ServerError::bad_field(
                "mentions, mention_all: only in a group",
            ));
        }
        if refs.revises().is_some() {
            return Err(ServerError::bad_field(
                "mentions, mention_all: not in an edit or a recall",
            ));
        }
        let mut users = refs.mentions.clone();
        users.sort_unstable();
        users.dedup();
        if users.len() > MAX_MENTIONS {
            return Err(ServerError::bad_field(
                "mentions: at most 100 members per message",
            ));
        }
        if users.iter().any(|u| u.0 <= 0) {
            return Err(ServerError::bad_field("mentions: user ids are positive"));
        }
        if refs.mention_all && !self.moderates(from, conv).await? {
            return Err(ServerError::Forbidden(
                "only a group's owner or admins mention @all".into(),
            ));
        }
        Ok((users, refs.mention_all))
    }
}
