//! The driver shared by the one-to-many scenarios (groups, super groups,
//! live rooms): one task per online member; a few members also send, on a
//! fixed schedule (open loop, latency from the scheduled time). Every
//! member counts what reaches it: per sender, numbers must only grow (a
//! number seen again is a duplicate).

use crate::link::Link;
use crate::meter::{Clock, Counters, Recorder, Shared};
use crate::wire::{self, Dest, Stamp};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where the members' messages go.
#[derive(Clone, Debug)]
pub enum Channel {
    /// A group's conversation: pushes are acknowledged like any message.
    Group { id: i64 },
    /// A live room: fire and forget, the server may shed ordinary messages.
    Room { name: String },
}

/// What every member task shares.
#[derive(Clone)]
pub struct Plan {
    pub channel: Channel,
    pub clock: Clock,
    pub counters: Shared,
    pub body: usize,
    /// Time between two sends of one sender, ns.
    pub interval_ns: u64,
    pub senders: usize,
    /// Deliveries each accepted message should make (online members but
    /// its sender), or `None` where shedding makes it unknowable.
    pub fanout: Option<u64>,
    /// Messages the server took (acknowledged, or not shed).
    pub taken: Arc<AtomicU64>,
    /// Sends answered (taken, shed or refused): until every send is, a
    /// member cannot know how many deliveries to wait for.
    pub answered: Arc<AtomicU64>,
    /// How long members wait for stragglers after the traffic ends, ns.
    pub drain_ns: u64,
}

impl Plan {
    /// A plan for `senders` members sharing `rate` messages a second, with
    /// no expected fan-out (a group sets it) and fresh counts.
    pub fn new(
        run: &super::Run,
        channel: Channel,
        clock: Clock,
        senders: usize,
        rate: f64,
    ) -> Plan {
        Plan {
            channel,
            clock,
            counters: Shared::default(),
            body: run.args.body_bytes,
            interval_ns: super::interval_ns(senders, rate),
            senders,
            fanout: None,
            taken: Arc::new(AtomicU64::new(0)),
            answered: Arc::new(AtomicU64::new(0)),
            drain_ns: 1_000_000_000,
        }
    }
}

struct Member {
    link: Link,
    plan: Plan,
    /// The sender number of this member, if it sends.
    sender: Option<u32>,
    next_n: u64,
    due_ns: u64,
    stamps: HashMap<u64, u64>,
    /// Per sender, the next number expected.
    expect: HashMap<u32, u64>,
    acks: Vec<i64>,
    rec: Recorder,
}

/// One member task per link; the first `plan.senders` also send.
pub fn spawn_members(links: Vec<Link>, plan: &Plan) -> Vec<tokio::task::JoinHandle<Recorder>> {
    links
        .into_iter()
        .enumerate()
        .map(|(i, link)| {
            let sender = (i < plan.senders).then_some(i as u32);
            tokio::spawn(member(link, plan.clone(), sender))
        })
        .collect()
}

/// Runs one member until the traffic ends and what was sent has arrived
/// (or the drain time passed); returns what it recorded.
pub async fn member(link: Link, plan: Plan, sender: Option<u32>) -> Recorder {
    // Senders start spread over one interval, from the start of the warm-up.
    let due_ns = sender.map_or(u64::MAX, |s| {
        plan.interval_ns * s as u64 / plan.senders.max(1) as u64
    });
    let mut m = Member {
        link,
        plan,
        sender,
        next_n: 0,
        due_ns,
        stamps: HashMap::new(),
        expect: HashMap::new(),
        acks: Vec::new(),
        rec: Recorder::default(),
    };
    m.drive().await;
    m.rec
}

