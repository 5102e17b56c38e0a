//! The message domain over shards: by conversation, except the batch
//! (split by shard) and a user's conversation list (every shard, merged).

use super::ShardedStore;
use crate::backend::{MessageStore, Messages};
use crate::error::{Result, StoreError};
use crate::store::{ConvSummary, Outcome, Page};
use async_trait::async_trait;
use futures_util::future::join_all;
use magpie_core::{Accepted, ClientMsgId, ConvId, NewMessage, Seq, UserId};

/// Conversation summaries in the order one database gives them: direct
/// chats by conversation id, then groups by group id.
fn in_store_order(mut all: Vec<ConvSummary>) -> Vec<ConvSummary> {
    use std::cmp::Ordering::{Greater, Less};
    all.sort_by(|a, b| match (a.conv.group_id(), b.conv.group_id()) {
        (None, None) => a.conv.as_str().cmp(b.conv.as_str()),
        (Some(x), Some(y)) => x.0.cmp(&y.0),
        (None, Some(_)) => Less,
        (Some(_), None) => Greater,
    });
    all
}

#[async_trait]
impl MessageStore for ShardedStore {
    /// Each shard's part of the batch is one transaction there, the parts
    /// side by side. A shard that fails answers `Err` for its own messages
    /// only; `Err` for the whole call only when every part failed (then
    /// nothing of the batch is stored, as the trait promises).
    async fn accept(&self, batch: Vec<NewMessage>) -> Result<Vec<Outcome>> {
        let total = batch.len();
        let mut parts: Vec<(Vec<usize>, Vec<NewMessage>)> =
            (0..self.shards.len()).map(|_| Default::default()).collect();
        for (i, m) in batch.into_iter().enumerate() {
            let part = &mut parts[self.map.of_conv(&m.conv)];
            part.0.push(i);
            part.1.push(m);
        }
        let runs =
            parts
                .into_iter()
                .enumerate()
                .filter(|(_, (at, _))| !at.is_empty())
                .map(|(k, (at, msgs))| async move {
                    (at, self.on(k, |s| s.messages().accept(msgs)).await)
                });
        let mut out: Vec<Option<Outcome>> = (0..total).map(|_| None).collect();
        let mut failure = None;
        let mut stored_any = false;
        for (at, done) in join_all(runs).await {
            match done {
                Ok(outcomes) => {
                    stored_any = true;
                    for (i, o) in at.into_iter().zip(outcomes) {
                        out[i] = Some(o);
                    }
                }
                Err(e) => {
                    for &i in &at {
                        out[i] = Some(Err(e.clone()));
                    }
                    failure = Some(e);
                }
            }
        }
        if let (false, Some(e)) = (stored_any, failure) {
            return Err(e);
        }
        let short = || StoreError::Corrupt("a shard answered fewer outcomes than messages".into());
        Ok(out
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(short())))
            .collect())
    }

    /// The key is unique per shard: the first shard that knows it.
    async fn lookup_cmid(&self, from: UserId, cmid: ClientMsgId) -> Result<Option<Accepted>> {
        let all = self
            .on_all(|s| s.messages().lookup_cmid(from, cmid))
            .await?;
        Ok(all.into_iter().flatten().next())
    }

    async fn page(&self, owner: UserId, conv: &ConvId, page: Page, limit: usize) -> Messages {
        let k = self.map.of_conv(conv);
        self.on(k, |s| s.messages().page(owner, conv, page, limit))
            .await
    }

    /// Shard after shard: the cursor's conversation names its shard, which
    /// is read on from it; an exhausted shard hands over to the next one
    /// from its start, so the walk sees every shard's rows once.
    async fn scan_searchable(&self, after: Option<(ConvId, Seq)>, limit: usize) -> Messages {
        let mut k = after.as_ref().map_or(0, |(c, _)| self.map.of_conv(c));
        let mut after = after;
        while k < self.shards.len() {
            let cursor = after.take();
            let page = self
                .on(k, |s| s.messages().scan_searchable(cursor.clone(), limit))
                .await?;
            if !page.is_empty() {
                return Ok(page);
            }
            k += 1;
        }
        Ok(Vec::new())
    }

    async fn conversations(&self, owner: UserId) -> Result<Vec<ConvSummary>> {
        let all = self.on_all(|s| s.messages().conversations(owner)).await?;
        Ok(in_store_order(all.into_iter().flatten().collect()))
    }

    async fn group_conversations(&self, owner: UserId) -> Result<Vec<ConvSummary>> {
        let all = self.on_all(|s| s.messages().group_conversations(owner));
        Ok(in_store_order(all.await?.into_iter().flatten().collect()))
    }

    async fn conversation(&self, owner: UserId, conv: &ConvId) -> Result<Option<ConvSummary>> {
        let k = self.map.of_conv(conv);
        self.on(k, |s| s.messages().conversation(owner, conv)).await
    }

    async fn set_read(&self, owner: UserId, conv: &ConvId, seq: Seq) -> Result<Seq> {
        let k = self.map.of_conv(conv);
        self.on(k, |s| s.messages().set_read(owner, conv, seq))
            .await
    }

    async fn set_muted(&self, owner: UserId, conv: &ConvId, muted: bool) -> Result<bool> {
        let k = self.map.of_conv(conv);
        self.on(k, |s| s.messages().set_muted(owner, conv, muted))
            .await
    }

    async fn muted_among(&self, conv: &ConvId, users: &[UserId]) -> Result<Vec<UserId>> {
        let k = self.map.of_conv(conv);
        self.on(k, |s| s.messages().muted_among(conv, users)).await
    }
}
