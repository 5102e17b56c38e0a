//! Fault injection under sustained load (run with
//! `MAGPIE_TEST_BACKENDS=cluster`): three real node processes share a
//! database on the shared PostgreSQL or MySQL and a redis-server and
//! nats-server of the test's own, while paired SDK clients send 1,000
//! messages a second for 30 s (`MAGPIE_TEST_FAULT_RATE`, `MAGPIE_TEST_FAULT_SECS`).
//! Mid-run a node is killed or drained (a worker node during a consumer
//! rebalance), Redis loses everything, the bus's engine (NATS, one server
//! or one of three; or, with `MAGPIE_TEST_BUS=kafka`, a Kafka broker of the
//! test's own) is killed, or (on MySQL) the server of one of the store's
//! shards is. Afterwards every message is acknowledged (failures are resent
//! with the same id), reached the peer's application exactly once, and is
//! stored exactly once at the sequence it was acknowledged with.
//!
//! The runs share two cores, so they take turns: `SERIAL` under `cargo
//! test` (one process), the `faults` test group of .config/nextest.toml
//! under `cargo nextest run` (a process per test).

mod common;
mod fleet;

use common::{assert_node_forgotten, unread_truth};
use fleet::load::{Load, rate_and_secs};
use fleet::{Fleet, SETTLE};
use std::time::{Duration, Instant};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const USERS: usize = 20;

/// The SDK's warnings (gap fills that failed, resyncs) in the test output.
fn sdk_warnings() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("magpie_sdk=warn"))
        .with_test_writer()
        .try_init();
}

type Turn = tokio::sync::MutexGuard<'static, ()>;

/// Three nodes with every role and the clients joined, holding the turn.
async fn three_full_nodes() -> Option<(Fleet, Load, Turn)> {
    let fleet = Fleet::new()?;
    sdk_warnings();
    let turn = SERIAL.lock().await;
    Some(three_nodes_on(fleet, turn).await)
}

/// Three nodes with every role on `fleet`, and the clients joined.
async fn three_nodes_on(mut fleet: Fleet, turn: Turn) -> (Fleet, Load, Turn) {
    for _ in 0..3 {
        fleet.spawn("edge,conn,workers");
    }
    fleet.registered().await;
    let load = Load::join(&fleet.edges(), USERS).await;
    (fleet, load, turn)
}

/// The load running in the background, at the rate and for the time of
/// `rate_and_secs`.
struct Running {
    run: tokio::task::JoinHandle<()>,
    started: Instant,
    secs: u64,
}

fn start(load: &Load) -> Running {
    let (rate, secs) = rate_and_secs();
    let started = Instant::now();
    let run = load.run(rate, secs);
    Running { run, started, secs }
}

impl Running {
    /// Sleeps until `frac` of the run has passed.
    async fn at(&self, frac: f64) {
        let when = self.started + Duration::from_secs_f64(self.secs as f64 * frac);
        tokio::time::sleep_until(when.into()).await;
    }

    /// Waits for the load to end; returns when it started.
    async fn finish(self) -> Instant {
        self.run.await.unwrap();
        self.started
    }
}

/// After the load: resend failures, wait for delivery, check everything.
async fn settle_and_check(fleet: &Fleet, load: &Load, started: Instant, what: &str) {
    load.resend_unacked(SETTLE).await;
    load.wait_delivered(SETTLE).await;
    let store = fleet.store().await;
    load.check(&store).await;
    load.check_unread(&store).await;
    eprintln!("{}", load.report(started, what));
}

