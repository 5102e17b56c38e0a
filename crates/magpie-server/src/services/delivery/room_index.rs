//! Live rooms on this node: each room's local audience (connections), its
//! short recent buffer, and the rate limiters that shed ordinary messages.
//!
//! Invariants: memory per room is bounded (audience = connections here,
//! `recent` messages, two counters); a room with no audience here is
//! forgotten; a VIP message is never shed, an ordinary one is shed once
//! the room's rate for the current second is used up, sampled by the
//! previous second's ordinary traffic so that one fast sender does not
//! take the whole share.

use super::ConnAddr;
use magpie_core::RoomMessage;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};

/// One second of admissions for one room.
#[derive(Default)]
pub struct Limiter {
    second: i64,
    admitted: u32,
    ordinary_seen: u32,
    vip_seen: u32,
    prev_ordinary: u32,
    prev_vip: u32,
}

impl Limiter {
    /// Whether a message may go on; VIP messages always may.
    pub fn admit(&mut self, now_ms: i64, vip: bool, cap: u32) -> bool {
        let second = now_ms / 1000;
        if second != self.second {
            let gap = second - self.second;
            (self.prev_ordinary, self.prev_vip) = if gap == 1 {
                (self.ordinary_seen, self.vip_seen)
            } else {
                (0, 0)
            };
            (
                self.second,
                self.admitted,
                self.ordinary_seen,
                self.vip_seen,
            ) = (second, 0, 0, 0);
        }
        if vip {
            self.vip_seen += 1;
            self.admitted += 1;
            return true;
        }
        self.ordinary_seen += 1;
        if self.admitted >= cap {
            return false;
        }
        // Room left for ordinary messages, spread over last second's load.
        let room_left = cap.saturating_sub(self.prev_vip).max(1);
        let sample = self.prev_ordinary <= room_left
            || rand::random::<f64>() < f64::from(room_left) / f64::from(self.prev_ordinary);
        if sample {
            self.admitted += 1;
        }
        sample
    }
}

#[derive(Default)]
struct Room {
    audience: HashSet<ConnAddr>,
    recent: VecDeque<RoomMessage>,
    incoming: Limiter,
}

#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<String, Room>>,
    /// Per room, what this node's senders may put on the bus.
    outgoing: Mutex<HashMap<String, Limiter>>,
    by_conn: Mutex<HashMap<ConnAddr, HashSet<String>>>,
}

impl Rooms {
    /// Adds a connection to a room's audience; returns the recent messages.
    pub fn join(&self, room: &str, who: ConnAddr) -> Vec<RoomMessage> {
        self.by_conn
            .lock()
            .entry(who)
            .or_default()
            .insert(room.to_string());
        let mut rooms = self.rooms.lock();
        let r = rooms.entry(room.to_string()).or_default();
        r.audience.insert(who);
        r.recent.iter().cloned().collect()
    }

    pub fn leave(&self, room: &str, who: ConnAddr) {
        if let Some(set) = self.by_conn.lock().get_mut(&who) {
            set.remove(room);
        }
        let mut rooms = self.rooms.lock();
        if let Some(r) = rooms.get_mut(room) {
            r.audience.remove(&who);
            if r.audience.is_empty() {
                rooms.remove(room);
                self.outgoing.lock().remove(room);
            }
        }
    }

    /// A connection closed: it leaves every room. Returns the rooms it was in.
    pub fn leave_all(&self, who: ConnAddr) -> Vec<String> {
        let joined = self.by_conn.lock().remove(&who).unwrap_or_default();
        for room in &joined {
            self.leave(room, who);
        }
        joined.into_iter().collect()
    }

    /// Whether anyone on this node listens to `room`.
    pub fn has_room(&self, room: &str) -> bool {
        self.rooms.lock().contains_key(room)
    }

    pub fn is_in(&self, room: &str, who: ConnAddr) -> bool {
        self.by_conn
            .lock()
            .get(&who)
            .is_some_and(|s| s.contains(room))
    }

    /// The sending node's check, before the bus.
    pub fn admit_outgoing(&self, room: &str, now_ms: i64, vip: bool, cap: u32) -> bool {
        let mut out = self.outgoing.lock();
        out.entry(room.to_string())
            .or_default()
            .admit(now_ms, vip, cap)
    }

    /// A broadcast arrived: `None` if shed (or nobody here listens), else
    /// the audience to push it to. Kept in the recent buffer when admitted.
    pub fn arrive(
        &self,
        msg: &RoomMessage,
        now_ms: i64,
        cap: u32,
        keep: usize,
    ) -> Option<Vec<ConnAddr>> {
        let mut rooms = self.rooms.lock();
        let r = rooms.get_mut(&msg.room)?;
        if !r.incoming.admit(now_ms, msg.vip, cap) {
            return None;
        }
        r.recent.push_back(msg.clone());
        while r.recent.len() > keep {
            r.recent.pop_front();
        }
        Some(r.audience.iter().copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vip_always_passes_and_ordinary_is_capped_per_second() {
        let mut l = Limiter::default();
        let t = 10_000;
        let ordinary = (0..100).filter(|_| l.admit(t, false, 10)).count();
        assert_eq!(ordinary, 10);
        assert!(
            (0..50).all(|_| l.admit(t + 1, true, 10)),
            "VIP is never shed"
        );
        // Next second: at most the cap again, VIP on top.
        let next = (0..100).filter(|_| l.admit(t + 1000, false, 10)).count();
        assert!(next <= 10, "{next}");
    }
}
