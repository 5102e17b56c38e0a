//! Presence watches on Redis: one sorted set per watched user
//! (`watch:{user}`), a member per watching connection (`Watcher::member`)
//! scored by when it expires. Reads drop what expired; the set itself
//! expires with its newest entry.

use super::{RedisState, unavailable};
use crate::error::Result;
use crate::state::Watcher;
use magpie_core::{UserId, now_ms};

impl RedisState {
    /// One pipeline (split by slot on a cluster: each watched user's set
    /// is in its user's slot).
    pub(super) async fn presence_watch_impl(
        &self,
        w: &Watcher,
        add: &[UserId],
        remove: &[UserId],
        ttl_ms: u64,
    ) -> Result<()> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let member = w.member();
        let until = now_ms() + ttl_ms as i64;
        let mut pipe = redis::pipe();
        for u in add {
            let key = self.keys.watch(*u);
            pipe.zadd(&key, &member, until).ignore();
            pipe.pexpire(&key, ttl_ms as i64).ignore();
        }
        for u in remove {
            pipe.zrem(self.keys.watch(*u), &member).ignore();
        }
        pipe.query_async::<()>(&mut self.con())
            .await
            .map_err(unavailable)
    }

    /// One round trip: drop the expired entries, read the rest.
    pub(super) async fn presence_watchers_impl(&self, user: UserId) -> Result<Vec<Watcher>> {
        let key = self.keys.watch(user);
        let now = now_ms();
        let (members,): (Vec<String>,) = redis::pipe()
            .zrembyscore(&key, "-inf", now)
            .ignore()
            .cmd("ZRANGEBYSCORE")
            .arg(&key)
            .arg(format!("({now}"))
            .arg("+inf")
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        Ok(members.iter().filter_map(|m| Watcher::parse(m)).collect())
    }
}
