//! State cases for routes, the idempotency fast path and connection tickets.

use super::next_server_id;
use crate::{Route, State, TicketClaims};
use magpie_core::{Accepted, ClientMsgId, ConvId, DeviceId, UserId};
use std::time::Duration;

fn route(user: i64, device: &str, node: &str, conn: u64) -> Route {
    Route {
        user: UserId(user),
        device: DeviceId::new(device).expect("device"),
        node: node.into(),
        conn,
        since: 1,
    }
}

fn sorted(mut v: Vec<Route>) -> Vec<Route> {
    v.sort_by(|a, b| (a.user, &a.device).cmp(&(b.user, &b.device)));
    v
}

async fn routes_of(st: &State, user: i64) -> Vec<Route> {
    let mut m = st.routes(&[UserId(user)]).await.expect("routes");
    sorted(m.remove(&UserId(user)).unwrap_or_default())
}

fn accepted(seq: i64) -> Accepted {
    Accepted {
        server_id: next_server_id(),
        conv: ConvId::direct(UserId(1), UserId(2)),
        seq,
        sent_at: 7,
        duplicate: false,
        group: None,
    }
}

/// Restoring puts back routes the state lost, indexed on their node, but
/// never over a route a device has now (a newer connection elsewhere).
pub async fn restore_routes_writes_only_missing_ones(st: State) {
    assert_eq!(st.restore_routes(&[]).await.expect("nothing"), 0);
    let newer = route(1, "phone", "node-b", 20);
    st.add_route(&newer).await.expect("add");
    let mine = [
        route(1, "phone", "node-a", 10),
        route(1, "laptop", "node-a", 11),
        route(2, "phone", "node-a", 12),
    ];
    assert_eq!(st.restore_routes(&mine).await.expect("restore"), 2);
    assert_eq!(
        routes_of(&st, 1).await,
        sorted(vec![mine[1].clone(), newer.clone()]),
        "the newer route of the phone stays"
    );
    assert_eq!(routes_of(&st, 2).await, vec![mine[2].clone()]);
    assert_eq!(
        sorted(st.node_routes("node-a").await.expect("node a")),
        sorted(vec![mine[1].clone(), mine[2].clone()])
    );
    assert_eq!(st.node_routes("node-b").await.expect("node b"), vec![newer]);
    // Restoring again writes nothing.
    assert_eq!(st.restore_routes(&mine).await.expect("again"), 0);
}

/// A device has one route; a newer connection replaces it (also across
/// nodes); removal only succeeds for the connection the route points at.
pub async fn route_add_replace_and_conditional_remove(st: State) {
    let old = route(1, "phone", "node-a", 10);
    assert_eq!(st.add_route(&old).await.expect("add"), None);
    assert_eq!(routes_of(&st, 1).await, vec![old.clone()]);
    // Re-asserting the same route reports it as already there.
    assert_eq!(st.add_route(&old).await.expect("again"), Some(old.clone()));

    let new = route(1, "phone", "node-b", 11);
    assert_eq!(
        st.add_route(&new).await.expect("replace"),
        Some(old.clone()),
        "the replaced route is returned"
    );
    assert_eq!(routes_of(&st, 1).await, vec![new.clone()]);
    assert!(
        st.node_routes("node-a").await.expect("node a").is_empty(),
        "moved off node-a"
    );
    assert_eq!(
        st.node_routes("node-b").await.expect("node b"),
        vec![new.clone()]
    );

    // The old connection closing late must not remove the new route.
    assert!(
        !st.remove_route(UserId(1), &old.device, "node-a", 10)
            .await
            .expect("stale")
    );
    assert!(
        !st.remove_route(UserId(1), &old.device, "node-a", 11)
            .await
            .expect("wrong node")
    );
    assert!(
        !st.remove_route(UserId(1), &old.device, "node-b", 10)
            .await
            .expect("wrong conn")
    );
    assert_eq!(routes_of(&st, 1).await, vec![new.clone()]);
    assert!(
        st.remove_route(UserId(1), &new.device, "node-b", 11)
            .await
            .expect("current")
    );
    assert!(routes_of(&st, 1).await.is_empty());
    assert!(st.node_routes("node-b").await.expect("node b").is_empty());
    assert!(
        !st.remove_route(UserId(1), &new.device, "node-b", 11)
            .await
            .expect("twice")
    );
}

