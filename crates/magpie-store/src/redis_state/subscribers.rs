//! Big authors and their subscribers on Redis (docs/feeds.md): the flags in
//! one hash (`feedbig:{feeds}`, author → when flagged), and per big author
//! a sorted set of its subscribers scored by deadline (`subs:{author}`,
//! one key per author so a cluster spreads them). A fan-out scans the set
//! with `ZSCAN`, which returns every member present for the whole scan at
//! least once, whatever is added or rescored meanwhile.

use super::scripts::{evalsha, query_loading};
use super::{RedisState, unavailable};
use crate::error::{Result, StoreError};
use crate::state::BigAuthors;
use magpie_core::{UserId, now_ms};

impl RedisState {
    /// The sequence, then the flags (one slot, one connection: in that
    /// order): a flag set in between has a sequence above the one returned,
    /// so a reader that records it never trusts a flag it did not see.
    pub(super) async fn feed_big_impl(&self, authors: &[UserId]) -> Result<BigAuthors> {
        let ids: Vec<i64> = authors.iter().map(|a| a.0).collect();
        // HMGET needs a field: ask for a user id that never exists.
        let ids = if ids.is_empty() { vec![0] } else { ids };
        let (seq, at): (Option<i64>, Vec<Option<i64>>) = redis::pipe()
            .get(self.keys.feed_big_seq())
            .cmd("HMGET")
            .arg(self.keys.feed_big())
            .arg(&ids)
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        let flagged = authors.iter().zip(at).filter_map(|(a, t)| Some((*a, t?)));
        let flagged = flagged.collect();
        Ok(BigAuthors {
            flagged,
            seq: seq.unwrap_or(0),
        })
    }

    pub(super) async fn feed_set_big_impl(&self, author: UserId) -> Result<i64> {
        let script = &self.scripts.feed_flag;
        let mut pipe = redis::pipe();
        pipe.cmd("EVALSHA")
            .arg(script.get_hash())
            .arg(2)
            .arg(self.keys.feed_big())
            .arg(self.keys.feed_big_seq())
            .arg(author.0);
        let (seq,): (i64,) = query_loading(&mut self.con(), &pipe, &[script])
            .await
            .map_err(unavailable)?;
        Ok(seq)
    }

    /// One `FEED_SUB` per author, all in one pipeline.
    pub(super) async fn feed_subscribe_impl(
        &self,
        reader: UserId,
        authors: &[UserId],
        until_ms: i64,
    ) -> Result<bool> {
        if authors.is_empty() {
            return Ok(true);
        }
        let script = &self.scripts.feed_sub;
        let args = [
            reader.0.to_string(),
            until_ms.to_string(),
            now_ms().to_string(),
        ];
        let mut pipe = redis::pipe();
        for author in authors {
            evalsha(&mut pipe, script, &self.keys.subscribers(*author), &args);
        }
        let there: Vec<i64> = query_loading(&mut self.con(), &pipe, &[script])
            .await
            .map_err(unavailable)?;
        Ok(there.iter().all(|t| *t == 1))
    }

    pub(super) async fn feed_subscribers_impl(
        &self,
        author: UserId,
        cursor: u64,
        n: usize,
    ) -> Result<(Vec<UserId>, u64)> {
        let (next, flat): (u64, Vec<String>) = redis::cmd("ZSCAN")
            .arg(self.keys.subscribers(author))
            .arg(cursor)
            .arg("COUNT")
            .arg(n.max(1))
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        let now = now_ms() as f64;
        let mut readers = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks(2) {
            let [reader, until] = pair else {
                return Err(StoreError::Corrupt(format!("subscribers of {author}")));
            };
            let until: f64 = until
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("subscription {until:?}")))?;
            if until > now {
                let reader = reader
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("subscriber {reader:?}")))?;
                readers.push(UserId(reader));
            }
        }
        Ok((readers, next))
    }
}
