//! Sync, history and unread counts.
//!
//! Sync answers from the store, the truth (the offline sets hold ids, not
//! bodies); a gap is never silent: sequences that retention removed are
//! listed as `unavailable`.

use super::Messaging;
use crate::error::{Result, ServerError};
use magpie_core::{ConvId, HistoryPage, Message, Seq, SyncConv, UnreadConv, UnreadMode, UserId};
use magpie_store::UnreadCache;
use std::collections::BTreeMap;

impl Messaging {
    /// What follows the client's last sequence in each of its conversations.
    pub async fn sync(
        &self,
        user: UserId,
        known: &BTreeMap<ConvId, Seq>,
        limit: Option<usize>,
    ) -> Result<Vec<SyncConv>> {
        let limit = self.page_limit(limit, 100);
        let mut out = Vec::new();
        for c in self.store.messages().conversations(user).await? {
            let mut after = known.get(&c.conv).copied().unwrap_or(0).max(0);
            if let Some(g) = c.conv.group_id()
                && let Some(m) = self.store.groups().member(g, user).await?
            {
                // What came before the join is not the member's to see, and
                // not "unavailable" either: the sync starts at the join.
                after = after.max(m.joined_seq);
            }
            if c.last_seq <= after {
                continue;
            }
            let mut messages = self
                .store
                .messages()
                .messages_after(user, &c.conv, after, limit + 1)
                .await?;
            let more = messages.len() > limit;
            messages.truncate(limit);
            let unavailable = gaps(after, &messages, more, c.last_seq);
            out.push(SyncConv {
                conv: c.conv,
                messages,
                last_seq: c.last_seq,
                read_seq: c.read_seq,
                more,
                unavailable,
            });
        }
        Ok(out)
    }

    /// A page of history: newest first before `before` (default: the end),
    /// or ascending after `after`.
    pub async fn history(
        &self,
        user: UserId,
        conv: &ConvId,
        before: Option<Seq>,
        after: Option<Seq>,
        limit: Option<usize>,
    ) -> Result<HistoryPage> {
        if self
            .store
            .messages()
            .conversation(user, conv)
            .await?
            .is_none()
        {
            return Err(ServerError::NotFound(format!("no conversation {conv}")));
        }
        let limit = self.page_limit(limit, 10);
        let mut messages = match after {
            Some(a) => {
                self.store
                    .messages()
                    .messages_after(user, conv, a, limit + 1)
                    .await?
            }
            None => {
                self.store
                    .messages()
                    .messages_before(user, conv, before.unwrap_or(Seq::MAX), limit + 1)
                    .await?
            }
        };
        let more = messages.len() > limit;
        messages.truncate(limit);
        // The peer's own summary holds their read position; a direct
        // conversation to oneself has no peer to report.
        let peer_read_seq = match conv.peer_of(user).filter(|p| *p != user) {
            Some(peer) => self
                .store
                .messages()
                .conversation(peer, conv)
                .await?
                .map(|c| c.read_seq),
            None => None,
        };
        Ok(HistoryPage {
            conv: conv.clone(),
            messages,
            more,
            peer_read_seq,
        })
    }

    /// Unread counts, from the cache (rebuilt from the store when missing),
    /// shaped by the device's unread mode.
    pub async fn unread(&self, user: UserId, mode: UnreadMode) -> Result<(i64, Vec<UnreadConv>)> {
        if mode == UnreadMode::Off {
            return Ok((0, Vec::new()));
        }
        let cache = match self.state.unread_get(user).await? {
            Some(c) => c,
            None => self.rebuild_unread(user).await?,
        };
        // Groups are not cached: their count is exact from positions. The
        // total alone needs only the group rows, not every conversation.
        if mode == UnreadMode::TotalOnly {
            let groups = self.store.messages().group_conversations(user).await?;
            let groups: i64 = groups.iter().map(|c| c.unread).sum();
            return Ok((cache.total() + groups, Vec::new()));
        }
        let summaries = self.store.messages().conversations(user).await?;
        let groups: i64 = summaries
            .iter()
            .filter(|c| c.conv.group_id().is_some())
            .map(|c| c.unread)
            .sum();
        let total = cache.total() + groups;
        let mut convs = Vec::new();
        for c in summaries {
            let unread = cache
                .per_conv
                .get(&c.conv)
                .map(|(n, _)| *n)
                .unwrap_or(c.unread);
            if let Some(peer) = c.conv.peer_of(user).or(Some(c.peer)) {
                convs.push(UnreadConv {
                    conv: c.conv,
                    peer,
                    unread,
                    last_seq: c.last_seq,
                    read_seq: c.read_seq,
                    mentions: c.mentions,
                    muted: c.muted,
                });
            }
        }
        Ok((total, convs))
    }