/// `routes` answers for many users at once; `node_routes` lists a node's
/// connections across users.
pub async fn routes_batch_and_node_index(st: State) {
    let all = [
        route(1, "phone", "n1", 1),
        route(1, "laptop", "n2", 2),
        route(2, "phone", "n1", 3),
        route(3, "tab", "n2", 4),
    ];
    for r in &all {
        st.add_route(r).await.expect("add");
    }
    let got = st
        .routes(&[UserId(1), UserId(2), UserId(9)])
        .await
        .expect("routes");
    assert_eq!(
        sorted(got.get(&UserId(1)).cloned().unwrap_or_default()),
        sorted(vec![all[0].clone(), all[1].clone()])
    );
    assert_eq!(
        got.get(&UserId(2)).cloned().unwrap_or_default(),
        vec![all[2].clone()]
    );
    assert!(
        got.get(&UserId(9)).is_none_or(|v| v.is_empty()),
        "no routes for an offline user"
    );
    assert!(!got.contains_key(&UserId(3)), "only the users asked for");
    assert_eq!(
        sorted(st.node_routes("n1").await.expect("n1")),
        sorted(vec![all[0].clone(), all[2].clone()])
    );
    assert_eq!(
        sorted(st.node_routes("n2").await.expect("n2")),
        sorted(vec![all[1].clone(), all[3].clone()])
    );
    assert!(st.node_routes("n3").await.expect("n3").is_empty());
}

/// The first recorded result of a (from, cmid) wins (SET NX); keys are per sender.
pub async fn idem_put_is_first_writer_wins(st: State) {
    let cmid = ClientMsgId::new_v7();
    let (first, second) = (accepted(1), accepted(2));
    assert_eq!(st.idem_get(UserId(1), cmid).await.expect("get"), None);
    st.idem_put(UserId(1), cmid, &first, 60_000)
        .await
        .expect("put");
    st.idem_put(UserId(1), cmid, &second, 60_000)
        .await
        .expect("put again");
    assert_eq!(
        st.idem_get(UserId(1), cmid).await.expect("get"),
        Some(first)
    );
    assert_eq!(
        st.idem_get(UserId(2), cmid).await.expect("other sender"),
        None
    );
}

/// Idempotency entries disappear after their TTL (real time).
pub async fn idem_entries_expire(st: State) {
    let cmid = ClientMsgId::new_v7();
    st.idem_put(UserId(1), cmid, &accepted(1), 30)
        .await
        .expect("put");
    assert!(st.idem_get(UserId(1), cmid).await.expect("get").is_some());
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(st.idem_get(UserId(1), cmid).await.expect("get"), None);
    // Once expired, the key can be written again.
    let fresh = accepted(5);
    st.idem_put(UserId(1), cmid, &fresh, 60_000)
        .await
        .expect("put");
    assert_eq!(
        st.idem_get(UserId(1), cmid).await.expect("get"),
        Some(fresh)
    );
}

/// A batch lookup answers each key in order, hits and misses alike; a batch
/// write keeps first-writer-wins per key.
pub async fn idem_batches_answer_in_order(st: State) {
    let (a, b, c) = (
        ClientMsgId::new_v7(),
        ClientMsgId::new_v7(),
        ClientMsgId::new_v7(),
    );
    let (one, two, three) = (accepted(1), accepted(2), accepted(3));
    st.idem_put_many(UserId(1), &[(a, one.clone()), (c, three.clone())], 60_000)
        .await
        .expect("put many");
    st.idem_put_many(UserId(1), &[(a, accepted(9)), (b, two.clone())], 60_000)
        .await
        .expect("put many again");
    let got = st
        .idem_get_many(UserId(1), &[c, b, a, ClientMsgId::new_v7()])
        .await
        .expect("get many");
    assert_eq!(got, vec![Some(three), Some(two), Some(one), None]);
    assert_eq!(
        st.idem_get_many(UserId(1), &[]).await.expect("empty"),
        Vec::new()
    );
    assert_eq!(
        st.idem_get_many(UserId(2), &[a])
            .await
            .expect("other sender"),
        vec![None]
    );
}

fn claims(user: i64) -> TicketClaims {
    TicketClaims {
        user: UserId(user),
        device: DeviceId::new("phone").expect("device"),
    }
}

/// A ticket is taken once; unknown tickets yield nothing.
pub async fn ticket_is_single_use(st: State) {
    st.ticket_put("t1", &claims(1), 60_000).await.expect("put");
    st.ticket_put("t2", &claims(2), 60_000).await.expect("put");
    assert_eq!(st.ticket_take("t1").await.expect("take"), Some(claims(1)));
    assert_eq!(st.ticket_take("t1").await.expect("take again"), None);
    assert_eq!(st.ticket_take("unknown").await.expect("take"), None);
    assert_eq!(st.ticket_take("t2").await.expect("take"), Some(claims(2)));
}

/// An expired ticket cannot be taken.
pub async fn ticket_expires(st: State) {
    st.ticket_put("short", &claims(1), 30).await.expect("put");
    st.ticket_put("long", &claims(2), 60_000)
        .await
        .expect("put");
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(st.ticket_take("short").await.expect("take"), None);
    assert_eq!(st.ticket_take("long").await.expect("take"), Some(claims(2)));
}