fn nodes_of(load: &Load) -> Vec<String> {
    load.members
        .iter()
        .map(|m| m.client.welcome().node)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_a_conn_node_and_a_worker_node_under_load() {
    let Some(mut fleet) = Fleet::new() else {
        return;
    };
    sdk_warnings();
    let _turn = SERIAL.lock().await;
    fleet.spawn("edge,conn,workers");
    fleet.spawn("edge,conn"); // node-2: connections only
    fleet.spawn("workers"); // node-3: bus consumers only
    let edges = vec![fleet.node(1).base.clone(), fleet.node(2).base.clone()];
    fleet.registered().await;
    let load = Load::join(&edges, USERS).await;
    let on_2 = nodes_of(&load).iter().filter(|n| *n == "node-2").count();
    assert!(on_2 > 0, "placement put nobody on node-2");
    let running = start(&load);
    running.at(0.3).await;
    fleet.kill9(2);
    running.at(0.6).await;
    fleet.kill9(3);
    let started = running.finish().await;
    settle_and_check(
        &fleet,
        &load,
        started,
        "kill -9 of a conn node and a worker node",
    )
    .await;
    // Everyone moved to the survivor; the sweeper forgot the dead connection node.
    assert!(nodes_of(&load).iter().all(|n| n == "node-1"));
    assert_node_forgotten(&fleet.state().await, "node-2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drain_a_node_under_load() {
    let Some((mut fleet, load, _turn)) = three_full_nodes().await else {
        return;
    };
    assert!(nodes_of(&load).iter().any(|n| n == "node-2"));
    let running = start(&load);
    running.at(0.4).await;
    fleet.drain(2).await;
    let started = running.finish().await;
    settle_and_check(&fleet, &load, started, "SIGTERM drain of a node").await;
    assert!(nodes_of(&load).iter().all(|n| n != "node-2"));
    let state = fleet.state().await;
    assert!(state.node_routes("node-2").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restart_and_flushall_under_load() {
    let Some((mut fleet, load, _turn)) = three_full_nodes().await else {
        return;
    };
    let running = start(&load);
    running.at(0.3).await;
    assert!(fleet.redis.dbsize().await > 0);
    fleet.redis.restart_empty();
    running.at(0.65).await;
    fleet.redis.flushall().await;
    let started = running.finish().await;
    settle_and_check(&fleet, &load, started, "Redis restart and FLUSHALL").await;
    // Routes came back: every connected client is routed to the node it is on.
    let state = fleet.state().await;
    let ids: Vec<_> = load.members.iter().map(|m| m.id).collect();
    let routes = state.routes(&ids).await.unwrap();
    for m in &load.members {
        let node = m.client.welcome().node;
        assert!(
            routes
                .get(&m.id)
                .is_some_and(|r| r.iter().any(|r| r.node == node)),
            "no route for {} on {node}",
            m.id
        );
    }
}

/// kill -9 of the bus's engine (the NATS server, or the Kafka broker with
/// `MAGPIE_TEST_BUS=kafka`) mid-run, restarted 5 s later: sends meanwhile
/// get a retryable error or wait for the engine, never an early
/// acknowledgement; failed ones are resent with the same id afterwards;
/// nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bus_kill_9_and_restart_under_load() {
    let Some((mut fleet, load, _turn)) = three_full_nodes().await else {
        return;
    };
    let running = start(&load);
    running.at(0.3).await;
    fleet.kill9_bus();
    tokio::time::sleep(Duration::from_secs(5)).await;
    fleet.restart_bus();
    let started = running.finish().await;
    // The outage must have reached the senders: a send either failed
    // (NATS: refused at once while disconnected) or was held until the
    // engine was back (Kafka: librdkafka keeps a record up to its
    // `message.timeout.ms`, 10 s, and delivers it if the broker returns in
    // time). Either way it was not acknowledged before it was durable.
    let (failed, slowest) = {
        let l = load.ledger.lock().unwrap();
        (l.errors.len(), l.slowest_ack)
    };
    assert!(
        failed > 0 || slowest >= Duration::from_secs(3),
        "no send failed or waited while the bus was down (slowest {slowest:?})"
    );
    let what = match fleet.on_kafka() {
        true => "kill -9 and restart of the Kafka broker",
        false => "kill -9 and restart of NATS",
    };
    settle_and_check(&fleet, &load, started, what).await;
}

/// A worker node joins mid-run (every consumer group rebalances to take
/// it in) and another worker node is killed with SIGKILL while that
/// rebalance is under way: the partitions the dead node held move to the
/// survivors, which start from the committed positions; nothing is lost
/// or applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_a_worker_node_during_a_rebalance_under_load() {
    let Some(mut fleet) = Fleet::new() else {
        return;
    };
    sdk_warnings();
    let _turn = SERIAL.lock().await;
    fleet.spawn("edge,conn,workers");
    fleet.spawn("edge,conn,workers");
    fleet.spawn("workers"); // node-3: bus consumers only
    let edges = vec![fleet.node(1).base.clone(), fleet.node(2).base.clone()];
    fleet.registered().await;
    let load = Load::join(&edges, USERS).await;
    let running = start(&load);
    running.at(0.3).await;
    fleet.spawn("workers"); // node-4 joins: the groups rebalance
    tokio::time::sleep(Duration::from_millis(300)).await;
    fleet.kill9(3);
    let started = running.finish().await;
    settle_and_check(
        &fleet,
        &load,
        started,
        "kill -9 of a worker node during a rebalance",
    )
    .await;
}

/// kill -9 of one of three NATS servers mid-run, the bus in three
/// partitions of three replicas: the nodes fail over (a send may fail
/// while a stream elects a new leader; it is resent with the same id) and
/// nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_one_of_three_nats_servers_under_load() {
    let Some(fleet) = Fleet::new() else {
        return;
    };
    if fleet.on_kafka() {
        eprintln!("a NATS cluster's fault: the JetStream phases run it");
        return;
    }
    sdk_warnings();
    let turn = SERIAL.lock().await;
    let fleet = fleet.with_nats_cluster().await;
    let (mut fleet, load, _turn) = three_nodes_on(fleet, turn).await;
    let running = start(&load);
    running.at(0.3).await;
    fleet.nats_cluster.as_mut().unwrap().servers[0].kill9();
    let started = running.finish().await;
    settle_and_check(
        &fleet,
        &load,
        started,
        "kill -9 of one of three NATS servers",
    )
    .await;
}

/// kill -9 of one SQL shard's server mid-run, restarted 5 s later: sends
/// to that shard's conversations fail (retryable; the clients resend them
/// with the same id afterwards), the other conversations keep being
/// acknowledged meanwhile, and nothing acknowledged is lost. The MariaDB
/// phase only: the killed shard is a mariadbd of the test's own, beside
/// the namespace's shards on the services' servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_one_sql_shards_server_under_load() {
    if std::env::var("MAGPIE_TEST_STORE").as_deref() != Ok("mysql") {
        eprintln!("runs on MySQL stores (MAGPIE_TEST_STORE=mysql)");
        return;
    }
    let Some(fleet) = Fleet::new() else {
        return;
    };
    sdk_warnings();
    let turn = SERIAL.lock().await;
    let fleet = fleet.with_own_shard().await;
    let (mut fleet, load, _turn) = three_nodes_on(fleet, turn).await;
    let running = start(&load);
    running.at(0.3).await;
    let shard = fleet.shard.as_mut().unwrap();
    shard.kill9();
    // Past the store's call timeout: the shard is cut off by now.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let acked = || lock_acked(&load);
    let before = acked();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = acked() - before;
    shard.restart();
    let started = running.finish().await;
    let failed = load.ledger.lock().unwrap().errors.len();
    assert!(failed > 0, "no send failed while a shard was down");
    assert!(
        during > 0,
        "nothing was acknowledged while one shard was down"
    );
    eprintln!("{during} sends acknowledged in 3 s with one of three shards down");
    settle_and_check(
        &fleet,
        &load,
        started,
        "kill -9 and restart of one SQL shard",
    )
    .await;
}

