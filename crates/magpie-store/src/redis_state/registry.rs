//! The service registry (heartbeat records with a TTL plus the set of known
//! nodes) and leases.
//!
//! A heartbeat writes `nodeinfo:{reg}:node` (`SET … PX`) and adds the node to
//! `nodes:{reg}` in one `MULTI`. Both keys share the `{reg}` hash tag, so
//! `nodes()` reads the set and then every record with one `MGET`; a record
//! whose TTL ran out is simply missing and skipped.

use super::{RedisState, from_json, to_json, unavailable};
use crate::error::Result;
use crate::state::NodeInfo;

/// Redis rejects `PX 0`; a 1 ms TTL is as good as expired.
pub(super) fn px(ttl_ms: u64) -> u64 {
    ttl_ms.max(1)
}

impl RedisState {
    pub(super) async fn node_heartbeat_impl(&self, info: &NodeInfo, ttl_ms: u64) -> Result<bool> {
        let mut pipe = redis::pipe();
        // SET … GET (Redis 6.2+) answers the record it replaced: none means
        // a first heartbeat, an expired record, or a state that lost it all.
        pipe.atomic()
            .cmd("SET")
            .arg(self.keys.node_info(&info.node))
            .arg(to_json(info)?)
            .arg("PX")
            .arg(px(ttl_ms))
            .arg("GET")
            .sadd(self.keys.nodes(), &info.node)
            .ignore();
        let (previous,): (Option<String>,) = pipe
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        Ok(previous.is_some())
    }

    pub(super) async fn node_deregister_impl(&self, node: &str) -> Result<()> {
        redis::cmd("DEL")
            .arg(self.keys.node_info(node))
            .exec_async(&mut self.con())
            .await
            .map_err(unavailable)
    }

    pub(super) async fn nodes_impl(&self) -> Result<Vec<NodeInfo>> {
        let mut con = self.con();
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.nodes())
            .query_async(&mut con)
            .await
            .map_err(unavailable)?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        names.sort();
        let keys: Vec<String> = names.iter().map(|n| self.keys.node_info(n)).collect();
        let records: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut con)
            .await
            .map_err(unavailable)?;
        let mut out = records
            .into_iter()
            .flatten()
            .map(|json| from_json(&json))
            .collect::<Result<Vec<NodeInfo>>>()?;
        out.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(out)
    }

    pub(super) async fn known_nodes_impl(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.nodes())
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        names.sort();
        Ok(names)
    }

    pub(super) async fn forget_node_impl(&self, node: &str) -> Result<()> {
        redis::cmd("SREM")
            .arg(self.keys.nodes())
            .arg(node)
            .exec_async(&mut self.con())
            .await
            .map_err(unavailable)
    }

    pub(super) async fn lease_impl(&self, name: &str, holder: &str, ttl_ms: u64) -> Result<bool> {
        let held: i64 = self
            .scripts
            .lease
            .key(self.keys.lease(name))
            .arg(holder)
            .arg(px(ttl_ms))
            .invoke_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        Ok(held == 1)
    }
}
