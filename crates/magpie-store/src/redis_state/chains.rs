//! Client ordering chains: one string per (user, device), `chain:{uid}:device`,
//! under the user's hash tag. Reads are a GET; both writes are single-key
//! Lua scripts (`scripts.rs`), so each is atomic on a standalone Redis and
//! in a Redis Cluster alike.

use super::registry::px;
use super::{RedisState, unavailable};
use crate::error::{Result, StoreError};
use crate::state::ChainAdvance;
use magpie_core::{DeviceId, UserId};

impl RedisState {
    pub(super) async fn chain_get_impl(
        &self,
        user: UserId,
        device: &DeviceId,
    ) -> Result<Option<String>> {
        redis::cmd("GET")
            .arg(self.keys.chain(user, device))
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)
    }

    pub(super) async fn chain_init_impl(
        &self,
        user: UserId,
        device: &DeviceId,
        fresh: &str,
        ttl_ms: u64,
    ) -> Result<String> {
        self.scripts
            .chain_init
            .key(self.keys.chain(user, device))
            .arg(fresh)
            .arg(px(ttl_ms))
            .invoke_async(&mut self.con())
            .await
            .map_err(unavailable)
    }

    pub(super) async fn chain_advance_impl(
        &self,
        user: UserId,
        device: &DeviceId,
        expect: &str,
        next: &str,
        ttl_ms: u64,
    ) -> Result<ChainAdvance> {
        let answer: Vec<String> = self
            .scripts
            .chain_advance
            .key(self.keys.chain(user, device))
            .arg(expect)
            .arg(next)
            .arg(px(ttl_ms))
            .invoke_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        let mut parts = answer.into_iter();
        match (parts.next().as_deref(), parts.next()) {
            (Some("a"), None) => Ok(ChainAdvance::Advanced),
            (Some("n"), None) => Ok(ChainAdvance::Absent),
            (Some("e"), Some(cur)) => Ok(ChainAdvance::Expected(cur)),
            other => Err(StoreError::Corrupt(format!(
                "chain advance answered {other:?}"
            ))),
        }
    }
}
