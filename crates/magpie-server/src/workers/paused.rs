//! Worker groups an operator paused on this node (`PUT
//! /internal/v1/workers/{group}`): while paused, the group's consumers here
//! take nothing new (what they staged still becomes durable), and its lag
//! grows for all to see. For maintenance of a worker's backend; the events
//! wait in the durable log, nothing is lost. Not kept across a restart.

use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
pub struct Paused {
    /// Whether any group is paused: the common case reads only this.
    any: AtomicBool,
    groups: Mutex<BTreeSet<String>>,
}

impl Paused {
    pub fn is_paused(&self, group: &str) -> bool {
        self.any.load(Ordering::Relaxed) && self.groups.lock().contains(group)
    }

    pub fn set(&self, group: &str, paused: bool) {
        let mut g = self.groups.lock();
        if paused {
            g.insert(group.to_string());
        } else {
            g.remove(group);
        }
        self.any.store(!g.is_empty(), Ordering::Relaxed);
    }

    pub fn list(&self) -> Vec<String> {
        self.groups.lock().iter().cloned().collect()
    }
}
