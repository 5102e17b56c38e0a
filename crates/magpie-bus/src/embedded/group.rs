//! In-memory delivery state of one consumer group, shared by all its
//! consumers in this process (that sharing is what makes them compete).
//!
//! Only the durable part (floor + acks above it) survives a restart; the
//! cursor and in-flight set are rebuilt from it, so everything not acked is
//! delivered again after a restart — the at-least-once promise.

use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;

/// How far a group's cursor runs ahead of its written floor, through
/// events of other topics, before the floor is written anyway.
const IDLE_FLOOR_STEP: u64 = 4096;

/// What a group's durable state says at load time.
pub(super) struct Loaded {
    pub floor: u64,
    /// Acked offsets above the floor.
    pub acked: Vec<u64>,
    pub topics: Vec<String>,
}

/// An event delivered and not yet acknowledged.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    deadline: Instant,
    attempt: u32,
}

#[derive(Debug)]
pub(super) struct GroupState {
    topics: Vec<String>,
    /// Next offset to read from the log.
    cursor: u64,
    in_flight: BTreeMap<u64, InFlight>,
    /// Acked offsets not reached by the cursor yet (after a restart: the
    /// acks table); the scan skips them. Offsets behind the cursor need no
    /// record, the cursor never goes back.
    acked_ahead: BTreeSet<u64>,
    /// The floor last written to the file.
    persisted: u64,
}

pub(super) struct Group {
    pub state: Mutex<GroupState>,
    /// Held (across the log read) by the consumer scanning new events, so two
    /// competing consumers never read the same offsets from the cursor.
    pub scan: tokio::sync::Mutex<()>,
}

impl Group {
    pub fn new(loaded: Loaded) -> Group {
        Group {
            state: Mutex::new(GroupState::new(loaded)),
            scan: tokio::sync::Mutex::new(()),
        }
    }

    pub fn add_topics(&self, topics: &[String]) {
        self.state.lock().add_topics(topics);
    }
}

impl GroupState {
    pub fn new(l: Loaded) -> GroupState {
        let mut s = GroupState {
            topics: Vec::new(),
            cursor: l.floor + 1,
            in_flight: BTreeMap::new(),
            acked_ahead: l.acked.into_iter().filter(|&o| o > l.floor).collect(),
            persisted: l.floor,
        };
        s.add_topics(&l.topics);
        s
    }

    /// A consumer joining with more topics widens the group; it gets those
    /// topics' events from the group's current position on.
    pub fn add_topics(&mut self, topics: &[String]) {
        for t in topics {
            if !self.topics.contains(t) {
                self.topics.push(t.clone());
            }
        }
    }

