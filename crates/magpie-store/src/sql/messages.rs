//! The message domain on SQL: timelines, summaries, read positions; `accept`
//! itself is in `accept`. Direct conversations read the per-owner index
//! (`im_user_msg_box`); group conversations read the group's one timeline
//! through the member's positions (`group_reads`).

use super::db::{Exec, Sqlx, args};
use super::store::SqlStore;
use super::{MessageRow, Retry, conv_of, limit_param, message_of, retrying, store_err};
use crate::backend::{MessageStore, Messages};
use crate::error::Result;
use crate::store::{ConvSummary, Outcome, Page};
use async_trait::async_trait;
use magpie_core::{Accepted, ClientMsgId, ConvId, Message, NewMessage, Seq, ServerMsgId, UserId};

fn summary_of(
    (conv, peer, last_seq, read_seq, unread, muted): (String, i64, i64, i64, i64, bool),
) -> Sqlx<ConvSummary> {
    Ok(ConvSummary {
        conv: conv_of(&conv)?,
        peer: UserId(peer),
        last_seq,
        read_seq,
        unread,
        mentions: 0,
        muted,
    })
}

impl SqlStore {
    /// The stored result for (from, cmid), marked as a duplicate.
    pub(super) async fn find_cmid(
        &self,
        x: &mut Exec<'_>,
        from: UserId,
        cmid: ClientMsgId,
    ) -> Sqlx<Option<Accepted>> {
        let a = args![from.0, cmid.to_string()];
        let row: Option<(i64, String, i64, i64)> =
            x.optional(self.q.lookup_cmid.as_str(), a).await?;
        row.map(|(server_id, conv, seq, sent_at)| {
            Ok(Accepted {
                server_id: ServerMsgId(server_id),
                conv: conv_of(&conv)?,
                seq,
                sent_at,
                duplicate: true,
                group: None,
            })
        })
        .transpose()
    }

    /// Direct conversations' summaries of `owner` (or the one of `conv`).
    async fn summaries(&self, owner: UserId, conv: Option<&ConvId>) -> Result<Vec<ConvSummary>> {
        let rows: Vec<(String, i64, i64, i64, i64, bool)> = match conv {
            Some(conv) => {
                let a = args![owner.0, conv.as_str()];
                self.read_all(self.q.conversation.as_str(), a).await?
            }
            None => {
                let a = args![owner.0];
                self.read_all(self.q.conversations.as_str(), a).await?
            }
        };
        rows.into_iter()
            .map(summary_of)
            .collect::<Sqlx<_>>()
            .map_err(store_err)
    }

    /// A page of `owner`'s copies in a direct conversation, from `from`.
    async fn messages(
        &self,
        sql: &'static str,
        owner: UserId,
        conv: &ConvId,
        from: Seq,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let a = args![owner.0, conv.as_str(), from, limit_param(limit)];
        let rows: Vec<MessageRow> = self.read_all(sql, a).await?;
        rows.into_iter()
            .map(message_of)
            .collect::<Sqlx<_>>()
            .map_err(store_err)
    }
}

#[async_trait]
impl MessageStore for SqlStore {
    async fn accept(&self, batch: Vec<NewMessage>) -> Result<Vec<Outcome>> {
        // Optimistic first: a stored duplicate is rare (a retry whose answer
        // was lost) and makes the body insert fail on the unique key; every
        // later attempt looks the batch up first.
        let mut attempt = 0;
        retrying("accept", Retry::TransientAndUnique, || {
            attempt += 1;
            self.accept_once(&batch, attempt > 1)
        })
        .await
    }

    async fn lookup_cmid(&self, from: UserId, cmid: ClientMsgId) -> Result<Option<Accepted>> {
        let mut c = self.pool.acquire().await.map_err(store_err)?;
        let found = self.find_cmid(&mut c.exec(), from, cmid).await;
        found.map_err(store_err)
    }

    async fn page(&self, owner: UserId, conv: &ConvId, page: Page, limit: usize) -> Messages {
        let (from, direct, group) = match page {
            Page::After(s) => (s, &self.q.messages_after, &self.g.group_after),
            Page::Before(s) => (s, &self.q.messages_before, &self.g.group_before),
        };
        if let Some(g) = conv.group_id() {
            return self
                .group_messages(group.as_str(), g, owner, from, limit)
                .await;
        }
        self.messages(direct.as_str(), owner, conv, from, limit)
            .await
    }

    async fn scan_searchable(&self, after: Option<(ConvId, Seq)>, limit: usize) -> Messages {
        // No cursor: every conversation id sorts after the empty text.
        let (conv, seq) = after
            .map(|(c, s)| (c.as_str().to_owned(), s))
            .unwrap_or_default();
        let a = args![conv.as_str(), conv.as_str(), seq, limit_param(limit)];
        let rows: Vec<MessageRow> = self.read_all(self.q.scan_searchable.as_str(), a).await?;
        rows.into_iter()
            .map(message_of)
            .collect::<Sqlx<_>>()
            .map_err(store_err)
    }

    /// Direct conversations, then groups by group id.
    async fn conversations(&self, owner: UserId) -> Result<Vec<ConvSummary>> {
        let mut all = self.summaries(owner, None).await?;
        all.extend(self.group_summaries(owner, None).await?);
        Ok(all)
    }

    async fn group_conversations(&self, owner: UserId) -> Result<Vec<ConvSummary>> {
        self.group_summaries(owner, None).await
    }

    async fn conversation(&self, owner: UserId, conv: &ConvId) -> Result<Option<ConvSummary>> {
        if let Some(g) = conv.group_id() {
            return Ok(self.group_summaries(owner, Some(g)).await?.pop());
        }
        Ok(self.summaries(owner, Some(conv)).await?.pop())
    }

    /// max(current, min(seq, last_seq)); 0 without writing for a
    /// conversation the owner does not have. UPDATE then SELECT in one
    /// transaction (MySQL has no UPDATE … RETURNING): the SELECT sees this
    /// transaction's own write.
    async fn set_read(&self, owner: UserId, conv: &ConvId, seq: Seq) -> Result<Seq> {
        if let Some(g) = conv.group_id() {
            return self.set_group_read(g, owner, seq).await;
        }
        retrying("set_read", Retry::Transient, || async {
            let mut tx = self.pool.begin().await?;
            let a = args![seq, owner.0, conv.as_str()];
            tx.exec().execute(self.q.set_read.as_str(), a).await?;
            let a = args![owner.0, conv.as_str()];
            let pos: Option<(i64,)> = tx.exec().optional(self.q.get_read.as_str(), a).await?;
            tx.commit().await?;
            Ok(pos.map_or(0, |(p,)| p))
        })
        .await
    }

    async fn set_muted(&self, owner: UserId, conv: &ConvId, muted: bool) -> Result<bool> {
        self.set_muted_flag(owner, conv, muted).await
    }

    async fn muted_among(&self, conv: &ConvId, users: &[UserId]) -> Result<Vec<UserId>> {
        self.muted_of(conv, users).await
    }
}
