//! The unread-count cache (a hash per user), expiring when left alone
//! (`IDLE_EXPIRY_MS`). The offline queues are in `offline.rs`.

use super::scripts::{Call, eval_each};
use super::{RedisState, unavailable};
use crate::error::{Result, StoreError};
use crate::state::UnreadCache;
use magpie_core::{ConvId, Seq, UserId};
use std::collections::HashMap;

/// The marker field of a loaded unread cache (an empty cache still exists).
const LOADED: &str = "loaded";

/// An unread cache expires this long after it was loaded (30 days), as did
/// an offline queue of the unsegmented layout after its last write: derived
/// state of users who do not come back must not stay in Redis forever.
/// Both are rebuilt from the store when needed (sync reads the store; the
/// next unread read reloads).
pub(crate) const IDLE_EXPIRY_MS: u64 = 30 * 86_400_000;

/// Groups per-item script arguments by key, keeping the items' order within
/// each key, so a batch costs one script call per key.
fn group(items: impl Iterator<Item = (String, [String; 2])>) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (key, args) in items {
        let i = *at.entry(key.clone()).or_insert_with(|| {
            calls.push((key, Vec::new()));
            calls.len() - 1
        });
        calls[i].1.extend(args);
    }
    calls
}

impl RedisState {
    /// The `UNREAD_COUNT` calls for `items`: one per user.
    pub(super) fn unread_calls<'a>(
        &self,
        items: impl Iterator<Item = (&'a UserId, &'a ConvId, &'a Seq)>,
    ) -> Vec<Call> {
        group(items.map(|(user, conv, seq)| {
            (self.keys.unread(*user), [conv.to_string(), seq.to_string()])
        }))
    }

    pub(super) async fn unread_count_impl(&self, items: &[(UserId, ConvId, Seq)]) -> Result<()> {
        let calls = self.unread_calls(items.iter().map(|(u, c, s)| (u, c, s)));
        eval_each(&mut self.con(), &self.scripts.unread_count, &calls)
            .await
            .map_err(unavailable)
    }

    pub(super) async fn unread_reset_impl(
        &self,
        user: UserId,
        conv: &ConvId,
        count: i64,
        upto: Seq,
    ) -> Result<()> {
        self.scripts
            .unread_reset
            .key(self.keys.unread(user))
            .arg(conv.as_str())
            .arg(count)
            .arg(upto)
            .invoke_async::<i64>(&mut self.con())
            .await
            .map(drop)
            .map_err(unavailable)
    }

    pub(super) async fn unread_load_impl(&self, user: UserId, cache: &UnreadCache) -> Result<()> {
        let key = self.keys.unread(user);
        let mut hset = redis::cmd("HSET");
        hset.arg(&key).arg(LOADED).arg(1);
        for (conv, (count, mark)) in &cache.per_conv {
            hset.arg(format!("c:{conv}"))
                .arg(count)
                .arg(format!("w:{conv}"))
                .arg(mark);
        }
        // DEL + HSET in one MULTI: a reader never sees half a cache, and a
        // concurrent count lands wholly before or after the replacement.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(&key)
            .ignore()
            .add_command(hset)
            .ignore()
            .pexpire(&key, IDLE_EXPIRY_MS as i64)
            .ignore();
        pipe.query_async::<()>(&mut self.con())
            .await
            .map_err(unavailable)
    }

    pub(super) async fn unread_get_impl(&self, user: UserId) -> Result<Option<UnreadCache>> {
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.unread(user))
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        if !fields.contains_key(LOADED) {
            return Ok(None);
        }
        let corrupt = |f: &str| StoreError::Corrupt(format!("unread field {f:?}"));
        let mut cache = UnreadCache::default();
        for (field, value) in &fields {
            let (is_count, conv) = match field.split_once(':') {
                Some(("c", conv)) => (true, conv),
                Some(("w", conv)) => (false, conv),
                _ if field == LOADED => continue,
                _ => return Err(corrupt(field)),
            };
            let conv = ConvId::parse(conv).map_err(|_| corrupt(field))?;
            let n: i64 = value.parse().map_err(|_| corrupt(field))?;
            let entry = cache.per_conv.entry(conv).or_insert((0, 0));
            if is_count {
                entry.0 = n;
            } else {
                entry.1 = n;
            }
        }
        Ok(Some(cache))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_keeps_order_per_key() {
        let calls = group(
            [("a", "1"), ("b", "2"), ("a", "3")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), [v.to_string(), "x".to_string()])),
        );
        assert_eq!(
            calls,
            vec![
                (
                    "a".to_string(),
                    vec!["1".into(), "x".into(), "3".into(), "x".into()]
                ),
                ("b".to_string(), vec!["2".into(), "x".into()]),
            ]
        );
    }
}
