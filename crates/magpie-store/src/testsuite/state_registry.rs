//! State cases for the service registry (heartbeats, known nodes) and leases.

use crate::{NodeInfo, State};
use std::time::Duration;

fn info(node: &str, load: u64) -> NodeInfo {
    NodeInfo {
        node: node.into(),
        roles: vec!["conn".into(), "logic".into()],
        ws_url: format!("ws://{node}:8080/v1/ws"),
        tcp_addr: format!("{node}:9000"),
        version: "1.2.3".into(),
        load,
        canary: false,
        seen_at: 1_700_000_000_000,
        draining: false,
    }
}

const LONG: u64 = 60_000;

/// A heartbeat makes a node live (`nodes`) and known (`known_nodes`).
pub async fn heartbeat_registers_node(st: State) {
    assert!(st.nodes().await.expect("nodes").is_empty());
    assert!(st.known_nodes().await.expect("known").is_empty());
    let a = info("node-a", 3);
    st.node_heartbeat(&a, LONG).await.expect("heartbeat");
    assert_eq!(st.nodes().await.expect("nodes"), vec![a.clone()]);
    assert_eq!(st.known_nodes().await.expect("known"), vec!["node-a"]);
    // A later heartbeat replaces the record; the node is known once.
    let a2 = NodeInfo {
        load: 9,
        draining: true,
        ..a
    };
    st.node_heartbeat(&a2, LONG).await.expect("heartbeat again");
    assert_eq!(st.nodes().await.expect("nodes"), vec![a2]);
    assert_eq!(st.known_nodes().await.expect("known"), vec!["node-a"]);
}

/// A heartbeat says whether the node's previous record was still there:
/// not at the first one, nor after the record expired (what a state that
/// lost everything looks like too).
pub async fn heartbeat_tells_whether_the_record_was_there(st: State) {
    let a = info("node-a", 1);
    assert!(!st.node_heartbeat(&a, 100).await.expect("first"));
    assert!(st.node_heartbeat(&a, 100).await.expect("second"));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        !st.node_heartbeat(&a, LONG).await.expect("after expiry"),
        "an expired record is not there"
    );
    assert!(st.node_heartbeat(&a, LONG).await.expect("again"));
}

