//! Follows imported in bulk (the internal API, docs/protocol.md §3.13): a
//! company moving its follow graph in, or a load run building a big
//! account's audience. Every follow takes the path of an ordinary one
//! (both half-edges, the block check, the reader's inbox dropped), many at
//! once; only the check that the follower has an account is left to the
//! caller, who names users it created.

use super::Feeds;
use crate::error::{Result, ServerError};
use futures_util::{StreamExt, TryStreamExt, stream};
use magpie_core::UserId;

/// What an import did: follows that are new, that were there already,
/// and that a block refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub added: u64,
    pub existing: u64,
    pub refused: u64,
}

/// Followers one request may name.
pub const IMPORT_MAX: usize = 5_000;
/// Follows (and reads) in flight at once per request.
const IMPORT_CONCURRENCY: usize = 32;

impl Feeds {
    /// Each of `followers` follows `followee` (which must exist); with
    /// `read`, each then reads the first page of its feed, which marks its
    /// inbox and subscribes it to its big authors, as its own read would.
    pub async fn import_followers(
        &self,
        followee: UserId,
        followers: &[UserId],
        read: bool,
    ) -> Result<ImportOutcome> {
        if followers.len() > IMPORT_MAX {
            return Err(ServerError::bad_field(format!(
                "followers: at most {IMPORT_MAX}"
            )));
        }
        if followers.iter().any(|f| *f == followee || f.0 <= 0) {
            return Err(ServerError::bad_field(
                "followers: user ids above 0, not the followee",
            ));
        }
        if !self.users.exists(followee).await? {
            return Err(ServerError::NotFound(format!("no user {followee}")));
        }
        let outcomes: Vec<Option<bool>> = stream::iter(followers.iter().copied())
            .map(|f| async move {
                match self.follow_edges(f, followee).await {
                    Ok(new) => Ok(Some(new)),
                    Err(ServerError::Forbidden(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(IMPORT_CONCURRENCY)
            .try_collect()
            .await?;
        if read {
            stream::iter(followers.iter().copied())
                .map(|f| async move { self.home(f, None, 1).await.map(drop) })
                .buffer_unordered(IMPORT_CONCURRENCY)
                .try_collect::<()>()
                .await?;
        }
        let mut out = ImportOutcome::default();
        for o in outcomes {
            match o {
                Some(true) => out.added += 1,
                Some(false) => out.existing += 1,
                None => out.refused += 1,
            }
        }
        Ok(out)
    }
}
