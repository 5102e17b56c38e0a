//! A load driver for the fault tests: pairs of SDK clients spread over the
//! cluster's nodes send to each other at a fixed total rate, record what
//! was acknowledged and what failed, resend the failures with the same
//! client message id afterwards (as an application's outbox would), and
//! check that every message reached the peer's application exactly once and
//! is stored exactly once.

use magpie_core::{ClientMsgId, ConvId, Message, Seq, Transport, UserId};
use magpie_sdk::{Backoff, Client, ClientOptions, Event, HttpClient};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The figures by default; `MAGPIE_TEST_FAULT_RATE` / `MAGPIE_TEST_FAULT_SECS` override them.
pub fn rate_and_secs() -> (u32, u64) {
    let get = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    (
        get("MAGPIE_TEST_FAULT_RATE", 1000) as u32,
        get("MAGPIE_TEST_FAULT_SECS", 30),
    )
}

pub struct Member {
    pub id: UserId,
    pub peer: UserId,
    pub client: Arc<Client>,
    /// Messages the application got, in the order it got them.
    pub received: Arc<Mutex<Vec<Message>>>,
    pub reconnects: Arc<AtomicU64>,
    /// Why the SDK reconnected.
    pub reasons: Arc<Mutex<Vec<String>>>,
    /// Ranges the SDK reported as gone for good (none may be, here).
    pub unavailable: Arc<Mutex<Vec<(Seq, Seq)>>>,
    recv_task: JoinHandle<()>,
}

/// Logs user `i` (`name`) in and connects it over TCP (even `i`) or
/// WebSocket (odd), asking the edges for tickets in turn from the `i`-th.
async fn connect(edges: &[String], i: usize, name: &str) -> Arc<Client> {
    let login = HttpClient::new(&edges[i % edges.len()]).unwrap();
    let tokens = login.login(name, "password123", None).await.unwrap();
    let clients: Arc<Vec<HttpClient>> = Arc::new(
        edges
            .iter()
            .map(|e| {
                let h = HttpClient::new(e).unwrap();
                h.set_tokens(tokens.clone());
                h
            })
            .collect(),
    );
    let transport = if i.is_multiple_of(2) {
        Transport::Tcp
    } else {
        Transport::Ws
    };
    let turn = Arc::new(AtomicUsize::new(i));
    let connector = move || {
        let (clients, turn) = (clients.clone(), turn.clone());
        async move {
            let mut last = None;
            for _ in 0..clients.len() {
                let k = turn.fetch_add(1, Ordering::Relaxed) % clients.len();
                match clients[k].connect(Some(transport)).await {
                    Ok(r) => return Ok(r),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.expect("at least one edge"))
        }
    };
    let opts = ClientOptions {
        // The driver sees every failure and resends later itself.
        send_attempts: 1,
        reconnect_backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(1)),
        event_buffer: 8192,
        ..ClientOptions::default()
    };
    Arc::new(Client::connect_with(connector, opts).await.unwrap())
}

impl Member {
    /// Member `id` talking to `peer` over `client`, whose events a task
    /// records until the member is dropped.
    fn listen(id: UserId, peer: UserId, client: Arc<Client>) -> Member {
        let received = Arc::new(Mutex::new(Vec::new()));
        let reconnects = Arc::new(AtomicU64::new(0));
        let unavailable = Arc::new(Mutex::new(Vec::new()));
        let reasons = Arc::new(Mutex::new(Vec::new()));
        let recv_task = tokio::spawn({
            let (client, received, reconnects, unavailable, reasons) = (
                client.clone(),
                received.clone(),
                reconnects.clone(),
                unavailable.clone(),
                reasons.clone(),
            );
            async move {
                while let Some(ev) = client.next_event().await {
                    match ev {
                        Event::Message(m) => lock(&received).push(m),
                        Event::Reconnecting { reason, .. } => {
                            reconnects.fetch_add(1, Ordering::Relaxed);
                            lock(&reasons).push(reason);
                        }
                        Event::Unavailable { from, to, .. } => {
                            lock(&unavailable).push((from, to));
                        }
                        Event::Closed { code, reason } => {
                            panic!("session closed for good: {code:?} {reason}")
                        }
                        _ => {}
                    }
                }
            }
        });
        Member {
            id,
            peer,
            client,
            received,
            reconnects,
            reasons,
            unavailable,
            recv_task,
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.recv_task.abort();
    }
}

/// What the senders saw.
#[derive(Default)]
pub struct Ledger {
    /// Every message the application sent: cmid → (from, to, body).
    pub sent: HashMap<ClientMsgId, (UserId, UserId, String)>,
    /// Acknowledged sends: cmid → (conv, seq).
    pub acked: HashMap<ClientMsgId, (ConvId, Seq)>,
    /// Failed attempts: (error, retryable).
    pub errors: Vec<(String, bool)>,
    /// Ticks skipped because a client already had too many sends in flight.
    pub skipped: u64,
    /// The longest a send waited for its acknowledgement.
    pub slowest_ack: Duration,
}

pub struct Load {
    pub members: Vec<Member>,
    pub ledger: Arc<Mutex<Ledger>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// At most this many sends in flight per client; beyond it a tick is skipped.
const MAX_IN_FLIGHT: usize = 400;

impl Load {
    /// Registers `users` users (an even number) and connects each, half over
    /// TCP and half over WebSocket. Tickets come from the edges in turn,
    /// skipping dead ones, as a load balancer in front of them would.
    pub async fn join(edges: &[String], users: usize) -> Load {
        assert!(users.is_multiple_of(2) && !edges.is_empty());
        let http = HttpClient::new(&edges[0]).unwrap();
        let tag = rand::random::<u32>();
        let mut ids = Vec::new();
        for i in 0..users {
            let name = format!("load{tag:08x}u{i}");
            ids.push((
                name.clone(),
                http.register(&name, "password123").await.unwrap().user_id,
            ));
        }
        let mut members = Vec::new();
        for (i, (name, id)) in ids.iter().enumerate() {
            let client = connect(edges, i, name).await;
            members.push(Member::listen(*id, ids[i ^ 1].1, client));
        }
        Load {
            members,
            ledger: Arc::new(Mutex::new(Ledger::default())),
        }
    }

