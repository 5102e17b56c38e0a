//! State cases for client ordering chains: start (SET NX + GET), the
//! compare-and-set advance, expiry, and keys kept apart per user and device.

use crate::{ChainAdvance, State};
use magpie_core::{DeviceId, UserId};
use std::time::Duration;

const LONG: u64 = 60_000;

fn dev(name: &str) -> DeviceId {
    DeviceId::new(name).expect("device")
}

/// `chain_init` stores the fresh id only when none is there, and answers
/// what is stored either way.
pub async fn chain_init_sets_only_if_absent(st: State) {
    let (u, d) = (UserId(1), dev("phone"));
    assert_eq!(st.chain_get(u, &d).await.expect("get"), None);
    assert_eq!(st.chain_init(u, &d, "a", LONG).await.expect("init"), "a");
    assert_eq!(st.chain_init(u, &d, "b", LONG).await.expect("init"), "a");
    assert_eq!(
        st.chain_get(u, &d).await.expect("get").as_deref(),
        Some("a")
    );
}

/// `chain_advance` moves the chain only from the id it expects, and says
/// what it found otherwise.
pub async fn chain_advance_is_compare_and_set(st: State) {
    let (u, d) = (UserId(1), dev("phone"));
    let advance = |e: &'static str, n: &'static str| {
        let (st, d) = (st.clone(), d.clone());
        async move { st.chain_advance(u, &d, e, n, LONG).await.expect("advance") }
    };
    assert_eq!(advance("a", "b").await, ChainAdvance::Absent);
    assert_eq!(
        st.chain_get(u, &d).await.expect("get"),
        None,
        "absent stays absent"
    );
    st.chain_init(u, &d, "a", LONG).await.expect("init");
    assert_eq!(advance("a", "b").await, ChainAdvance::Advanced);
    assert_eq!(advance("a", "c").await, ChainAdvance::Expected("b".into()));
    assert_eq!(advance("b", "c").await, ChainAdvance::Advanced);
    assert_eq!(
        st.chain_get(u, &d).await.expect("get").as_deref(),
        Some("c")
    );
    // Ids are opaque text: no pattern or prefix matching.
    assert_eq!(advance("", "x").await, ChainAdvance::Expected("c".into()));
}

/// Concurrent advances from the same id: exactly one wins.
pub async fn chain_advance_has_one_winner(st: State) {
    let (u, d) = (UserId(3), dev("phone"));
    st.chain_init(u, &d, "start", LONG).await.expect("init");
    let tries = (0..16).map(|i| {
        let (st, d) = (st.clone(), d.clone());
        async move {
            st.chain_advance(u, &d, "start", &format!("n{i}"), LONG)
                .await
                .expect("advance")
        }
    });
    let answers = futures_util::future::join_all(tries).await;
    let won = answers
        .iter()
        .filter(|a| **a == ChainAdvance::Advanced)
        .count();
    assert_eq!(won, 1, "{answers:?}");
}

/// Chains are per (user, device), and expire with their TTL.
pub async fn chains_are_per_device_and_expire(st: State) {
    let (phone, laptop) = (dev("phone"), dev("laptop"));
    st.chain_init(UserId(1), &phone, "p", LONG)
        .await
        .expect("init");
    st.chain_init(UserId(1), &laptop, "l", 100)
        .await
        .expect("init");
    st.chain_init(UserId(2), &phone, "q", LONG)
        .await
        .expect("init");
    let get = |u: i64, d: &DeviceId| {
        let (st, d) = (st.clone(), d.clone());
        async move { st.chain_get(UserId(u), &d).await.expect("get") }
    };
    assert_eq!(get(1, &phone).await.as_deref(), Some("p"));
    assert_eq!(get(1, &laptop).await.as_deref(), Some("l"));
    assert_eq!(get(2, &phone).await.as_deref(), Some("q"));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(get(1, &laptop).await, None, "expired");
    assert_eq!(get(1, &phone).await.as_deref(), Some("p"));
    // An advance renews the TTL it is given.
    st.chain_init(UserId(4), &phone, "a", 100)
        .await
        .expect("init");
    let ttl = LONG;
    let adv = st.chain_advance(UserId(4), &phone, "a", "b", ttl).await;
    assert_eq!(adv.expect("advance"), ChainAdvance::Advanced);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(get(4, &phone).await.as_deref(), Some("b"));
}
