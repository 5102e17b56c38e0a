//! The offline index on Redis, segmented by time bucket (`crate::offline`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:offb:{uid}:conv:BUCKET` | zset, PEXPIREAT | a segment: score seq, member `seq:payload`, at most `cap` |
//! | `P:offix:{uid}:conv` | zset, PEXPIREAT | the queue's index: bucket id scored by its segment's deadline |
//! | `P:offline:{uid}:conv` | zset | the unsegmented queue of an older version: read, trimmed, never written |
//!
//! A member is `seq:payload`, not the bare payload: members of a sorted set
//! are unique, and two messages may well carry the same payload. Reads take
//! the seq from the member rather than from the score so it stays an exact
//! `i64` (scores are doubles). Each call is one script on one queue's keys
//! (one slot: the receiver's hash tag), and a batch of adds is one pipeline.
//!
//! Migration: a key of the unsegmented layout stays a read-only segment of
//! its queue — merged into reads, cut by trims and removals, held to the
//! cap, a seq re-added leaves it — and is never written or extended, so the
//! 30-day idle expiry it was given drains every such key within 30 days of
//! the upgrade with nothing to run (docs/deploy.md, "Big keys").

use super::offline_lua::{OFFLINE_ADD, OFFLINE_CUT, OFFLINE_READ};
use super::scripts::{evalsha, query_loading};
use super::{RedisState, unavailable};
use crate::error::{Result, StoreError};
use crate::offline::{Bucket, OfflineOptions, Segment, merge_after, merge_newest, order_segments};
use magpie_core::{ConvId, Seq, UserId, now_ms};
use redis::Script;
use std::collections::HashMap;

/// The offline scripts, hashed once per `RedisState`.
pub(super) struct OfflineScripts {
    pub(super) add: Script,
    read: Script,
    cut: Script,
}

impl OfflineScripts {
    pub(super) fn new() -> Self {
        OfflineScripts {
            add: Script::new(OFFLINE_ADD),
            read: Script::new(OFFLINE_READ),
            cut: Script::new(OFFLINE_CUT),
        }
    }
}

fn parse_member(member: String) -> Result<(Seq, String)> {
    let parsed = member
        .split_once(':')
        .and_then(|(s, p)| Some((s.parse().ok()?, p.to_string())));
    parsed.ok_or_else(|| StoreError::Corrupt(format!("offline member without seq: {member:?}")))
}

fn parse_sizes(flat: Vec<String>) -> Result<Vec<Segment>> {
    let corrupt = || StoreError::Corrupt(format!("offline sizes {flat:?}"));
    let segs = flat.chunks(3).map(|c| {
        let [id, exp, len] = c else {
            return Err(corrupt());
        };
        let len = len.parse().map_err(|_| corrupt())?;
        if id.is_empty() {
            return Ok(Segment {
                bucket: None,
                expires_at: None,
                len,
            });
        }
        Ok(Segment {
            bucket: Some(Bucket::parse(id).ok_or_else(corrupt)?),
            expires_at: Some(exp.parse::<f64>().map_err(|_| corrupt())? as i64),
            len,
        })
    });
    Ok(order_segments(segs.collect::<Result<_>>()?))
}

impl RedisState {
    /// A script's two keys for one queue.
    fn offline_keys(&self, user: UserId, conv: &ConvId) -> [String; 2] {
        [
            self.keys.offline_index(user, conv),
            self.keys.offline(user, conv),
        ]
    }

    /// The `OFFLINE_ADD` calls for `items`: one per queue, the items in
    /// their order; those whose segment has expired already are left out.
    fn offline_calls(
        &self,
        items: &[(UserId, ConvId, Seq, String)],
        opts: &OfflineOptions,
    ) -> Vec<(UserId, ConvId, Vec<String>)> {
        let now = now_ms();
        let mut calls: Vec<(UserId, ConvId, Vec<String>)> = Vec::new();
        let mut at: HashMap<(UserId, &ConvId), usize> = HashMap::new();
        for (user, conv, seq, payload) in items {
            let Some((bucket, expires)) = opts.place(payload, now) else {
                continue;
            };
            let i = *at.entry((*user, conv)).or_insert_with(|| {
                let head = vec![
                    self.keys.offline_base(*user, conv),
                    now.to_string(),
                    opts.cap.to_string(),
                ];
                calls.push((*user, conv.clone(), head));
                calls.len() - 1
            });
            calls[i].2.extend([
                bucket.id(),
                expires.to_string(),
                seq.to_string(),
                format!("{seq}:{payload}"),
            ]);
        }
        calls
    }