/// A record expires after its TTL (real time); the node stays known, and a
/// new heartbeat brings it back.
pub async fn heartbeat_expires_but_node_stays_known(st: State) {
    let short = info("short", 1);
    let long = info("long", 2);
    st.node_heartbeat(&short, 100).await.expect("heartbeat");
    st.node_heartbeat(&long, LONG).await.expect("heartbeat");
    assert_eq!(
        st.nodes().await.expect("nodes"),
        vec![long.clone(), short.clone()]
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(st.nodes().await.expect("nodes"), vec![long.clone()]);
    assert_eq!(
        st.known_nodes().await.expect("known"),
        vec!["long", "short"],
        "an expired node is still known (the sweeper finds it dead)"
    );
    st.node_heartbeat(&short, LONG).await.expect("back");
    assert_eq!(st.nodes().await.expect("nodes"), vec![long, short]);
}

/// Deregistering hides the record but keeps the node known; forgetting
/// drops it from the known set.
pub async fn deregister_then_forget(st: State) {
    let (a, b) = (info("a", 1), info("b", 2));
    st.node_heartbeat(&a, LONG).await.expect("a");
    st.node_heartbeat(&b, LONG).await.expect("b");
    st.node_deregister("a").await.expect("deregister");
    assert_eq!(st.nodes().await.expect("nodes"), vec![b.clone()]);
    assert_eq!(st.known_nodes().await.expect("known"), vec!["a", "b"]);
    st.forget_node("a").await.expect("forget");
    assert_eq!(st.known_nodes().await.expect("known"), vec!["b"]);
    assert_eq!(st.nodes().await.expect("nodes"), vec![b.clone()]);
    // Unknown names are no error.
    st.node_deregister("nobody")
        .await
        .expect("deregister unknown");
    st.forget_node("nobody").await.expect("forget unknown");
    // A heartbeat after `forget_node` makes the node known again (whether a
    // forgotten node's live record shows in `nodes` meanwhile is unspecified).
    st.forget_node("b").await.expect("forget b");
    assert!(st.known_nodes().await.expect("known").is_empty());
    st.node_heartbeat(&b, LONG).await.expect("b again");
    assert_eq!(st.known_nodes().await.expect("known"), vec!["b"]);
    assert_eq!(st.nodes().await.expect("nodes"), vec![b]);
}

/// `nodes` is sorted by node name and round-trips every field.
pub async fn nodes_sorted_with_fields_round_tripped(st: State) {
    let mut c = info("charlie", 0);
    c.roles = vec![];
    c.ws_url = String::new();
    c.tcp_addr = String::new();
    let mut a = info("alpha", u64::MAX);
    a.canary = true;
    a.roles = vec![
        "edge".into(),
        "conn".into(),
        "logic".into(),
        "workers".into(),
    ];
    a.seen_at = i64::MAX;
    let mut b = info("bravo \"quoted\" ünïcode", 42);
    b.version = "2.0.0-rc.1+gray".into();
    b.seen_at = -1;
    for n in [&c, &a, &b] {
        st.node_heartbeat(n, LONG).await.expect("heartbeat");
    }
    assert_eq!(st.nodes().await.expect("nodes"), vec![a, b, c]);
    assert_eq!(
        st.known_nodes().await.expect("known"),
        vec!["alpha", "bravo \"quoted\" ünïcode", "charlie"]
    );
}

/// A lease goes to one holder; the holder renews it; once it expires
/// another holder takes it. Leases are independent by name.
pub async fn lease_exclusive_renewable_and_expiring(st: State) {
    const TTL: u64 = 300;
    assert!(st.lease("sweeper", "A", TTL).await.expect("A takes"));
    assert!(!st.lease("sweeper", "B", TTL).await.expect("B refused"));
    assert!(st.lease("other", "B", TTL).await.expect("other lease"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Renewing pushes the expiry out: still held past the first TTL.
    assert!(st.lease("sweeper", "A", TTL).await.expect("A renews"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !st.lease("sweeper", "B", TTL).await.expect("B refused"),
        "the renewal extended A's lease"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(st.lease("sweeper", "B", LONG).await.expect("B takes"));
    assert!(!st.lease("sweeper", "A", LONG).await.expect("A refused"));
    assert!(st.lease("sweeper", "B", LONG).await.expect("B renews"));
}

/// A live room's admissions are counted per window, across every caller
/// (the cluster-wide admission point), separately per room, and a new
/// window starts from one.
pub async fn room_admissions_count_per_window(st: State) {
    let window = 1_800_000_000;
    for want in 1..=3 {
        assert_eq!(st.room_admit("stage", window).await.expect("admit"), want);
    }
    assert_eq!(st.room_admit("other", window).await.expect("admit"), 1);
    assert_eq!(st.room_admit("stage", window + 1).await.expect("admit"), 1);
    assert_eq!(st.room_admit("stage", window + 1).await.expect("admit"), 2);
}

/// Presence watches: a connection watches users until it stops or its
/// entry expires; each watched user lists its watching connections.
pub async fn presence_watches_follow_watch_and_expire(st: State) {
    use crate::Watcher;
    use magpie_core::UserId;
    let w = |user: i64, node: &str, conn: u64| Watcher {
        user: UserId(user),
        node: node.into(),
        conn,
    };
    let (w1, w2) = (w(1, "n1", 7), w(2, "zone:a", 9));
    let sorted = |mut v: Vec<Watcher>| {
        v.sort_by_key(|w| (w.user.0, w.conn));
        v
    };
    st.presence_watch(&w1, &[UserId(10), UserId(11)], &[], 60_000)
        .await
        .expect("watch");
    st.presence_watch(&w2, &[UserId(10)], &[], 60_000)
        .await
        .expect("watch");
    let ten = st.presence_watchers(UserId(10)).await.expect("watchers");
    assert_eq!(
        sorted(ten),
        vec![w1.clone(), w2.clone()],
        "a node name may hold ':'"
    );
    assert_eq!(
        st.presence_watchers(UserId(11)).await.expect("watchers"),
        vec![w1.clone()]
    );
    st.presence_watch(&w1, &[], &[UserId(10)], 60_000)
        .await
        .expect("unwatch");
    assert_eq!(
        st.presence_watchers(UserId(10)).await.expect("watchers"),
        vec![w2.clone()]
    );
    assert!(
        st.presence_watchers(UserId(12))
            .await
            .expect("none")
            .is_empty()
    );
    st.presence_watch(&w2, &[UserId(12)], &[], 1)
        .await
        .expect("short watch");
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(
        st.presence_watchers(UserId(12))
            .await
            .expect("expired")
            .is_empty(),
        "an expired watch is gone"
    );
}
