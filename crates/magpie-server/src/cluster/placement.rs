//! Where a user's next connection goes: among live nodes with the conn role
//! that serve the transport, one of the least loaded; a configured share of
//! users (by a stable hash of the user id, so a user stays on one side) is
//! sent to canary nodes when there are any.

use magpie_core::{Transport, UserId};
use magpie_store::NodeInfo;

/// The user's bucket in 0..100: stable across nodes and restarts.
pub fn bucket(user: UserId) -> u32 {
    // splitmix64: consecutive ids spread evenly over the buckets.
    let mut z = (user.0 as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) % 100) as u32
}

fn serves(n: &NodeInfo, transport: Transport) -> bool {
    n.roles.iter().any(|r| r == "conn")
        && match transport {
            Transport::Ws => !n.ws_url.is_empty(),
            Transport::Tcp => !n.tcp_addr.is_empty(),
        }
}

/// Loads are as old as the last heartbeat, so "the least loaded node" would
/// send a whole burst of connects (clients of a dead or draining node coming
/// back) to one node. Nodes within this slack of the minimum load are
/// equally good and one of them is picked at random.
fn slack(min_load: u64) -> u64 {
    (min_load / 10).max(16)
}

/// The node for `user`'s next connection, if any live node serves `transport`.
pub fn choose(
    nodes: &[NodeInfo],
    user: UserId,
    transport: Transport,
    canary_percent: u32,
) -> Option<&NodeInfo> {
    let serving: Vec<&NodeInfo> = nodes.iter().filter(|n| serves(n, transport)).collect();
    // A draining node takes new connections only when every node drains:
    // better a node on its way out than no connection at all.
    let open: Vec<&NodeInfo> = serving.iter().copied().filter(|n| !n.draining).collect();
    let candidates = if open.is_empty() { serving } else { open };
    let wants_canary = bucket(user) < canary_percent;
    let side: Vec<&NodeInfo> = candidates
        .iter()
        .copied()
        .filter(|n| n.canary == wants_canary)
        .collect();
    let pool = if side.is_empty() { candidates } else { side };
    let min = pool.iter().map(|n| n.load).min()?;
    let near: Vec<&NodeInfo> = pool
        .into_iter()
        .filter(|n| n.load <= min + slack(min))
        .collect();
    near.get(rand::random_range(0..near.len())).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, load: u64, canary: bool) -> NodeInfo {
        NodeInfo {
            node: name.into(),
            roles: vec!["edge".into(), "conn".into()],
            ws_url: format!("ws://{name}/v1/ws"),
            tcp_addr: format!("{name}:1"),
            version: if canary { "2".into() } else { "1".into() },
            load,
            canary,
            seen_at: 0,
            draining: false,
        }
    }

    #[test]
    fn the_least_loaded_node_wins() {
        let nodes = [
            node("a", 500, false),
            node("b", 200, false),
            node("c", 900, false),
        ];
        assert_eq!(
            choose(&nodes, UserId(1), Transport::Ws, 0).unwrap().node,
            "b"
        );
        let mut no_tcp = node("d", 0, false);
        no_tcp.tcp_addr.clear();
        let nodes = [node("a", 5, false), no_tcp];
        assert_eq!(
            choose(&nodes, UserId(1), Transport::Tcp, 0).unwrap().node,
            "a"
        );
        assert!(choose(&[], UserId(1), Transport::Ws, 0).is_none());
    }

    #[test]
    fn a_draining_node_gets_connections_only_when_every_node_drains() {
        let drained = NodeInfo {
            draining: true,
            ..node("a", 0, false)
        };
        let busy = node("b", 5_000, false);
        for u in 0..50 {
            let pair = [drained.clone(), busy.clone()];
            assert_eq!(
                choose(&pair, UserId(u), Transport::Ws, 0).unwrap().node,
                "b"
            );
        }
        let alone = [drained];
        assert_eq!(
            choose(&alone, UserId(1), Transport::Ws, 0).unwrap().node,
            "a"
        );
    }

    #[test]
    fn a_burst_on_equally_loaded_nodes_is_spread() {
        let nodes = [
            node("a", 100, false),
            node("b", 105, false),
            node("c", 98, false),
        ];
        let mut per = std::collections::HashMap::new();
        for u in 0..300 {
            *per.entry(&choose(&nodes, UserId(u), Transport::Ws, 0).unwrap().node)
                .or_insert(0) += 1;
        }
        // Uniform over three: each gets 100 ± a wide margin, none gets all.
        assert_eq!(per.len(), 3, "{per:?}");
        assert!(per.values().all(|&n| (50..=150).contains(&n)), "{per:?}");
    }

    #[test]
    fn a_canary_share_of_20_percent_sends_about_a_fifth_of_users_to_canaries() {
        let nodes = [
            node("a", 0, false),
            node("b", 0, false),
            node("canary", 0, true),
        ];
        let to_canary = (1..=1000)
            .filter(|u| {
                choose(&nodes, UserId(*u), Transport::Ws, 20)
                    .unwrap()
                    .canary
            })
            .count();
        // Stated tolerance: 20% ± 5 points over 1,000 users.
        assert!(
            (150..=250).contains(&to_canary),
            "{to_canary} of 1000 went to the canary"
        );
        // A user always lands on the same side.
        assert_eq!(
            choose(&nodes, UserId(7), Transport::Ws, 20).unwrap().canary,
            choose(&nodes, UserId(7), Transport::Ws, 20).unwrap().canary
        );
        // No canary node: everyone goes to the others.
        let plain = [node("a", 0, false)];
        assert!((1..=100).all(|u| !choose(&plain, UserId(u), Transport::Ws, 20).unwrap().canary));
    }
}
