//! Negative caching (docs/edge.md): ids a look-up found missing are
//! remembered for a short while, so a client probing ids that do not exist
//! costs one store read per id and window, not one per request.
//!
//! Ids come from sequences: something created on this node is forgotten as
//! missing at once (`found`); something created on another node may be
//! answered "not found" here for up to the window by a client that asked
//! for its id before it existed — the price of not asking the store again.

use super::generations::Generations;
use parking_lot::Mutex;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How long an id found missing is answered from memory.
pub const MISSING_FOR: Duration = Duration::from_secs(10);
/// Missing ids remembered at most (two generations: bounded whatever the probing).
const MISSING_KEPT: usize = 10_000;

pub(crate) struct Missing<K> {
    ids: Mutex<Generations<K, Instant>>,
}

impl<K: Hash + Eq + Copy> Missing<K> {
    pub(crate) fn new() -> Self {
        Missing {
            ids: Mutex::new(Generations::new(MISSING_KEPT)),
        }
    }

    /// Whether `id` was found missing less than [`MISSING_FOR`] ago.
    pub(crate) fn is_missing(&self, id: K) -> bool {
        self.ids
            .lock()
            .get(id)
            .is_some_and(|until| until > Instant::now())
    }

    /// A look-up just found nothing.
    pub(crate) fn mark(&self, id: K) {
        self.ids.lock().insert(id, Instant::now() + MISSING_FOR);
    }

    /// It exists now (created here).
    pub(crate) fn found(&self, id: K) {
        self.ids.lock().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ids_are_remembered_until_found() {
        let m: Missing<i64> = Missing::new();
        assert!(!m.is_missing(7));
        m.mark(7);
        assert!(m.is_missing(7));
        assert!(!m.is_missing(8));
        m.found(7);
        assert!(!m.is_missing(7));
    }
}
