//! One connection type for a standalone Redis and a Redis Cluster.
//!
//! The rest of the backend builds pipelines freely (one round trip per
//! batch), and some span several users, so several hash slots. A cluster
//! refuses a cross-slot pipeline; here it is split into one pipeline per
//! slot, sent concurrently, and the replies are put back in command order.
//! Atomicity is unaffected: every multi-key update is a single-key Lua
//! script or touches one slot (the key layout's hash tags), and a pipeline
//! was never a transaction here.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Arg, Cmd, Pipeline, RedisFuture, RedisResult, Value};

#[derive(Clone)]
pub(crate) enum Con {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Con {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        crate::round_trips::redis(1);
        match self {
            Con::Single(c) => c.req_packed_command(cmd),
            Con::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Con::Single(c) => {
                crate::round_trips::redis(1);
                c.req_packed_commands(pipeline, offset, count)
            }
            // `per_slot` counts one per slot it sends to.
            Con::Cluster(c) => Box::pin(per_slot(c.clone(), pipeline, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Con::Single(c) => c.get_db(),
            Con::Cluster(c) => c.get_db(),
        }
    }
}

/// The key a command is routed by: the first key of a script call, else
/// the first argument. `None` for keyless commands (they go anywhere).
fn key_of(cmd: &Cmd) -> Option<Vec<u8>> {
    let mut args = cmd.args_iter().map(|a| match a {
        Arg::Simple(b) => Some(b),
        _ => None,
    });
    let name = args.next()??.to_ascii_uppercase();
    match name.as_slice() {
        b"EVALSHA" | b"EVAL" | b"FCALL" => {
            let _script = args.next()?;
            let numkeys: usize = std::str::from_utf8(args.next()??).ok()?.parse().ok()?;
            (numkeys > 0).then(|| args.next().flatten().map(<[u8]>::to_vec))?
        }
        b"SCRIPT" | b"PING" | b"INFO" => None,
        _ => args.next().flatten().map(<[u8]>::to_vec),
    }
}

async fn per_slot(
    mut con: ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    if pipeline.is_transaction() || offset != 0 {
        crate::round_trips::redis(1);
        return con.req_packed_commands(pipeline, offset, count).await;
    }
    // (slot, sub-pipeline, positions in the original) in first-seen order.
    let mut groups: Vec<(Option<Slot>, Pipeline, Vec<usize>)> = Vec::new();
    for (i, cmd) in pipeline.cmd_iter().enumerate() {
        let slot = key_of(cmd).map(Slot::for_key);
        // A keyless command rides with whatever group comes first.
        let at = groups
            .iter()
            .position(|(s, _, _)| slot.is_none() || s.is_none() || *s == slot);
        let at = at.unwrap_or_else(|| {
            groups.push((slot, Pipeline::new(), Vec::new()));
            groups.len() - 1
        });
        let group = &mut groups[at];
        if group.0.is_none() {
            group.0 = slot;
        }
        group.1.add_command(cmd.clone());
        group.2.push(i);
    }
    crate::round_trips::redis(groups.len().max(1) as u64);
    if groups.len() <= 1 {
        return con.req_packed_commands(pipeline, offset, count).await;
    }
    let replies = futures_util::future::join_all(groups.iter().map(|(_, sub, _)| {
        let mut con = con.clone();
        async move { con.req_packed_commands(sub, 0, sub.len()).await }
    }))
    .await;
    let mut out = vec![Value::Nil; count];
    for ((_, _, positions), reply) in groups.iter().zip(replies) {
        for (&i, v) in positions.iter().zip(reply?) {
            if i < count {
                out[i] = v;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_route_by_their_first_key_and_commands_by_their_first_argument() {
        let mut eval = redis::cmd("EVALSHA");
        eval.arg("abc").arg(1).arg("p:route:{7}").arg("x");
        assert_eq!(key_of(&eval).as_deref(), Some(&b"p:route:{7}"[..]));
        let mut hget = redis::cmd("HGETALL");
        hget.arg("p:node:{n1}");
        assert_eq!(key_of(&hget).as_deref(), Some(&b"p:node:{n1}"[..]));
        let mut load = redis::cmd("SCRIPT");
        load.arg("LOAD").arg("return 1");
        assert_eq!(key_of(&load), None);
        // Same hash tag, same slot.
        assert_eq!(Slot::for_key("a:{7}:x"), Slot::for_key("b:{7}"));
    }
}
