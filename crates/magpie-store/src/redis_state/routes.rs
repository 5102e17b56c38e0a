//! Routes (a hash per user, indexed by a hash per node), the idempotency
//! fast path and connection tickets.
//!
//! The per-user hash `route:{uid}` is the truth; the per-node hash
//! `node:{node}` is only an index. They hash to different cluster slots, so
//! no script can update both atomically: each operation updates the user's
//! hash atomically (a Lua script) and the index in the same pipeline or one
//! step later. A crash or race in between can leave a stale index entry,
//! never a stale route, and [`node_routes`](RedisState::node_routes_impl)
//! checks every index entry against the user's hash, so it answers from the
//! truth; a sweeper may rebuild the index from the user hashes at any time.

use super::scripts::{evalsha, query_loading};
use super::{RedisState, from_json, to_json, unavailable};
use crate::error::Result;
use crate::state::{Route, TicketClaims};
use magpie_core::{Accepted, ClientMsgId, DeviceId, UserId};
use std::collections::HashMap;

/// The field of a route in its node's index hash.
fn index_field(user: UserId, device: &DeviceId) -> String {
    format!("{}:{device}", user.0)
}

/// A substring found in a route's JSON exactly when the route is on `node`
/// with connection `conn`. serde writes `Route`'s fields in declaration
/// order (`user, device, node, conn, since`), the node as an escaped JSON
/// string, and a device id cannot contain quotes, so nothing else in the
/// record can match. Comparing text keeps a u64 `conn` exact, which Lua's
/// doubles would not.
fn route_needle(node: &str, conn: u64) -> String {
    format!(
        ",\"node\":{},\"conn\":{conn},",
        serde_json::Value::from(node)
    )
}

impl RedisState {
    pub(super) async fn add_route_impl(&self, route: &Route) -> Result<Option<Route>> {
        let json = to_json(route)?;
        let device = route.device.as_str().to_string();
        let mut con = self.con();
        // One round trip: swap the record, index it on its node.
        let mut pipe = redis::pipe();
        evalsha(
            &mut pipe,
            &self.scripts.swap_field,
            &self.keys.route(route.user),
            &[device, json.clone()],
        );
        pipe.hset(
            self.keys.node(&route.node),
            index_field(route.user, &route.device),
            &json,
        )
        .ignore();
        let (old,): (Option<String>,) = query_loading(&mut con, &pipe, &[&self.scripts.swap_field])
            .await
            .map_err(unavailable)?;
        let Some(old) = old else { return Ok(None) };
        let old: Route = from_json(&old)?;
        if old.node != route.node {
            // The device moved: unindex it on the old node, unless that
            // entry was already replaced by something newer.
            self.scripts
                .del_field_if
                .key(self.keys.node(&old.node))
                .arg(index_field(old.user, &old.device))
                .arg(route_needle(&old.node, old.conn))
                .invoke_async::<i64>(&mut con)
                .await
                .map_err(unavailable)?;
        }
        Ok(Some(old))
    }

    pub(super) async fn remove_route_impl(
        &self,
        user: UserId,
        device: &DeviceId,
        node: &str,
        conn: u64,
    ) -> Result<bool> {
        let needle = route_needle(node, conn);
        let script = &self.scripts.del_field_if;
        // Both deletions are conditional on (node, conn), so the index entry
        // goes even when the record was already replaced: an index entry
        // naming this closed connection is stale either way.
        let mut pipe = redis::pipe();
        evalsha(
            &mut pipe,
            script,
            &self.keys.route(user),
            &[device.as_str().to_string(), needle.clone()],
        );
        evalsha(
            &mut pipe,
            script,
            &self.keys.node(node),
            &[index_field(user, device), needle],
        )
        .ignore();
        let (removed,): (i64,) = query_loading(&mut self.con(), &pipe, &[script])
            .await
            .map_err(unavailable)?;
        Ok(removed == 1)
    }

    pub(super) async fn routes_impl(
        &self,
        users: &[UserId],
    ) -> Result<HashMap<UserId, Vec<Route>>> {
        if users.is_empty() {
            return Ok(HashMap::new());
        }
        let mut pipe = redis::pipe();
        for u in users {
            pipe.hgetall(self.keys.route(*u));
        }
        let records: Vec<HashMap<String, String>> = pipe
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        let mut out = HashMap::new();
        for (user, record) in users.iter().zip(records) {
            if record.is_empty() {
                continue;
            }
            let routes = record
                .values()
                .map(|v| from_json(v))
                .collect::<Result<Vec<Route>>>()?;
            out.insert(*user, routes);
        }
        Ok(out)
    }

