//! Where a user's next connection goes: among live nodes with the conn role
//! that serve the transport, the least loaded one; a configured share of
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

/// The node for `user`'s next connection, if any live node serves `transport`.
pub fn choose(
    nodes: &[NodeInfo],
    user: UserId,
    transport: Transport,
    canary_percent: u32,
) -> Option<&NodeInfo> {
    let candidates: Vec<&NodeInfo> = nodes.iter().filter(|n| serves(n, transport)).collect();
    let wants_canary = bucket(user) < canary_percent;
    let side: Vec<&NodeInfo> = candidates
        .iter()
        .copied()
        .filter(|n| n.canary == wants_canary)
        .collect();
    let pool = if side.is_empty() { candidates } else { side };
    pool.into_iter()
        .min_by(|a, b| a.load.cmp(&b.load).then_with(|| a.node.cmp(&b.node)))
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
        }
    }

    #[test]
    fn the_least_loaded_node_wins() {
        let nodes = [
            node("a", 5, false),
            node("b", 2, false),
            node("c", 9, false),
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
