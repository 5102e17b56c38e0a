//! The node's recent alarms, for the operator console
//! (`GET /internal/v1/alarms`, docs/protocol.md §3.13): events an operator
//! must look at — an ordering-chain gap (docs/protocol.md, "Ordering
//! chain") and an event parked on a dead-letter topic. Each is also counted in metrics and logged; this list only
//! keeps the last `KEPT` of this node in memory, so it starts empty at
//! every start and is never the record (the logs and metrics are).

use magpie_core::now_ms;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::VecDeque;

/// Alarms kept per node: the newest win.
pub const KEPT: usize = 100;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Alarm {
    /// When it was raised, epoch ms.
    pub at: i64,
    /// `chain_gap` or `dead_letter`.
    pub kind: &'static str,
    /// What happened, for a person.
    pub detail: String,
}

#[derive(Default)]
pub struct Alarms {
    recent: Mutex<VecDeque<Alarm>>,
}

impl Alarms {
    pub fn raise(&self, kind: &'static str, detail: String) {
        let mut recent = self.recent.lock();
        if recent.len() >= KEPT {
            recent.pop_front();
        }
        recent.push_back(Alarm {
            at: now_ms(),
            kind,
            detail,
        });
    }

    /// The kept alarms, newest first.
    pub fn recent(&self) -> Vec<Alarm> {
        self.recent.lock().iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_are_kept_newest_first() {
        let a = Alarms::default();
        for i in 0..KEPT + 5 {
            a.raise("chain_gap", format!("gap {i}"));
        }
        let r = a.recent();
        assert_eq!(r.len(), KEPT);
        assert_eq!(r[0].detail, format!("gap {}", KEPT + 4));
        assert_eq!(r[KEPT - 1].detail, "gap 5");
    }
}
