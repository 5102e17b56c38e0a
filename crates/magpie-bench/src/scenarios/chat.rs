//! `chat`: one-to-one conversations between pairs of users.
//!
//! Closed loop (`--inflight W`): each sender keeps W messages sent but not
//! yet delivered to its peer. Open loop (`--rate R`): the senders together
//! send R messages a second on a fixed schedule, and latency counts from
//! the *scheduled* time, so a stalled server cannot hide its stall by
//! slowing the tool down (no coordinated omission).
//!
//! One task drives both sockets of a pair, so a delivery and the sender it
//! unblocks meet without crossing tasks. Every message is followed until it
//! is both acknowledged (`sent`) and delivered (`msg`): acknowledged but
//! never delivered is lost, delivered twice is duplicated.

use super::{Outcome, Run};
use crate::link::Link;
use crate::meter::{Clock, Counters, Recorder, Shared};
use crate::report::Report;
use crate::wire::{self, Dest, Stamp};
use std::collections::HashMap;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct ChatArgs {
    /// Conversation pairs (two users each).
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Closed loop: messages each sender keeps in flight (sent, not yet delivered).
    #[arg(long, default_value_t = 10)]
    pub inflight: usize,
    /// Open loop: messages a second over all senders (replaces --inflight).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Both users of a pair send (default: the first sends, the second receives).
    #[arg(long)]
    pub both: bool,
}

/// Open-loop senders stop scheduling beyond this many unsettled messages.
const OPEN_LOOP_CAP: usize = 100_000;

#[derive(Clone, Copy)]
struct Entry {
    stamp: u64,
    acked: bool,
    delivered: bool,
}

/// One user of a pair: its socket, and what it sent.
struct Side {
    link: Link,
    peer: i64,
    sender: u32,
    sends: bool,
    next_n: u64,
    msgs: HashMap<u64, Entry>,
    /// Sent and not yet delivered nor failed (the closed loop's window).
    open: usize,
    /// Sequences received, to acknowledge at the next flush.
    acks: Vec<i64>,
    conv: String,
    /// Open loop: when the next message is due (run clock, ns).
    due_ns: u64,
}

/// What a pair's task shares between its two sides.
struct Ctx {
    rec: Recorder,
    counters: Shared,
    clock: Clock,
    body: usize,
    inflight: usize,
    interval_ns: Option<u64>,
    /// Pushes that came again (`attempt > 1`).
    resent: u64,
}

struct Pair {
    a: Side,
    b: Side,
    ctx: Ctx,
}

pub async fn run(args: &ChatArgs, run: &Run) -> anyhow::Result<Report> {
    let users = run.setup.users(args.pairs * 2).await?;
    run_with(args, run, &users).await
}

/// The traffic between `users` taken two by two (`args.pairs` pairs).
pub async fn run_with(
    args: &ChatArgs,
    run: &Run,
    users: &[crate::setup::Account],
) -> anyhow::Result<Report> {
    let mut links = run.setup.connect_all(users).await?.into_iter();
    let senders = if args.both {
        args.pairs * 2
    } else {
        args.pairs
    };
    let interval_ns = args.rate.map(|r| super::interval_ns(senders, r));
    let clock = run.clock();
    let counters = Shared::default();
    let mut tasks = Vec::new();
    for (p, pair) in users.chunks(2).enumerate() {
        let (la, lb) = (links.next().expect("link"), links.next().expect("link"));
        let side = |link: Link, me: i64, peer: i64, sender: u32, sends: bool| Side {
            link,
            peer,
            sender,
            sends,
            next_n: 0,
            msgs: HashMap::new(),
            open: 0,
            acks: Vec::new(),
            conv: format!("d:{}:{}", me.min(peer), me.max(peer)),
            // Spread the first sends over one interval.
            due_ns: interval_ns.map_or(0, |i| i * sender as u64 / senders.max(1) as u64),
        };
        let mut task = Pair {
            a: side(la, pair[0].id, pair[1].id, 2 * p as u32, true),
            b: side(lb, pair[1].id, pair[0].id, 2 * p as u32 + 1, args.both),
            ctx: Ctx {
                rec: Recorder::default(),
                counters: counters.clone(),
                clock,
                body: run.args.body_bytes,
                inflight: args.inflight,
                interval_ns,
                resent: 0,
            },
        };
        tasks.push(tokio::spawn(async move {
            task.drive().await;
            let lost = task.lost();
            (task.ctx.rec, lost, task.ctx.resent)
        }));
    }
    let mut report = run
        .measure("chat", args, clock, &counters, async move {
            let mut out = Outcome::default();
            let mut resent = 0;
            for t in tasks {
                if let Ok((rec, lost, r)) = t.await {
                    out.rec.merge(&rec);
                    out.lost += lost;
                    resent += r;
                }
            }
            out.extra.insert("resent".into(), resent.into());
            out
        })
        .await?;
    report.unit = "msg".into();
    Ok(report)
}

impl serde::Serialize for ChatArgs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("pairs", &self.pairs)?;
        match self.rate {
            Some(r) => m.serialize_entry("rate", &r)?,
            None => m.serialize_entry("inflight", &self.inflight)?,
        }
        m.serialize_entry("both", &self.both)?;
        m.end()
    }
}

