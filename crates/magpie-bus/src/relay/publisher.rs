//! The publisher's side of loss detection: one numbering per subject, and
//! the heartbeats that let a subscriber notice a lost last frame.
//!
//! A subject's numbering lives while it is in use: after each publish the
//! heartbeat tick sends the latest sequence (flag `LINGERS`: more follows)
//! until `linger` has passed without a publish; then one final heartbeat
//! closes it and its state is dropped, so memory follows the subjects in
//! use, not every subject ever published to. The next publish there starts
//! a new numbering (a new epoch), which a subscriber that saw the close
//! accepts without a gap (`track.rs`).
//!
//! A numbering whose last send failed (the connection was down) is not
//! closed until a heartbeat went out after the failure: otherwise frames
//! published during an outage longer than `linger` would leave no trace.

use super::frame::{self, Frame};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

struct Numbering {
    epoch: u64,
    seq: u64,
    /// Wall-clock ns of data frame `seq` (0 before the first).
    at: u64,
    last_publish: Instant,
    /// A send failed and no heartbeat has gone out since.
    unsent: bool,
}

pub(crate) struct Publisher {
    id: Arc<str>,
    heartbeat: Duration,
    linger: Duration,
    subjects: Mutex<HashMap<String, Numbering>>,
}

impl Publisher {
    pub fn new(id: Arc<str>, heartbeat: Duration, linger: Duration) -> Publisher {
        Publisher {
            id,
            heartbeat,
            linger,
            subjects: Mutex::new(HashMap::new()),
        }
    }

    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// Numbers `payload` as the subject's next data frame.
    pub fn data(&self, subject: &str, payload: Bytes) -> Bytes {
        let now = Instant::now();
        let wall = frame::wall_ns();
        let mut subjects = self.subjects.lock();
        let n = match subjects.get_mut(subject) {
            Some(n) => n,
            None => subjects.entry(subject.to_string()).or_insert(Numbering {
                epoch: rand::random(),
                seq: 0,
                at: 0,
                last_publish: now,
                unsent: false,
            }),
        };
        let prev_at = n.at;
        n.seq += 1;
        n.at = wall;
        n.last_publish = now;
        let (epoch, seq) = (n.epoch, n.seq);
        drop(subjects);
        self.frame(false, true, epoch, seq, prev_at, payload)
    }

    /// This tick's heartbeats: one per subject in use, the final one for a
    /// subject idle for `linger` (whose numbering is then dropped).
    pub fn heartbeats(&self, now: Instant) -> Vec<(String, Bytes)> {
        let mut subjects = self.subjects.lock();
        let mut out = Vec::with_capacity(subjects.len());
        subjects.retain(|subject, n| {
            let lingers = n.unsent || now.duration_since(n.last_publish) < self.linger;
            out.push((subject.clone(), (n.epoch, n.seq, n.at, lingers)));
            lingers
        });
        drop(subjects);
        out.into_iter()
            .map(|(s, (epoch, seq, at, lingers))| {
                (s, self.frame(true, lingers, epoch, seq, at, Bytes::new()))
            })
            .collect()
    }

    /// Records whether the last frame on `subject` failed to go out; a
    /// heartbeat that went out clears it.
    pub fn sent(&self, subject: &str, ok: bool) {
        if let Some(n) = self.subjects.lock().get_mut(subject) {
            n.unsent = !ok;
        }
    }

    /// Final heartbeats for every subject in use, which are then forgotten:
    /// what a graceful close sends so subscribers see no gap.
    pub fn close_all(&self) -> Vec<(String, Bytes)> {
        let taken = std::mem::take(&mut *self.subjects.lock());
        taken
            .into_iter()
            .map(|(s, n)| {
                let hb = self.frame(true, false, n.epoch, n.seq, n.at, Bytes::new());
                (s, hb)
            })
            .collect()
    }

    fn frame(&self, hb: bool, lingers: bool, epoch: u64, seq: u64, at: u64, p: Bytes) -> Bytes {
        frame::encode(&Frame {
            heartbeat: hb,
            lingers,
            publisher: &self.id,
            epoch,
            seq,
            at,
            heartbeat_ms: self.heartbeat.as_millis().clamp(1, u128::from(u32::MAX)) as u32,
            payload: p,
        })
    }
}
