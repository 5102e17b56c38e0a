//! The edge guard's fast-state promises: fixed-window counters, one-time
//! values, and ban decisions with a version that moves with every change.

use crate::State;
use std::time::Duration;

/// A counter counts every hit from one, lives its window from the first
/// hit (later hits do not extend it), and reset forgets it.
pub async fn guard_counters_are_fixed_windows(st: State) {
    for want in 1..=3 {
        assert_eq!(
            st.guard_hit("login:ip:1.2.3.4", 300).await.expect("hit"),
            want
        );
    }
    assert_eq!(st.guard_hit("login:ip:5.6.7.8", 300).await.expect("hit"), 1);
    assert_eq!(st.guard_count("login:ip:1.2.3.4").await.expect("count"), 3);
    assert_eq!(st.guard_count("never").await.expect("count"), 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A hit late in the window does not move its end.
    st.guard_hit("login:ip:1.2.3.4", 300).await.expect("hit");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        st.guard_count("login:ip:1.2.3.4").await.expect("count"),
        0,
        "the window ended 300 ms after its first hit"
    );
    assert_eq!(st.guard_hit("login:ip:1.2.3.4", 300).await.expect("hit"), 1);
    st.guard_reset("login:ip:1.2.3.4").await.expect("reset");
    assert_eq!(st.guard_count("login:ip:1.2.3.4").await.expect("count"), 0);
}

/// A value is swapped (the old one answered) and taken once.
pub async fn guard_values_swap_and_take_once(st: State) {
    assert_eq!(
        st.guard_swap("captcha:a", "x", 10_000).await.expect("swap"),
        None
    );
    assert_eq!(
        st.guard_swap("captcha:a", "y", 10_000).await.expect("swap"),
        Some("x".into())
    );
    assert_eq!(
        st.guard_take("captcha:a").await.expect("take"),
        Some("y".into())
    );
    assert_eq!(st.guard_take("captcha:a").await.expect("take"), None);
    st.guard_swap("captcha:b", "z", 100).await.expect("swap");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        st.guard_take("captcha:b").await.expect("take"),
        None,
        "expired"
    );
}

/// Decisions are kept by id; every change moves the version, a removal of
/// nothing does not, and a read returns the set with its version.
pub async fn decisions_are_versioned(st: State) {
    assert_eq!(st.decisions_version().await.expect("version"), 0);
    assert_eq!(st.decisions().await.expect("all"), (0, vec![]));
    let v1 = st
        .decision_put("ip:1.2.3.4", "{\"a\":1}")
        .await
        .expect("put");
    let v2 = st.decision_put("user:7", "{\"b\":2}").await.expect("put");
    assert!(v2 > v1 && v1 > 0);
    let v3 = st
        .decision_put("ip:1.2.3.4", "{\"a\":3}")
        .await
        .expect("replace");
    assert!(v3 > v2);
    let (ver, mut all) = st.decisions().await.expect("all");
    all.sort();
    assert_eq!(ver, v3);
    assert_eq!(all, vec!["{\"a\":3}".to_string(), "{\"b\":2}".to_string()]);
    assert!(st.decision_remove("user:7").await.expect("remove"));
    let v4 = st.decisions_version().await.expect("version");
    assert!(v4 > v3);
    assert!(!st.decision_remove("user:7").await.expect("remove again"));
    assert_eq!(st.decisions_version().await.expect("version"), v4);
    assert_eq!(st.decisions().await.expect("all").1.len(), 1);
}
