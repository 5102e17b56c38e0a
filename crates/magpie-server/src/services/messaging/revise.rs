//! Replies, edits and recalls on the send path (docs/protocol.md §5.10).
//!
//! They are messages of their conversation (`magpie_core::meta`): this
//! checks what one refers to before it goes down the ordinary pipeline,
//! which makes it durable, sequenced and idempotent like any send; the
//! store rewrites the revised message in the same transaction.
//!
//! Who may: an edit, only the sender of the message, within
//! `messages.edit_window_secs`; a recall, the sender within
//! `messages.recall_window_secs`, or a group's owner or admins at any time
//! (moderation). Never an event itself, never a recalled message.

use super::Messaging;
use super::send::Prepared;
use crate::error::{Result, ServerError};
use crate::services::messaging::send::SendInput;
use magpie_core::{ClientMsgId, ConvId, GroupRole, Message, MessageMeta, UserId, now_ms};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagesConfig {
    /// How long after sending its sender may recall a message.
    pub recall_window_secs: u64,
    /// How long after sending its sender may edit a message.
    pub edit_window_secs: u64,
}

impl Default for MessagesConfig {
    fn default() -> Self {
        MessagesConfig {
            recall_window_secs: 120,
            edit_window_secs: 24 * 3600,
        }
    }
}

impl Messaging {
    /// The references and mentions `input` may carry in `conv`, checked:
    /// `None` for a plain message. State a client sent (`edited_at`,
    /// `recalled`) is dropped: only the store sets it.
    pub(super) async fn check_refs(
        &self,
        from: UserId,
        conv: &ConvId,
        input: &SendInput,
    ) -> Result<Option<Box<MessageMeta>>> {
        let Some(refs) = input.refs.as_deref() else {
            return Ok(None);
        };
        let (mentions, all) = self.check_mentions(from, conv, refs).await?;
        let checked = self.check_references(from, conv, input, refs).await?;
        let mut meta = MessageMeta::with_mentions(checked, mentions, all);
        // A member event is the server's own (`Messaging::member_event`).
        if from == UserId::SYSTEM && refs.event.is_some() {
            meta.get_or_insert_default().event = refs.event.clone();
        }
        Ok(meta)
    }

    async fn check_references(
        &self,
        from: UserId,
        conv: &ConvId,
        input: &SendInput,
        refs: &MessageMeta,
    ) -> Result<Option<Box<MessageMeta>>> {
        let m = MessageMeta::references(refs.reply_to, refs.edit_of, refs.recall_of);
        let Some(m) = m else { return Ok(None) };
        let named: Vec<_> = [m.reply_to, m.edit_of, m.recall_of]
            .into_iter()
            .flatten()
            .collect();
        let [seq] = named[..] else {
            return Err(ServerError::bad_field(
                "reply_to, edit, recall: at most one",
            ));
        };
        if seq <= 0 {
            return Err(ServerError::bad_field(
                "reply_to, edit, recall: a positive seq",
            ));
        }
        if m.recall_of.is_some() && !input.body.is_empty() {
            return Err(ServerError::bad_field("body: empty in a recall"));
        }
        if m.edit_of.is_some() && input.body.is_empty() {
            return Err(ServerError::bad_field("body: the new text of an edit"));
        }
        let target = self.target(from, conv, seq).await?;
        if m.reply_to.is_some() {
            return Ok(Some(m));
        }
        let meta = target.meta.as_deref();
        if meta.is_some_and(|t| t.revises().is_some()) {
            return Err(ServerError::bad_field(
                "edit, recall: names an edit or a recall, not a message",
            ));
        }
        if meta.is_some_and(|t| t.recalled) {
            return Err(ServerError::Conflict(format!("message {seq} was recalled")));
        }
        let age_secs = u64::try_from(now_ms().saturating_sub(target.sent_at)).unwrap_or(0) / 1000;
        let own = target.from == from;
        let windows = &self.cfg.messages;
        if m.edit_of.is_some() {
            if !own {
                return Err(ServerError::Forbidden(
                    "only its sender edits a message".into(),
                ));
            }
            if age_secs >= windows.edit_window_secs {
                return Err(ServerError::Forbidden(format!(
                    "the edit window ({} s) has passed",
                    windows.edit_window_secs
                )));
            }
        } else if !own {
            if !self.moderates(from, conv).await? {
                return Err(ServerError::Forbidden(
                    "only its sender or a group admin recalls a message".into(),
                ));
            }
        } else if age_secs >= windows.recall_window_secs && !self.moderates(from, conv).await? {
            return Err(ServerError::Forbidden(format!(
                "the recall window ({} s) has passed",
                windows.recall_window_secs
            )));
        }
        Ok(Some(m))
    }

    /// Message `seq` of `conv` as `from` sees it (a group's from its join
    /// on), else `NotFound`.
    async fn target(&self, from: UserId, conv: &ConvId, seq: i64) -> Result<Message> {
        let found = self
            .store
            .messages()
            .messages_after(from, conv, seq - 1, 1)
            .await?;
        found
            .into_iter()
            .find(|t| t.seq == seq)
            .ok_or_else(|| ServerError::NotFound(format!("no message {seq} in {conv}")))
    }

    /// Whether `user` is an owner or admin of the group `conv` is.
    pub(super) async fn moderates(&self, user: UserId, conv: &ConvId) -> Result<bool> {
        let Some(g) = conv.group_id() else {
            return Ok(false);
        };
        let member = self.store.groups().member(g, user).await?;
        Ok(member.is_some_and(|m| matches!(m.role, GroupRole::Owner | GroupRole::Admin)))
    }

    /// A refused revision that is the retry of one accepted before (its
    /// window may have passed since, or the fast state lost the key) is
    /// answered with the original result; anything else with the refusal.
    pub(super) async fn refused_unless_known(
        &self,
        from: UserId,
        cmid: ClientMsgId,
        refusal: ServerError,
    ) -> Result<Prepared> {
        match self.store.messages().lookup_cmid(from, cmid).await? {
            Some(mut acc) => {
                acc.duplicate = true;
                Ok(Prepared::Known(acc))
            }
            None => Err(refusal),
        }
    }
}