fn lock_acked(load: &Load) -> usize {
    load.ledger.lock().unwrap().acked.len()
}

/// A send that failed because the bus was down is stored; even if its
/// client never retries, the workers hear of it once the bus is back: the
/// receiver's cached unread count includes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stored_message_whose_publish_failed_still_reaches_the_workers() {
    let Some(mut fleet) = Fleet::new() else {
        return;
    };
    let _turn = SERIAL.lock().await;
    fleet.spawn("edge,conn,workers");
    let base = fleet.node(1).base.clone();
    let (a, b) = (
        magpie_sdk::HttpClient::new(&base).unwrap(),
        magpie_sdk::HttpClient::new(&base).unwrap(),
    );
    a.register("alice", "password123").await.unwrap();
    let bob = b.register("bob", "password123").await.unwrap().user_id;
    a.login("alice", "password123", None).await.unwrap();
    b.login("bob", "password123", None).await.unwrap();
    assert_eq!(
        b.unread().await.unwrap().total,
        0,
        "loads bob's unread cache"
    );
    fleet.kill9_bus();
    let req = magpie_proto::http::SendRequest {
        reply_to: None,
        recall: None,
        mentions: Vec::new(),
        mention_all: false,
        edit: None,
        sample: false,
        to: bob,
        cmid: magpie_core::ClientMsgId::new_v7(),
        body: "while the bus was down".into(),
        persistence: None,
        group: None,
        chain: None,
    };
    let err = a
        .send(&req)
        .await
        .expect_err("no acknowledgement without the bus");
    assert!(err.is_retryable(), "{err}");
    fleet.restart_bus();
    // Alice never retries.
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Ok(u) = b.unread().await
            && u.total == 1
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stored message never reached the unread worker"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let store = fleet.store().await;
    let truth: i64 = unread_truth(&store, bob).await;
    assert_eq!(truth, 1);
}