    /// Rebuilds a user's unread cache from the store (the truth).
    ///
    /// Two snapshots close the race with the unread worker: a message
    /// committed before the second read is in it; one committed after is
    /// counted by the worker, because the cache exists by then.
    pub async fn rebuild_unread(&self, user: UserId) -> Result<UnreadCache> {
        let direct = |c: &magpie_store::ConvSummary| c.conv.group_id().is_none();
        let first = self.store.messages().conversations(user).await?;
        let mut cache = UnreadCache::default();
        for c in first.iter().filter(|c| direct(c)) {
            cache
                .per_conv
                .insert(c.conv.clone(), (c.unread, c.last_seq));
        }
        self.state.unread_load(user, &cache).await?;
        for c in self
            .store
            .messages()
            .conversations(user)
            .await?
            .into_iter()
            .filter(direct)
        {
            let seen = cache.per_conv.get(&c.conv).map(|(_, s)| *s).unwrap_or(-1);
            if c.last_seq > seen {
                self.state
                    .unread_reset(user, &c.conv, c.unread, c.last_seq)
                    .await?;
            }
        }
        Ok(self.state.unread_get(user).await?.unwrap_or(cache))
    }
}

/// Snapshots of one conversation tried before falling back to a rebuild of
/// the reader's whole cache (`Messaging::refresh_unread`).
const REFRESH_TRIES: usize = 3;

impl Messaging {
    /// After `user` read the direct conversation `conv`: sets that one
    /// conversation's cached count from the store (the truth), leaving the
    /// user's other conversations alone. One summary read, one reset and a
    /// second summary read, instead of rebuilding every conversation.
    ///
    /// Exact despite workers counting concurrently (cluster mode): the
    /// reset is refused only if the cache already counted a message past
    /// the snapshot, and that message was committed before it was counted,
    /// so a second snapshot taken after the reset sees a later last
    /// sequence. Two snapshots that agree mean the reset took; otherwise
    /// retry, and after a few tries rebuild the whole cache.
    pub async fn refresh_unread(&self, user: UserId, conv: &ConvId) -> Result<()> {
        let messages = self.store.messages();
        let mut snapshot = messages.conversation(user, conv).await?;
        for _ in 0..REFRESH_TRIES {
            let Some(c) = &snapshot else { return Ok(()) };
            self.state
                .unread_reset(user, conv, c.unread, c.last_seq)
                .await?;
            let again = messages.conversation(user, conv).await?;
            if again.as_ref().map(|a| a.last_seq) == Some(c.last_seq) {
                return Ok(());
            }
            snapshot = again;
        }
        self.rebuild_unread(user).await.map(drop)
    }
}

/// Sequence ranges after `after` that the answer skips: between returned
/// messages, and (when nothing more follows) up to the conversation's end.
fn gaps(after: Seq, messages: &[Message], more: bool, last_seq: Seq) -> Vec<(Seq, Seq)> {
    let mut out = Vec::new();
    let mut expected = after + 1;
    for m in messages {
        if m.seq > expected {
            out.push((expected, m.seq - 1));
        }
        expected = m.seq + 1;
    }
    if !more && expected <= last_seq {
        out.push((expected, last_seq));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::gaps;

    #[test]
    fn gaps_are_reported_not_silent() {
        assert_eq!(gaps(0, &[], false, 3), vec![(1, 3)]);
        assert!(gaps(5, &[], false, 5).is_empty());
    }
}
