//! Offline queues (a sorted set per receiver and conversation) and the
//! unread-count cache (a hash per user), each expiring when left alone
//! (`IDLE_EXPIRY_MS`).
//!
//! A queue member is `seq:payload`, not the bare payload: members of a
//! sorted set are unique, and two messages may well carry the same payload.
//! Reads take the seq from the member rather than from the score so it stays
//! an exact `i64` (scores are doubles).

use super::scripts::{Call, eval_each, evalsha, query_loading};
use super::{RedisState, unavailable};
use crate::error::{Result, StoreError};
use crate::state::UnreadCache;
use magpie_core::{ConvId, Seq, UserId};
use std::collections::HashMap;

/// The marker field of a loaded unread cache (an empty cache still exists).
const LOADED: &str = "loaded";

/// An offline queue expires this long after its last write, an unread cache
/// this long after it was loaded (30 days): derived state of users who do
/// not come back must not stay in Redis forever. Both are rebuilt from the
/// store when needed (sync reads the store; the next unread read reloads).
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

fn parse_member(member: String) -> Result<(Seq, String)> {
    let parsed = member
        .split_once(':')
        .and_then(|(s, p)| Some((s.parse().ok()?, p.to_string())));
    parsed.ok_or_else(|| StoreError::Corrupt(format!("offline member without seq: {member:?}")))
}

fn parse_members(members: Vec<String>) -> Result<Vec<(Seq, String)>> {
    members.into_iter().map(parse_member).collect()
}

/// A `usize` limit as a Redis count (which is signed).
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl RedisState {
    /// The `OFFLINE_ADD` calls for `items`: one per queue.
    fn offline_calls(&self, items: &[(UserId, ConvId, Seq, String)]) -> Vec<Call> {
        let mut calls = group(items.iter().map(|(user, conv, seq, payload)| {
            let key = self.keys.offline(*user, conv);
            (key, [seq.to_string(), format!("{seq}:{payload}")])
        }));
        for (_, args) in &mut calls {
            args.insert(0, IDLE_EXPIRY_MS.to_string());
            args.insert(0, crate::state::OFFLINE_CAP.to_string());
        }
        calls
    }

    /// The `UNREAD_COUNT` calls for `items`: one per user.
    fn unread_calls<'a>(
        &self,
        items: impl Iterator<Item = (&'a UserId, &'a ConvId, &'a Seq)>,
    ) -> Vec<Call> {
        group(items.map(|(user, conv, seq)| {
            (self.keys.unread(*user), [conv.to_string(), seq.to_string()])
        }))
    }

    pub(super) async fn offline_add_impl(
        &self,
        items: &[(UserId, ConvId, Seq, String)],
    ) -> Result<()> {
        let calls = self.offline_calls(items);
        eval_each(&mut self.con(), &self.scripts.offline_add, &calls)
            .await
            .map_err(unavailable)
    }

    /// Both scripts' calls in one pipeline: one round trip (a user's queue
    /// and unread hash share a slot, so a cluster splits it by user only).
    pub(super) async fn arrived_impl(&self, items: &[(UserId, ConvId, Seq, String)]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (key, args) in self.offline_calls(items) {
            evalsha(&mut pipe, &self.scripts.offline_add, &key, &args).ignore();
        }
        let counts = items.iter().map(|(u, c, s, _)| (u, c, s));
        for (key, args) in self.unread_calls(counts) {
            evalsha(&mut pipe, &self.scripts.unread_count, &key, &args).ignore();
        }
        let scripts = [&self.scripts.offline_add, &self.scripts.unread_count];
        query_loading::<()>(&mut self.con(), &pipe, &scripts)
            .await
            .map_err(unavailable)
    }

    pub(super) async fn offline_newest_impl(
        &self,
        user: UserId,
        conv: &ConvId,
        n: usize,
    ) -> Result<Vec<(Seq, String)>> {
        // ZREVRANGE 0 -1 would mean "everything".
        if n == 0 {
            return Ok(Vec::new());
        }
        let members: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(self.keys.offline(user, conv))
            .arg(0)
            .arg(limit(n) - 1)
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        parse_members(members)
    }

    pub(super) async fn offline_after_impl(
        &self,
        user: UserId,
        conv: &ConvId,
        after: Seq,
        n: usize,
    ) -> Result<Vec<(Seq, String)>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.offline(user, conv))
            .arg(format!("({after}"))
            .arg("+inf")
            .arg("LIMIT")
            .arg(0)
            .arg(limit(n))
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        parse_members(members)
    }

    pub(super) async fn offline_trim_impl(
        &self,
        user: UserId,
        conv: &ConvId,
        up_to: Seq,
    ) -> Result<usize> {
        // -inf rather than 0: nothing below 0 should exist, and if it did,
        // it is trimmed too.
        redis::cmd("ZREMRANGEBYSCORE")
            .arg(self.keys.offline(user, conv))
            .arg("-inf")
            .arg(up_to)
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)
    }

    pub(super) async fn offline_remove_impl(
        &self,
        user: UserId,
        conv: &ConvId,
        seqs: &[Seq],
    ) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let key = self.keys.offline(user, conv);
        // One key, so a MULTI is valid in cluster mode too.
        let mut pipe = redis::pipe();
        pipe.atomic();
        for s in seqs {
            pipe.zrembyscore(&key, *s, *s).ignore();
        }
        pipe.query_async::<()>(&mut self.con())
            .await
            .map_err(unavailable)
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

    #[test]
    fn member_keeps_colons_in_the_payload() {
        assert_eq!(
            parse_member("12:a:b".into()).expect("member"),
            (12, "a:b".to_string())
        );
        assert!(parse_member("nope".into()).is_err());
    }
}
