//! What a message refers to, and what happened to it since it was stored.
//!
//! Replies, edits and recalls are messages of their conversation like any
//! other: sequenced, durable, idempotent by client id, pushed and synced
//! (docs/protocol.md §5.10). So a device that was offline converges by sync
//! alone: it receives the edit or recall event after the message it
//! revises. The revised message itself is also rewritten where it is
//! stored (its text replaced, or removed for a recall), so history read
//! later shows the current text with its `edited_at`, or a recalled
//! placeholder.
//!
//! Invariant: an event refers to an earlier sequence of the same
//! conversation; a recalled message is never edited again (the store's
//! update is conditional, docs/protocol.md §5.10).

use crate::ids::{Seq, UserId};
use crate::member_event::MemberEvent;
use serde::{Deserialize, Serialize};

/// On the wire as the `meta` object of a message; absent for a plain one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    /// A reply: the message of the same conversation it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Seq>,
    /// An edit event: this message's body is the new text of `edit_of`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_of: Option<Seq>,
    /// A recall event: `recall_of` is withdrawn (this body is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall_of: Option<Seq>,
    /// Mentions of a group message (docs/protocol.md §5.11): the members it
    /// names. Each raises that member's mention count until they read past
    /// it, and reaches them through a muted conversation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
    /// `@all`: a mention of every member (owners and admins only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mention_all: bool,
    /// A member event (`magpie_core::member_event`): only the system user
    /// sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<MemberEvent>,
    /// State, not reference: when this message was last edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    /// State, not reference: this message was recalled (its body is empty).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recalled: bool,
}

/// What happened to a stored message since it was accepted: one integer
/// column in the stores (`revised`): 0 original, > 0 edited at that time
/// (ms), -1 recalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    Original,
    Edited(i64),
    Recalled,
}

impl Revision {
    pub fn from_column(v: i64) -> Revision {
        match v {
            0 => Revision::Original,
            v if v > 0 => Revision::Edited(v),
            _ => Revision::Recalled,
        }
    }

    pub fn to_column(self) -> i64 {
        match self {
            Revision::Original => 0,
            Revision::Edited(at) => at.max(1),
            Revision::Recalled => -1,
        }
    }
}

impl MessageMeta {
    /// What a client named: a reply, an edit or a recall (`None` for none).
    /// Whether the combination is allowed is the server's to check.
    pub fn references(
        reply_to: Option<Seq>,
        edit_of: Option<Seq>,
        recall_of: Option<Seq>,
    ) -> Option<Box<MessageMeta>> {
        let m = MessageMeta {
            reply_to,
            edit_of,
            recall_of,
            ..MessageMeta::default()
        };
        (!m.is_empty()).then(|| Box::new(m))
    }

    /// `meta` with mentions added (`mentions` as the client named them:
    /// the server checks and orders them).
    pub fn with_mentions(
        meta: Option<Box<MessageMeta>>,
        mentions: Vec<UserId>,
        mention_all: bool,
    ) -> Option<Box<MessageMeta>> {
        if mentions.is_empty() && !mention_all {
            return meta;
        }
        let mut m = meta.unwrap_or_default();
        m.mentions = mentions;
        m.mention_all = mention_all;
        Some(m)
    }

    /// Whether this message mentions `user` (by name or by `@all`).
    pub fn mentions_user(&self, user: UserId) -> bool {
        self.mention_all || self.mentions.contains(&user)
    }

    /// The users of the mention rows a store keeps (`UserId(0)` for
    /// `@all`), each once.
    pub fn mention_rows(&self) -> impl Iterator<Item = UserId> + '_ {
        self.mention_all
            .then_some(UserId(0))
            .into_iter()
            .chain(self.mentions.iter().copied())
    }

    /// Nothing to say: the message is plain.
    pub fn is_empty(&self) -> bool {
        *self == MessageMeta::default()
    }

    /// The references only (what a store writes once, with the message), as
    /// JSON; `None` when there are none.
    pub fn references_json(meta: Option<&MessageMeta>) -> Option<String> {
        let m = meta?;
        let refs = MessageMeta {
            reply_to: m.reply_to,
            edit_of: m.edit_of,
            recall_of: m.recall_of,
            mentions: m.mentions.clone(),
            mention_all: m.mention_all,
            event: m.event.clone(),
            ..MessageMeta::default()
        };
        (!refs.is_empty()).then(|| serde_json::to_string(&refs).unwrap_or_default())
    }

    /// The meta of a stored message: its references' JSON (as
    /// `references_json` wrote it) and its revision column. A reference
    /// that does not parse is dropped rather than failing the read.
    pub fn from_columns(refs: Option<&str>, revised: i64) -> Option<Box<MessageMeta>> {
        let mut m: MessageMeta = refs
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        match Revision::from_column(revised) {
            Revision::Original => {}
            Revision::Edited(at) => m.edited_at = Some(at),
            Revision::Recalled => m.recalled = true,
        }
        (!m.is_empty()).then(|| Box::new(m))
    }

    /// The sequence this event revises (an edit or a recall), if it is one.
    pub fn revises(&self) -> Option<Seq> {
        self.edit_of.or(self.recall_of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip() {
        let m = MessageMeta {
            reply_to: Some(3),
            ..MessageMeta::default()
        };
        let refs = MessageMeta::references_json(Some(&m));
        assert_eq!(refs.as_deref(), Some(r#"{"reply_to":3}"#));
        let back = MessageMeta::from_columns(refs.as_deref(), 0).unwrap();
        assert_eq!(*back, m);
        let edited = MessageMeta::from_columns(refs.as_deref(), 42).unwrap();
        assert_eq!(edited.edited_at, Some(42));
        assert!(MessageMeta::from_columns(None, 0).is_none());
        assert!(MessageMeta::from_columns(None, -1).unwrap().recalled);
        assert_eq!(
            MessageMeta::references_json(Some(&MessageMeta::default())),
            None
        );
    }

    #[test]
    fn mentions_are_references() {
        let m = MessageMeta::with_mentions(None, vec![UserId(7)], true).unwrap();
        assert!(m.mentions_user(UserId(9)), "@all mentions everyone");
        let refs = MessageMeta::references_json(Some(&m));
        let back = MessageMeta::from_columns(refs.as_deref(), 0).unwrap();
        assert_eq!(back.mentions, vec![UserId(7)]);
        assert!(back.mention_all);
        let rows: Vec<_> = back.mention_rows().collect();
        assert_eq!(rows, vec![UserId(0), UserId(7)]);
        assert!(MessageMeta::with_mentions(None, vec![], false).is_none());
    }

    #[test]
    fn revision_columns() {
        for r in [Revision::Original, Revision::Edited(7), Revision::Recalled] {
            assert_eq!(Revision::from_column(r.to_column()), r);
        }
    }
}