    pub fn topics(&self) -> Vec<String> {
        self.topics.clone()
    }

    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Takes up to `max` events whose ack wait expired, for redelivery: bumps
    /// their attempt and gives them a fresh deadline. Returns (offset, attempt).
    pub fn take_due(&mut self, now: Instant, max: usize, ack_wait: Duration) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        for (&off, f) in self.in_flight.iter_mut() {
            if out.len() >= max {
                break;
            }
            if f.deadline <= now {
                f.attempt += 1;
                f.deadline = now + ack_wait;
                out.push((off, f.attempt));
            }
        }
        out
    }

    /// Records a scan of the log: `offsets` are the group's events found from
    /// the cursor, `next` is where the next scan starts. Returns the offsets
    /// to deliver now (first attempt), i.e. those not already acked.
    pub fn accept(
        &mut self,
        offsets: &[u64],
        next: u64,
        now: Instant,
        ack_wait: Duration,
    ) -> Vec<u64> {
        let mut out = Vec::with_capacity(offsets.len());
        for &off in offsets {
            if off < self.cursor
                || self.acked_ahead.remove(&off)
                || self.in_flight.contains_key(&off)
            {
                continue;
            }
            self.in_flight.insert(
                off,
                InFlight {
                    deadline: now + ack_wait,
                    attempt: 1,
                },
            );
            out.push(off);
        }
        self.cursor = self.cursor.max(next);
        // Keep only the acks the cursor has not passed.
        self.acked_ahead = self.acked_ahead.split_off(&self.cursor);
        out
    }

    /// The floor the group may move to once `offsets` are acked: every
    /// offset below the cursor is acked, out of its topics, or in flight, so
    /// it is just below the lowest event still in flight (or the cursor).
    pub fn floor_after(&self, offsets: &[u64]) -> u64 {
        let mut acked = offsets.to_vec();
        acked.sort_unstable();
        let owed = self
            .in_flight
            .keys()
            .find(|o| acked.binary_search(o).is_err());
        owed.map_or(self.cursor, |o| *o).saturating_sub(1)
    }

    /// A floor worth writing although nothing was acked: the cursor went
    /// far past events of other topics (a group whose topics are quiet would
    /// otherwise hold its floor, and the log's upkeep, far behind).
    pub fn idle_floor(&self) -> Option<u64> {
        let floor = self.floor_after(&[]);
        (floor >= self.persisted + IDLE_FLOOR_STEP).then_some(floor)
    }

    /// The floor was written.
    pub fn persisted(&mut self, floor: u64) {
        self.persisted = self.persisted.max(floor);
    }

    /// The events are durably acked: stop tracking them.
    pub fn acked(&mut self, offsets: &[u64]) {
        for &off in offsets {
            self.in_flight.remove(&off);
            if off >= self.cursor {
                self.acked_ahead.insert(off);
            }
        }
    }

    /// Makes an in-flight event due now. Returns whether it was in flight.
    pub fn nak(&mut self, offset: u64, now: Instant) -> bool {
        match self.in_flight.get_mut(&offset) {
            Some(f) => {
                f.deadline = now;
                true
            }
            None => false,
        }
    }

    /// Drops an in-flight event whose payload is gone from the log.
    pub fn forget(&mut self, offset: u64) {
        self.in_flight.remove(&offset);
    }

    /// When the next redelivery falls due, to bound a waiting fetch.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.in_flight.values().map(|f| f.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(1);

    fn state(floor: u64, acked: Vec<u64>) -> GroupState {
        GroupState::new(Loaded {
            floor,
            acked,
            topics: vec!["a".into(), "a".into()],
        })
    }

    #[test]
    fn restart_resumes_at_floor_and_skips_acked() {
        let mut s = state(3, vec![5, 7]);
        assert_eq!(s.cursor(), 4);
        assert_eq!(s.topics(), vec!["a".to_string()]);
        let now = Instant::now();
        assert_eq!(s.accept(&[4, 5, 6, 7, 8], 9, now, WAIT), vec![4, 6, 8]);
        assert_eq!(s.cursor(), 9);
        assert!(s.acked_ahead.is_empty());
    }

    #[test]
    fn floor_stops_below_the_lowest_event_still_owed() {
        let mut s = state(0, vec![]);
        let now = Instant::now();
        s.accept(&[2, 4, 7], 10, now, WAIT);
        assert_eq!(s.floor_after(&[4]), 1, "2 is still owed");
        assert_eq!(s.floor_after(&[2]), 3, "4 is still owed");
        assert_eq!(s.floor_after(&[7, 2, 4]), 9, "all acked: up to the cursor");
    }

    #[test]
    fn redelivery_bumps_attempt_and_respects_deadline() {
        let mut s = state(0, vec![]);
        let t0 = Instant::now();
        s.accept(&[1, 2], 3, t0, WAIT);
        assert!(s.take_due(t0, 10, WAIT).is_empty());
        assert_eq!(
            s.take_due(t0 + WAIT, 1, WAIT),
            vec![(1, 2)],
            "max is honoured"
        );
        assert!(s.nak(2, t0));
        assert_eq!(s.take_due(t0 + WAIT, 10, WAIT), vec![(2, 2)]);
        s.acked(&[1, 2]);
        assert!(s.next_deadline().is_none());
        assert!(!s.nak(1, t0), "acked events cannot be naked back");
    }
}
