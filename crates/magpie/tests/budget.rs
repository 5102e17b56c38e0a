//! The per-message budget (docs/scale.md), read from the node's own
//! counters in /metrics: SQL round trips, Redis round trips and durable bus
//! appends, over everything a message causes — the send, the push, the
//! receiver's delivery ack and the workers' derived state — divided by the
//! messages. Messages go one at a time (no batching to share costs with),
//! so these are the worst case per message.
//!
//! One test in this binary: the counters are per process. On the embedded
//! backends the SQL and Redis counters stay at zero (nothing leaves the
//! process); the bus budget holds everywhere.

mod common;

use common::*;
use std::time::Duration;

const SQL: &str = "magpie_sql_round_trips_total";
const REDIS: &str = "magpie_redis_round_trips_total";
const APPENDS: &str = "magpie_bus_appends_total";
const LIST_HITS: &str = "magpie_member_list_hits_total";
/// What the node's own upkeep (a registry heartbeat landing in a window)
/// may add per message: a fraction of a call, where a regression adds at
/// least one.
const UPKEEP: f64 = 0.2;

#[derive(Debug, Clone, Copy)]
struct Costs {
    sql: f64,
    redis: f64,
    appends: f64,
    /// Small-group pushes served by the node's cached member list.
    list_hits: f64,
}

async fn costs(s: &TestServer) -> Costs {
    Costs {
        sql: counter(s, SQL).await,
        redis: counter(s, REDIS).await,
        appends: counter(s, APPENDS).await,
        list_hits: counter(s, LIST_HITS).await,
    }
}

/// The counters once the workers are done with what was sent: bus appends
/// unchanged for a second, for at most 20 s. SQL and Redis never quite stop
/// (the retention sweep and node heartbeats): their background counts in
/// the figures, pessimistically.
async fn settled(s: &TestServer) -> Costs {
    let mut last = costs(s).await;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = costs(s).await;
        if now.appends == last.appends {
            return now;
        }
        last = now;
    }
    panic!("bus appends never settled: {last:?}");
}

/// The Redis counter unchanged for a second (the nodes' own upkeep is
/// every few seconds here), for at most 20 s.
async fn redis_quiet(s: &TestServer) {
    let mut last = costs(s).await.redis;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = costs(s).await.redis;
        if now == last {
            return;
        }
        last = now;
    }
    panic!("Redis never went quiet");
}