    /// Sends `rate` messages a second in total for `secs`, spread evenly over
    /// the members, without waiting for answers (each send is its own task).
    pub fn run(&self, rate: u32, secs: u64) -> JoinHandle<()> {
        let n = self.members.len();
        let per_member = (rate as u64 * secs) as usize / n;
        let interval = Duration::from_secs_f64(n as f64 / rate as f64);
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            let (client, from, to) = (m.client.clone(), m.id, m.peer);
            let ledger = self.ledger.clone();
            let offset = interval.mul_f64(i as f64 / n as f64);
            tasks.push(tokio::spawn(async move {
                let in_flight = Arc::new(AtomicUsize::new(0));
                let mut sends = Vec::with_capacity(per_member);
                for k in 0..per_member {
                    tokio::time::sleep_until(start + offset + interval * k as u32).await;
                    if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                        lock(&ledger).skipped += 1;
                        continue;
                    }
                    let cmid = ClientMsgId::new_v7();
                    let body = format!("{from}:{k}");
                    lock(&ledger).sent.insert(cmid, (from, to, body.clone()));
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    let (client, ledger, in_flight) =
                        (client.clone(), ledger.clone(), in_flight.clone());
                    sends.push(tokio::spawn(async move {
                        send_once(&client, &ledger, to, cmid, body).await;
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                    }));
                }
                for s in sends {
                    s.await.unwrap();
                }
            }));
        }
        tokio::spawn(async move {
            for t in tasks {
                t.await.unwrap();
            }
        })
    }

    /// Resends everything not acknowledged, with the same ids, until all is.
    pub async fn resend_unacked(&self, deadline: Duration) {
        let until = Instant::now() + deadline;
        let by_user: HashMap<UserId, Arc<Client>> = self
            .members
            .iter()
            .map(|m| (m.id, m.client.clone()))
            .collect();
        loop {
            let todo: Vec<(ClientMsgId, UserId, UserId, String)> = {
                let l = lock(&self.ledger);
                l.sent
                    .iter()
                    .filter(|(c, _)| !l.acked.contains_key(c))
                    .map(|(c, (f, t, b))| (*c, *f, *t, b.clone()))
                    .collect()
            };
            if todo.is_empty() {
                return;
            }
            assert!(
                Instant::now() < until,
                "{} sends still unacknowledged after {deadline:?}",
                todo.len()
            );
            let mut tasks = Vec::new();
            for (cmid, from, to, body) in todo {
                let (client, ledger) = (by_user[&from].clone(), self.ledger.clone());
                tasks.push(tokio::spawn(async move {
                    send_once(&client, &ledger, to, cmid, body).await
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn send_once(
    client: &Client,
    ledger: &Mutex<Ledger>,
    to: UserId,
    cmid: ClientMsgId,
    body: String,
) {
    let asked = Instant::now();
    match client.send_with(to, cmid, body, None).await {
        Ok(r) => {
            let mut l = lock(ledger);
            l.slowest_ack = l.slowest_ack.max(asked.elapsed());
            if let Some(prev) = l.acked.get(&cmid) {
                assert_eq!(
                    prev,
                    &(r.conv.clone(), r.seq),
                    "a retry answered differently"
                );
            }
            l.acked.insert(cmid, (r.conv, r.seq));
        }
        Err(e) => lock(ledger).errors.push((e.to_string(), e.is_retryable())),
    }
}