impl Member {
    async fn drive(&mut self) {
        let clock = self.plan.clock;
        let stop = clock.measure_until_ns;
        let drain_until = stop + self.plan.drain_ns;
        if let Channel::Room { name } = &self.plan.channel {
            let name = name.clone();
            self.link.push(|b| wire::room_join(b, 0, &name));
        }
        loop {
            let now = clock.now_ns();
            if now >= stop && (self.settled() || now >= drain_until) {
                return;
            }
            while self.sender.is_some() && self.due_ns <= now.min(stop) {
                self.send();
            }
            if !self.acks.is_empty() {
                let (acks, conv) = (std::mem::take(&mut self.acks), self.conv());
                self.link.push(|b| wire::ack(b, &conv, &acks));
            }
            if self.link.flush().await.is_err() {
                return;
            }
            let wake = if now < stop {
                self.due_ns.min(stop)
            } else {
                now + 50_000_000
            };
            tokio::select! {
                f = self.link.next() => match f {
                    Some(f) => self.on_frame(&f),
                    None => return,
                },
                _ = tokio::time::sleep_until(clock.at(wake).into()) => {}
            }
            while let Some(f) = self.link.ready() {
                self.on_frame(&f);
            }
        }
    }

    fn conv(&self) -> String {
        match &self.plan.channel {
            Channel::Group { id } => format!("g:{id}"),
            Channel::Room { name } => name.clone(),
        }
    }

    /// Everything the server took has reached every member it should.
    fn settled(&self) -> bool {
        let c = &self.plan.counters;
        match self.plan.fanout {
            Some(f) => {
                self.plan.answered.load(Ordering::Relaxed) >= Counters::get(&c.sent)
                    && Counters::get(&c.delivered) >= self.plan.taken.load(Ordering::Relaxed) * f
            }
            None => false,
        }
    }

    fn send(&mut self) {
        let Some(sender) = self.sender else { return };
        let (n, at_ns) = (self.next_n, self.due_ns);
        self.next_n += 1;
        self.due_ns += self.plan.interval_ns;
        let stamp = Stamp { at_ns, sender, n };
        let body = self.plan.body;
        match &self.plan.channel {
            Channel::Group { id } => {
                let id = *id;
                self.link
                    .push(|b| wire::send(b, n, Dest::Group(id), stamp, body));
            }
            Channel::Room { name } => self.link.push(|b| wire::room_send(b, n, name, stamp, body)),
        }
        self.stamps.insert(n, at_ns);
        Counters::add(&self.plan.counters.sent, 1);
    }

    fn on_frame(&mut self, bytes: &[u8]) {
        let counters = &self.plan.counters;
        let Some(f) = wire::decode(bytes) else {
            Counters::add(&counters.errors, 1);
            return;
        };
        let now = self.plan.clock.now_ns();
        let body = match f.op.as_ref() {
            "msg" => {
                if let Some(seq) = f.seq {
                    self.acks.push(seq);
                }
                f.body
            }
            "room_msg" => f.msg.map(|m| m.body),
            "sent" | "room_sent" => {
                if let Some(at) = f.rid.and_then(|n| self.stamps.remove(&n)) {
                    self.plan.answered.fetch_add(1, Ordering::Relaxed);
                    if f.shed == Some(true) {
                        Counters::add(&counters.shed, 1);
                    } else {
                        self.plan.taken.fetch_add(1, Ordering::Relaxed);
                        Counters::add(&counters.acked, 1);
                        self.rec.ack(&self.plan.clock, at, now);
                    }
                }
                return;
            }
            "error" => {
                f.report_error();
                if f.rid.and_then(|n| self.stamps.remove(&n)).is_some() {
                    self.plan.answered.fetch_add(1, Ordering::Relaxed);
                }
                Counters::add(&counters.errors, 1);
                return;
            }
            "resync" => {
                Counters::add(&counters.resyncs, 1);
                return;
            }
            "ping" => {
                self.link.push(wire::pong);
                return;
            }
            _ => return,
        };
        let Some(stamp) = body.as_deref().and_then(Stamp::parse) else {
            return;
        };
        let next = self.expect.entry(stamp.sender).or_insert(0);
        if stamp.n < *next {
            Counters::add(&counters.duplicated, 1);
            return;
        }
        *next = stamp.n + 1;
        Counters::add(&counters.delivered, 1);
        self.rec.delivery(&self.plan.clock, stamp.at_ns, now);
    }
}