fn per_message(before: Costs, after: Costs, n: usize) -> Costs {
    let n = n as f64;
    Costs {
        sql: (after.sql - before.sql) / n,
        redis: (after.redis - before.redis) / n,
        appends: (after.appends - before.appends) / n,
        list_hits: (after.list_hits - before.list_hits) / n,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_stay_within_their_budget() {
    let s = TestServer::start_with(|c| {
        // Background work out of the test's minute, so the counts are the
        // messages' own (one upkeep round trip in a window of ten group
        // messages is the whole `UPKEEP`).
        quiet_upkeep(c);
        c.presence.fan_out = magpie_server::config::FanOut::Watchers;
        // Pings every 100 ms, so idle connections heartbeat often below.
        c.session.heartbeat_ms = 100;
    })
    .await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let mut a = s.conn(&ta, "ws").await;
    let mut b = s.conn(&tb, "ws").await;
    // Warm-up: statement caches, the conversation's first rows.
    for i in 0..5 {
        a.send_msg(tb.user_id, &format!("warm {i}")).await;
        b.expect_msg().await;
    }
    let before = settled(&s).await;
    const N: usize = 40;
    for i in 0..N {
        a.send_msg(tb.user_id, &format!("m{i}")).await;
        b.expect_msg().await;
    }
    let direct = per_message(before, settled(&s).await, N);
    eprintln!("1:1 per message: {direct:?}");
    // On a Redis Cluster the two parties' routes are in two slots: their
    // lookups go out at once, but as two round trips.
    let redis_budget = if redis_cluster() { 5.0 } else { 4.0 };
    assert!(
        direct.sql <= 6.0 + UPKEEP,
        "1:1 SQL round trips: {direct:?}"
    );
    assert!(
        direct.redis <= redis_budget + UPKEEP,
        "1:1 Redis round trips: {direct:?}"
    );
    assert!(
        direct.appends <= 1.0 + UPKEEP,
        "1:1 durable appends: {direct:?}"
    );
    if !backends::cluster_mode() {
        // Embedded: nothing leaves the process but the bus append.
        assert_eq!((direct.sql, direct.redis), (0.0, 0.0));
    }

    // Groups of 5 and of 20 online members, each acknowledging every
    // message: the same cost per message whatever the size.
    // Every connection stays open to the end: a close is a presence change
    // whose (debounced) work would land in a later window.
    let (small, _small_conns) = group_costs(&s, &ta, &mut a, "small", 4).await;
    let (large, _large_conns) = group_costs(&s, &ta, &mut a, "large", 19).await;
    // Above `groups.super_threshold` (default 50): the broadcast path.
    let (huge, _huge_conns) = group_costs(&s, &ta, &mut a, "huge", 60).await;
    presence_touches_only_watchers(&s).await;
    heartbeats_write_nothing(&s).await;
    missing_ids_are_read_once(&s, &ta).await;
    contacts_take_one_lookup_and_one_list_read().await;
    eprintln!("group of 5 per message: {small:?}; of 20: {large:?}; of 61: {huge:?}");
    // Every message's group came with its size and membership version:
    // no group read, and a small group's list from the node's cache.
    for (size, c) in [(5, small), (20, large)] {
        assert!(
            c.list_hits >= 1.0 - UPKEEP,
            "group of {size}: member list read per message: {c:?}"
        );
    }
    // A super group's message reads no members and looks up no route, on
    // one Redis or a cluster (the embedded backends count no round trips).
    if backends::cluster_mode() {
        assert!(
            huge.sql <= large.sql + UPKEEP,
            "a super group's message costs more SQL: {huge:?} vs {large:?}"
        );
        assert!(
            huge.redis <= large.redis - 1.0 + UPKEEP,
            "a super group's message still looks up routes: {huge:?} vs {large:?}"
        );
    }
    assert!(
        (large.sql - small.sql).abs() < UPKEEP,
        "SQL per group message grows with size: {small:?} vs {large:?}"
    );
    assert!(
        large.sql <= 7.0 + UPKEEP,
        "group SQL round trips: {large:?}"
    );
    assert!(
        large.appends <= 1.0 + UPKEEP,
        "group durable appends: {large:?}"
    );
    // Per-member route lookups are one pipeline: one round trip on one
    // Redis, one per slot on a Redis Cluster (docs/scale.md).
    if !redis_cluster() {
        // Per member it would be 15 more round trips a message.
        assert!(
            (large.redis - small.redis).abs() < UPKEEP,
            "Redis per group message grows with size: {small:?} vs {large:?}"
        );
        assert!(
            large.redis <= 4.0 + UPKEEP,
            "group Redis round trips: {large:?}"
        );
    }
}

/// Negative caching (docs/edge.md): looking up a group or a user that does
/// not exist 20 times in a row reads the store about once for each.
async fn missing_ids_are_read_once(s: &TestServer, t: &magpie_proto::http::Tokens) {
    // Over a socket: an HTTP send reads the sender's settings each time.
    let mut c = s.conn(t, "ws").await;
    settled(s).await;
    let before = costs(s).await;
    for _ in 0..20 {
        assert_eq!(s.get(t, "/v1/groups/987654321").await.0, 404);
        match c.send_msg(magpie_core::UserId(987_654_321), "?").await {
            magpie_proto::ServerFrame::Error { code, .. } => {
                assert_eq!(code.as_str(), "unknown_recipient")
            }
            other => panic!("{other:?}"),
        }
    }
    let after = costs(s).await;
    let per_lookup = (after.sql - before.sql) / 40.0;
    eprintln!("SQL per look-up of a missing id: {per_lookup}");
    if backends::cluster_mode() {
        // Uncached it would be at least 1 per look-up (40 in all).
        assert!(
            per_lookup <= 0.2,
            "missing ids reach the store: {per_lookup}"
        );
    }
}

/// A user with 1,000 conversations, watched by one connection, connects:
/// in watchers mode the presence change costs one state read and no route
/// lookup nor conversation-list read (contacts mode would look up 1,000).
async fn presence_touches_only_watchers(s: &TestServer) {
    let star = s.user("star", "phone").await;
    with_1000_conversations(s, &star).await;
    let watcher = s.user("watcher", "phone").await;
    let mut w = s.conn(&watcher, "ws").await;
    let op = magpie_proto::ClientOp::PresenceWatch {
        users: vec![star.user_id],
    };
    w.request(op).await;
    let ticket = s.ticket(&star, "ws").await;
    // The workers' derived state of the 1,000 messages (on a Redis Cluster,
    // a round trip per receiver's slot) is done before the window opens.
    redis_quiet(s).await;
    let lookups = counter(s, "magpie_route_lookups_total").await;
    let before = costs(s).await;
    let _star = Conn::hello(ticket).await;
    w.expect(|f| {
        matches!(f, magpie_proto::ServerFrame::Presence { user, online: true, .. } if *user == star.user_id)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = costs(s).await;
    let looked_up = counter(s, "magpie_route_lookups_total").await - lookups;
    eprintln!(
        "a connect of a user with 1,000 conversations: {looked_up} route lookups, {} SQL, {} Redis",
        after.sql - before.sql,
        after.redis - before.redis
    );
    assert_eq!(looked_up, 0.0, "presence looked up routes");
    // The connect's own work (settings, groups, route) and the watchers'
    // read: a handful, not one per conversation.
    assert!(after.sql - before.sql <= 5.0, "{before:?} → {after:?}");
    assert!(after.redis - before.redis <= 8.0, "{before:?} → {after:?}");
}

/// Gives `star` 1,000 direct conversations (one message to each of 1,000
/// new users, in one batch).
async fn with_1000_conversations(s: &TestServer, star: &magpie_proto::http::Tokens) {
    let mut fans = Vec::new();
    for i in 0..1000 {
        let name = format!("fan{i:04}");
        let u = s
            .app()
            .store
            .accounts()
            .create_user(&name, "x")
            .await
            .unwrap();
        fans.push(u.id);
    }
    let inputs = fans
        .iter()
        .map(|&to| magpie_server::services::SendInput {
            trace: None,
            sample: false,
            refs: None,
            to,
            cmid: magpie_core::ClientMsgId::new_v7(),
            body: "hello fan".into(),
            persistence: None,
            group: None,
            chain: None,
        })
        .collect();
    let sent = s
        .app()
        .messaging
        .send_batch(
            star.user_id,
            None,
            magpie_core::ClientSettings::default().into(),
            inputs,
        )
        .await;
    assert!(sent.iter().all(|r| r.is_ok()), "1,000 conversations");
}

/// Contacts mode (the default), a second node in this process (the
/// counters are per process: the first node is quiet by now). A connect of
/// a user with 1,000 conversations tells its contacts with one route
/// lookup for all of them (one Redis pipeline on one Redis), and a second
/// connect within `presence.peer_cache_ms` reads no conversation list.
async fn contacts_take_one_lookup_and_one_list_read() {
    let s = TestServer::start_with(|c| {
        // Background work out of the test's minute, so the counts are the
        // messages' own (one upkeep round trip in a window of ten group
        // messages is the whole `UPKEEP`).
        quiet_upkeep(c);
        c.presence.fan_out = magpie_server::config::FanOut::Contacts;
    })
    .await;
    let star = s.user("star", "phone").await;
    let fan = s.user("fan", "phone").await;
    with_1000_conversations(&s, &star).await;
    let mut f = s.conn(&fan, "ws").await;
    f.send_msg(star.user_id, "a contact online").await;
    redis_quiet(&s).await;
    let mut connect = async |device: &str| {
        let t = s.login("star", device).await;
        let ticket = s.ticket(&t, "ws").await;
        let lookups = counter(&s, "magpie_route_lookups_total").await;
        let before = costs(&s).await;
        let c = Conn::hello(ticket).await;
        f.expect(|fr| {
            matches!(fr, magpie_proto::ServerFrame::Presence { user, online: true, .. } if *user == star.user_id)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = costs(&s).await;
        let looked_up = counter(&s, "magpie_route_lookups_total").await - lookups;
        (
            c,
            looked_up,
            after.sql - before.sql,
            after.redis - before.redis,
        )
    };
    let (_c1, users1, sql1, redis1) = connect("laptop").await;
    let (_c2, users2, sql2, redis2) = connect("tablet").await;
    eprintln!(
        "contacts mode, a connect of a user with 1,000 conversations: \
         first {users1} users looked up, {sql1} SQL, {redis1} Redis; \
         second {users2} users, {sql2} SQL, {redis2} Redis"
    );
    assert!(
        users1 >= 1001.0 && users2 >= 1001.0,
        "every contact is told"
    );
    if backends::cluster_mode() {
        assert!(
            sql2 + 1.0 <= sql1,
            "the second connect read the conversation list again: {sql1} then {sql2}"
        );
        if !redis_cluster() {
            // Per contact it would be 1,000 more.
            assert!(redis1 <= 10.0, "{redis1} Redis round trips");
        }
    }
}

/// 1,000 idle connections heartbeating every 100 ms for two seconds (some
/// 20,000 heartbeats) cost the state nothing per connection: what Redis
/// sees meanwhile is the node's own upkeep (its registry record), the
/// same with one connection or a million.
async fn heartbeats_write_nothing(s: &TestServer) {
    const IDLE: usize = 1000;
    s.user("idler", "d0").await;
    let mut conns = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let t = s.login("idler", &format!("d{i}")).await;
        conns.push(s.conn(&t, "tcp").await);
    }
    let before = costs(s).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = costs(s).await;
    let calls = after.redis - before.redis;
    eprintln!("{IDLE} idle connections, 2 s of 100 ms heartbeats: {calls} Redis round trips");
    assert!(
        calls <= 20.0,
        "heartbeats reached Redis: {calls} round trips"
    );
    assert_eq!(after.sql, before.sql, "heartbeats reached the store");
    drop(conns);
}

fn redis_cluster() -> bool {
    std::env::var("MAGPIE_TEST_REDIS_URL").is_ok_and(|u| u.starts_with("redis+cluster"))
}

/// Per message of a group of `others + 1` online members.
async fn group_costs(
    s: &TestServer,
    owner: &magpie_proto::http::Tokens,
    a: &mut Conn,
    name: &str,
    others: usize,
) -> (Costs, Vec<Conn>) {
    let mut members = Vec::new();
    for i in 0..others {
        members.push(s.user(&format!("{name}{i}"), "phone").await);
    }
    let ids: Vec<_> = members.iter().map(|t| t.user_id).collect();
    let group = s.create_group(owner, &ids).await;
    let mut conns = Vec::new();
    for t in &members {
        conns.push(s.conn(t, "ws").await);
    }
    a.send_group(group, "warm").await;
    for c in conns.iter_mut() {
        c.expect_msg().await;
    }
    let before = settled(s).await;
    const G: usize = 10;
    for i in 0..G {
        a.send_group(group, &format!("g{i}")).await;
        for c in conns.iter_mut() {
            c.expect_msg().await;
        }
    }
    (per_message(before, settled(s).await, G), conns)
}