    /// Appends the adds of `items` to a pipeline; `false` if there are none.
    pub(super) fn pipe_offline_adds(
        &self,
        pipe: &mut redis::Pipeline,
        items: &[(UserId, ConvId, Seq, String)],
        opts: &OfflineOptions,
    ) -> bool {
        let calls = self.offline_calls(items, opts);
        for (user, conv, args) in &calls {
            let [idx, legacy] = self.offline_keys(*user, conv);
            pipe.cmd("EVALSHA")
                .arg(self.scripts.offline.add.get_hash())
                .arg(2)
                .arg(idx)
                .arg(legacy)
                .arg(args)
                .ignore();
        }
        !calls.is_empty()
    }

    pub(super) async fn offline_add_impl(
        &self,
        items: &[(UserId, ConvId, Seq, String)],
        opts: &OfflineOptions,
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        if !self.pipe_offline_adds(&mut pipe, items, opts) {
            return Ok(());
        }
        query_loading::<()>(&mut self.con(), &pipe, &[&self.scripts.offline.add])
            .await
            .map_err(unavailable)
    }

    /// Both kinds of calls in one pipeline: one round trip (a user's queue
    /// keys and unread hash share a slot, so a cluster splits it by user only).
    pub(super) async fn arrived_impl(
        &self,
        items: &[(UserId, ConvId, Seq, String)],
        opts: &OfflineOptions,
    ) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        self.pipe_offline_adds(&mut pipe, items, opts);
        let counts = items.iter().map(|(u, c, s, _)| (u, c, s));
        for (key, args) in self.unread_calls(counts) {
            evalsha(&mut pipe, &self.scripts.unread_count, &key, &args).ignore();
        }
        let scripts = [&self.scripts.offline.add, &self.scripts.unread_count];
        query_loading::<()>(&mut self.con(), &pipe, &scripts)
            .await
            .map_err(unavailable)
    }

    /// Runs one offline script on one queue: `mode` and its arguments after
    /// the key base and the clock.
    async fn offline_call<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        user: UserId,
        conv: &ConvId,
        mode: &[String],
    ) -> Result<T> {
        let [idx, legacy] = self.offline_keys(user, conv);
        script
            .key(idx)
            .key(legacy)
            .arg(self.keys.offline_base(user, conv))
            .arg(now_ms())
            .arg(mode)
            .invoke_async(&mut self.con())
            .await
            .map_err(unavailable)
    }

    async fn offline_read(
        &self,
        user: UserId,
        conv: &ConvId,
        mode: &[String],
    ) -> Result<Vec<(Seq, String)>> {
        let script = &self.scripts.offline.read;
        let members: Vec<String> = self.offline_call(script, user, conv, mode).await?;
        members.into_iter().map(parse_member).collect()
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
        let mode = ["newest".to_string(), n.to_string()];
        Ok(merge_newest(self.offline_read(user, conv, &mode).await?, n))
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
        let mode = ["after".to_string(), after.to_string(), n.to_string()];
        Ok(merge_after(self.offline_read(user, conv, &mode).await?, n))
    }

    pub(super) async fn offline_trim_impl(
        &self,
        user: UserId,
        conv: &ConvId,
        up_to: Seq,
    ) -> Result<usize> {
        let mode = ["trim".to_string(), up_to.to_string()];
        let script = &self.scripts.offline.cut;
        self.offline_call(script, user, conv, &mode).await
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
        let mut mode = vec!["remove".to_string()];
        mode.extend(seqs.iter().map(Seq::to_string));
        let script = &self.scripts.offline.cut;
        self.offline_call::<usize>(script, user, conv, &mode)
            .await
            .map(drop)
    }

    pub(super) async fn offline_segments_impl(
        &self,
        user: UserId,
        conv: &ConvId,
    ) -> Result<Vec<Segment>> {
        let script = &self.scripts.offline.read;
        let mode = ["sizes".to_string()];
        parse_sizes(self.offline_call(script, user, conv, &mode).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_keeps_colons_in_the_payload() {
        assert_eq!(
            parse_member("12:a:b".into()).expect("member"),
            (12, "a:b".to_string())
        );
        assert!(parse_member("nope".into()).is_err());
    }

    #[test]
    fn sizes_read_newest_first_with_the_old_key_last() {
        let flat = ["w2900", "1755000000000", "3", "w2901", "1755600000000", "0"]
            .into_iter()
            .chain(["m24307", "1757000000000", "4", "", "-1", "2"])
            .map(String::from)
            .collect();
        let segs = parse_sizes(flat).expect("sizes");
        let ids: Vec<_> = segs.iter().map(|s| s.bucket.map(Bucket::id)).collect();
        // m24307 (August 2025) ends after w2900 (its first days); the empty w2901 is left out.
        assert_eq!(ids, [Some("m24307".into()), Some("w2900".into()), None]);
        assert_eq!(segs[2].len, 2);
        assert!(parse_sizes(vec!["x".into()]).is_err());
    }
}
