//! Big authors and their subscribers in process (Redis keeps one hash of
//! flags and one sorted set per big author: `redis_state/subscribers.rs`).
//! A subscription is a deadline; expired ones are dropped when a scan or a
//! subscription finds them.

use crate::state::BigAuthors;
use magpie_core::UserId;
use std::collections::{BTreeMap, HashMap};

#[derive(Default)]
pub(super) struct Subscribers {
    /// Author → its flag's sequence.
    big: HashMap<UserId, i64>,
    seq: i64,
    /// Per big author, reader → deadline (ms).
    readers: HashMap<UserId, BTreeMap<UserId, i64>>,
}

impl Subscribers {
    pub fn big(&self, authors: &[UserId]) -> BigAuthors {
        let flagged = authors.iter().filter_map(|a| Some((*a, *self.big.get(a)?)));
        BigAuthors {
            flagged: flagged.collect(),
            seq: self.seq,
        }
    }

    pub fn set_big(&mut self, author: UserId) -> i64 {
        let next = self.seq + 1;
        let at = *self.big.entry(author).or_insert(next);
        self.seq = self.seq.max(at);
        at
    }

    pub fn subscribe(&mut self, reader: UserId, authors: &[UserId], until: i64, now: i64) -> bool {
        let mut all_there = true;
        for author in authors {
            let readers = self.readers.entry(*author).or_default();
            let before = readers.insert(reader, until);
            all_there &= before.is_some_and(|t| t > now);
        }
        all_there
    }

    /// The cursor is the next reader id to look at, plus one (0 is the
    /// start and the end).
    pub fn scan(&mut self, author: UserId, cursor: u64, n: usize, now: i64) -> (Vec<UserId>, u64) {
        let Some(readers) = self.readers.get_mut(&author) else {
            return (Vec::new(), 0);
        };
        if cursor == 0 {
            readers.retain(|_, until| *until > now);
        }
        let from = UserId(cursor.saturating_sub(1).min(i64::MAX as u64) as i64);
        let mut page = readers.range(from..).filter(|(_, until)| **until > now);
        let found: Vec<UserId> = page.by_ref().take(n.max(1)).map(|(r, _)| *r).collect();
        let next = match page.next() {
            Some((r, _)) => r.0 as u64 + 1,
            None => 0,
        };
        (found, next)
    }
}
