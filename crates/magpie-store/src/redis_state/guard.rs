//! The edge guard's keys (docs/edge.md):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:guard:{name}` | string, PX | a counter (INCR, PEXPIRE NX) or a value |
//! | `P:decisions:{guard}` | hash | decision id → JSON |
//! | `P:decisions:{guard}:ver` | string | the decisions' version (INCR) |
//!
//! A counter's expiry is set only by its first hit (`PEXPIRE … NX`, Redis
//! 7), so it is a fixed window that hits cannot prolong. The two
//! decision keys share the `{guard}` hash tag: a change and its version
//! bump are one `MULTI`, and a reader gets both with one `MULTI` too.

use super::registry::px;
use super::{RedisState, unavailable};
use crate::error::Result;

impl RedisState {
    fn guard_key(&self, name: &str) -> String {
        format!("{}:guard:{{{name}}}", self.prefix())
    }

    fn decisions_key(&self) -> String {
        format!("{}:decisions:{{guard}}", self.prefix())
    }

    fn decisions_ver_key(&self) -> String {
        format!("{}:decisions:{{guard}}:ver", self.prefix())
    }

    pub(super) async fn guard_hit_impl(&self, name: &str, ttl_ms: u64) -> Result<u64> {
        let key = self.guard_key(name);
        let (n,): (u64,) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(px(ttl_ms))
            .arg("NX")
            .ignore()
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        Ok(n)
    }

    pub(super) async fn guard_count_impl(&self, name: &str) -> Result<u64> {
        let n: Option<u64> = redis::cmd("GET")
            .arg(self.guard_key(name))
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        Ok(n.unwrap_or(0))
    }

    pub(super) async fn guard_reset_impl(&self, name: &str) -> Result<()> {
        redis::cmd("DEL")
            .arg(self.guard_key(name))
            .exec_async(&mut self.con())
            .await
            .map_err(unavailable)
    }

    pub(super) async fn guard_swap_impl(
        &self,
        name: &str,
        value: &str,
        ttl_ms: u64,
    ) -> Result<Option<String>> {
        redis::cmd("SET")
            .arg(self.guard_key(name))
            .arg(value)
            .arg("PX")
            .arg(px(ttl_ms))
            .arg("GET")
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)
    }

    pub(super) async fn guard_take_impl(&self, name: &str) -> Result<Option<String>> {
        redis::cmd("GETDEL")
            .arg(self.guard_key(name))
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)
    }

    pub(super) async fn decision_put_impl(&self, id: &str, json: &str) -> Result<u64> {
        let (ver,): (u64,) = redis::pipe()
            .atomic()
            .hset(self.decisions_key(), id, json)
            .ignore()
            .incr(self.decisions_ver_key(), 1)
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        Ok(ver)
    }

    pub(super) async fn decision_remove_impl(&self, id: &str) -> Result<bool> {
        let removed: u64 = redis::cmd("HDEL")
            .arg(self.decisions_key())
            .arg(id)
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        if removed > 0 {
            redis::cmd("INCR")
                .arg(self.decisions_ver_key())
                .exec_async(&mut self.con())
                .await
                .map_err(unavailable)?;
        }
        Ok(removed > 0)
    }

    pub(super) async fn decisions_version_impl(&self) -> Result<u64> {
        let v: Option<u64> = redis::cmd("GET")
            .arg(self.decisions_ver_key())
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        Ok(v.unwrap_or(0))
    }

    pub(super) async fn decisions_impl(&self) -> Result<(u64, Vec<String>)> {
        let (ver, all): (Option<u64>, Vec<String>) = redis::pipe()
            .atomic()
            .get(self.decisions_ver_key())
            .hvals(self.decisions_key())
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        Ok((ver.unwrap_or(0), all))
    }
}