impl Pair {
    async fn drive(&mut self) {
        let clock = self.ctx.clock;
        let stop_ns = clock.measure_until_ns;
        let drain_ns = Duration::from_secs(5).as_nanos() as u64;
        loop {
            let now = clock.now_ns();
            let sending = now < stop_ns;
            if sending {
                self.top_up(now);
            } else if self.a.open + self.b.open == 0 || now > stop_ns + drain_ns {
                break;
            }
            for s in [&mut self.a, &mut self.b] {
                if !s.acks.is_empty() {
                    let acks = std::mem::take(&mut s.acks);
                    let conv = &s.conv;
                    s.link.push(|b| wire::ack(b, conv, &acks));
                }
                if s.link.flush().await.is_err() {
                    return;
                }
            }
            let wake_ns = match self.ctx.interval_ns {
                // Only a side that sends and has room has a due time: a
                // silent side's would be in the past and spin this loop.
                Some(_) if sending => [&self.a, &self.b]
                    .iter()
                    .filter(|s| s.sends && s.open < OPEN_LOOP_CAP)
                    .map(|s| s.due_ns)
                    .min()
                    .unwrap_or(u64::MAX)
                    .min(stop_ns),
                _ => now.max(stop_ns) + 50_000_000,
            };
            let (a, b, ctx) = (&mut self.a, &mut self.b, &mut self.ctx);
            tokio::select! {
                f = a.link.next() => match f {
                    Some(f) => on_frame(&f, a, b, ctx),
                    None => return,
                },
                f = b.link.next() => match f {
                    Some(f) => on_frame(&f, b, a, ctx),
                    None => return,
                },
                _ = tokio::time::sleep_until(clock.at(wake_ns).into()) => {}
            }
            // Take whatever else is ready before flushing once.
            while let Some(f) = a.link.ready() {
                on_frame(&f, a, b, ctx);
            }
            while let Some(f) = b.link.ready() {
                on_frame(&f, b, a, ctx);
            }
        }
    }

    fn top_up(&mut self, now: u64) {
        let ctx = &self.ctx;
        for side in [&mut self.a, &mut self.b] {
            if !side.sends {
                continue;
            }
            match ctx.interval_ns {
                None => {
                    while side.open < ctx.inflight {
                        send(side, now, ctx.body, &ctx.counters);
                    }
                }
                Some(interval) => {
                    while side.due_ns <= now && side.open < OPEN_LOOP_CAP {
                        // Latency counts from the schedule, not from now.
                        let due = side.due_ns;
                        send(side, due, ctx.body, &ctx.counters);
                        side.due_ns += interval;
                    }
                }
            }
        }
    }

    fn lost(&self) -> u64 {
        [&self.a, &self.b]
            .iter()
            .map(|s| s.msgs.values().filter(|e| e.acked && !e.delivered).count() as u64)
            .sum()
    }
}

fn send(side: &mut Side, stamp_ns: u64, body: usize, counters: &Counters) {
    let n = side.next_n;
    side.next_n += 1;
    let stamp = Stamp {
        at_ns: stamp_ns,
        sender: side.sender,
        n,
    };
    let to = side.peer;
    side.link
        .push(|b| wire::send(b, n, Dest::User(to), stamp, body));
    side.msgs.insert(
        n,
        Entry {
            stamp: stamp_ns,
            acked: false,
            delivered: false,
        },
    );
    side.open += 1;
    Counters::add(&counters.sent, 1);
}

/// Settles an entry once it is both acknowledged and delivered.
fn settle(side: &mut Side, n: u64) {
    if side.msgs.get(&n).is_some_and(|e| e.acked && e.delivered) {
        side.msgs.remove(&n);
    }
}

/// A frame `me` received; `other` is the pair's other user, the sender of
/// anything `me` is delivered.
fn on_frame(bytes: &[u8], me: &mut Side, other: &mut Side, ctx: &mut Ctx) {
    let Some(f) = wire::decode(bytes) else {
        Counters::add(&ctx.counters.errors, 1);
        return;
    };
    let now = ctx.clock.now_ns();
    match f.op.as_ref() {
        "msg" => {
            if let Some(seq) = f.seq {
                me.acks.push(seq);
            }
            if f.attempt.unwrap_or(1) > 1 {
                ctx.resent += 1;
            }
            let Some(stamp) = f.body.as_deref().and_then(Stamp::parse) else {
                return;
            };
            match other.msgs.get_mut(&stamp.n) {
                Some(e) if !e.delivered => {
                    e.delivered = true;
                    other.open -= 1;
                    ctx.rec.delivery(&ctx.clock, stamp.at_ns, now);
                    Counters::add(&ctx.counters.delivered, 1);
                    settle(other, stamp.n);
                }
                _ => Counters::add(&ctx.counters.duplicated, 1),
            }
        }
        "sent" => {
            let Some(n) = f.rid else { return };
            if let Some(e) = me.msgs.get_mut(&n) {
                if !e.acked {
                    e.acked = true;
                    ctx.rec.ack(&ctx.clock, e.stamp, now);
                    Counters::add(&ctx.counters.acked, 1);
                }
                settle(me, n);
            }
        }
        "error" => {
            f.report_error();
            Counters::add(&ctx.counters.errors, 1);
            // A refused send leaves the window; it is neither lost nor delivered.
            if let Some(n) = f.rid
                && let Some(e) = me.msgs.remove(&n)
                && !e.delivered
            {
                me.open -= 1;
            }
        }
        "resync" => Counters::add(&ctx.counters.resyncs, 1),
        "ping" => me.link.push(wire::pong),
        _ => {}
    }
}