    pub(super) async fn restore_routes_impl(&self, routes: &[Route]) -> Result<usize> {
        if routes.is_empty() {
            return Ok(0);
        }
        let mut con = self.con();
        // The record first, only where the device has none (HSETNX); then
        // the index entries of the records written — the order that can
        // leave a missing index entry, never a stale route (module comment).
        let mut pipe = redis::pipe();
        let mut jsons = Vec::with_capacity(routes.len());
        for route in routes {
            let json = to_json(route)?;
            pipe.hset_nx(self.keys.route(route.user), route.device.as_str(), &json);
            jsons.push(json);
        }
        let written: Vec<bool> = pipe.query_async(&mut con).await.map_err(unavailable)?;
        let mut index = redis::pipe();
        let mut n = 0;
        for ((route, json), w) in routes.iter().zip(&jsons).zip(written) {
            if w {
                index
                    .hset(
                        self.keys.node(&route.node),
                        index_field(route.user, &route.device),
                        json,
                    )
                    .ignore();
                n += 1;
            }
        }
        if n > 0 {
            index.exec_async(&mut con).await.map_err(unavailable)?;
        }
        Ok(n)
    }

    pub(super) async fn node_routes_impl(&self, node: &str) -> Result<Vec<Route>> {
        let mut con = self.con();
        let index: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.node(node))
            .query_async(&mut con)
            .await
            .map_err(unavailable)?;
        let candidates = index
            .values()
            .map(|v| from_json(v))
            .collect::<Result<Vec<Route>>>()?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        // The index may lag the user hashes (see the module docs): read each
        // candidate's current record and keep those still on this node.
        let mut pipe = redis::pipe();
        for r in &candidates {
            pipe.hget(self.keys.route(r.user), r.device.as_str());
        }
        let current: Vec<Option<String>> = pipe.query_async(&mut con).await.map_err(unavailable)?;
        let mut out = Vec::with_capacity(current.len());
        for json in current.into_iter().flatten() {
            let route: Route = from_json(&json)?;
            if route.node == node {
                out.push(route);
            }
        }
        Ok(out)
    }

    /// One pipeline of SET NX PX for the batch (one sender: one slot).
    pub(super) async fn idem_put_impl(
        &self,
        from: UserId,
        items: &[(ClientMsgId, Accepted)],
        ttl_ms: u64,
    ) -> Result<()> {
        // Redis rejects PX 0; an entry that expires at once is no entry.
        if ttl_ms == 0 || items.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (cmid, accepted) in items {
            pipe.cmd("SET")
                .arg(self.keys.idem(from, *cmid))
                .arg(to_json(accepted)?)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.con())
            .await
            .map_err(unavailable)
    }

    /// One MGET for the batch (one sender: one slot).
    pub(super) async fn idem_get_impl(
        &self,
        from: UserId,
        cmids: &[ClientMsgId],
    ) -> Result<Vec<Option<Accepted>>> {
        if cmids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = cmids.iter().map(|c| self.keys.idem(from, *c)).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        values
            .iter()
            .map(|v| v.as_deref().map(from_json).transpose())
            .collect()
    }

    pub(super) async fn ticket_put_impl(
        &self,
        ticket: &str,
        claims: &TicketClaims,
        ttl_ms: u64,
    ) -> Result<()> {
        let key = self.keys.ticket(ticket);
        let cmd = if ttl_ms == 0 {
            // A zero TTL replaces the ticket with one already expired.
            redis::cmd("DEL").arg(key).to_owned()
        } else {
            redis::cmd("SET")
                .arg(key)
                .arg(to_json(claims)?)
                .arg("PX")
                .arg(ttl_ms)
                .to_owned()
        };
        cmd.exec_async(&mut self.con()).await.map_err(unavailable)
    }

    pub(super) async fn ticket_take_impl(&self, ticket: &str) -> Result<Option<TicketClaims>> {
        // GETDEL (Redis >= 6.2): read and delete in one command, so a ticket
        // raced by two connections is handed to one of them only.
        let v: Option<String> = redis::cmd("GETDEL")
            .arg(self.keys.ticket(ticket))
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        v.as_deref().map(from_json).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needle_matches_only_the_same_node_and_conn() {
        let r = Route {
            user: UserId(12),
            device: DeviceId::new("phone").expect("device"),
            node: "n\"1".into(),
            conn: u64::MAX,
            since: 10,
        };
        let json = serde_json::to_string(&r).expect("json");
        assert!(json.contains(&route_needle("n\"1", u64::MAX)));
        assert!(!json.contains(&route_needle("n\"1", u64::MAX - 1)));
        assert!(!json.contains(&route_needle("n", u64::MAX)));
    }
}
