//! The newest committed events, kept in memory so that consumers that keep
//! up (every worker, normally) fetch without reading the file: the writer
//! appends each committed batch here before answering its publishers.
//!
//! Invariant: every committed event with an offset at or above `start` is
//! here, in offset order. Evicting the oldest (over the byte cap) raises
//! `start`; a consumer whose cursor is below `start` reads the file.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;

/// One committed event: offset, topic, payload.
pub(super) type Row = (u64, String, Bytes);

pub(super) struct Tail {
    inner: Mutex<Inner>,
    cap_bytes: usize,
}

struct Inner {
    start: u64,
    events: VecDeque<Row>,
    bytes: usize,
}

/// What a scan of the tail found: payloads of the due offsets, and up to
/// `limit` new events of the topics from the cursor, with where the next
/// scan starts.
pub(super) struct Found {
    pub due: Vec<(String, Bytes)>,
    pub fresh: Vec<Row>,
    pub next: u64,
}

impl Tail {
    /// `start`: the offset the next committed event will have at least.
    pub(super) fn new(start: u64, cap_bytes: usize) -> Tail {
        Tail {
            inner: Mutex::new(Inner {
                start,
                events: VecDeque::new(),
                bytes: 0,
            }),
            cap_bytes,
        }
    }

    /// Appends a committed batch (offsets ascending, above all held ones).
    pub(super) fn push(&self, rows: impl IntoIterator<Item = Row>) {
        let mut t = self.inner.lock();
        for row in rows {
            t.bytes += row.2.len() + row.1.len();
            t.events.push_back(row);
        }
        while t.bytes > self.cap_bytes {
            let Some((off, topic, payload)) = t.events.pop_front() else {
                break;
            };
            t.bytes -= payload.len() + topic.len();
            t.start = off + 1;
        }
    }

    /// Forgets what retention deleted from the log (offsets up to `upto`).
    pub(super) fn retire(&self, upto: u64) {
        let mut t = self.inner.lock();
        while t.events.front().is_some_and(|r| r.0 <= upto) {
            if let Some((_, topic, payload)) = t.events.pop_front() {
                t.bytes -= payload.len() + topic.len();
            }
        }
        t.start = t.start.max(upto + 1);
    }

    /// Events of `topics` at or after `cursor` (a consumer's backlog): exact
    /// while the tail covers the cursor; for a consumer further behind, the
    /// offsets before the tail are counted whatever their topic (an upper
    /// bound, never an under-count).
    pub(super) fn pending(&self, cursor: u64, topics: &[String]) -> u64 {
        let t = self.inner.lock();
        let before = t.start.saturating_sub(cursor);
        let from = Self::index(&t.events, cursor);
        let held = t
            .events
            .range(from..)
            .filter(|r| topics.contains(&r.1))
            .count() as u64;
        before + held
    }

    fn index(events: &VecDeque<Row>, offset: u64) -> usize {
        events.partition_point(|r| r.0 < offset)
    }

    /// The scan of the log a consumer needs, if the tail covers it.
    pub(super) fn scan(
        &self,
        due: &[u64],
        cursor: u64,
        topics: &[String],
        limit: usize,
    ) -> Option<Found> {
        let t = self.inner.lock();
        if cursor < t.start || due.iter().any(|&d| d < t.start) {
            return None;
        }
        let mut found_due = Vec::with_capacity(due.len());
        for &d in due {
            let i = Self::index(&t.events, d);
            match t.events.get(i) {
                Some((off, topic, payload)) if *off == d => {
                    found_due.push((topic.clone(), payload.clone()))
                }
                // Offsets the tail covers but does not hold were never committed.
                _ => return None,
            }
        }
        let mut fresh = Vec::new();
        let mut next = cursor;
        for (off, topic, payload) in t.events.range(Self::index(&t.events, cursor)..) {
            if fresh.len() >= limit {
                break;
            }
            next = off + 1;
            if topics.iter().any(|x| x == topic) {
                fresh.push((*off, topic.clone(), payload.clone()));
            }
        }
        Some(Found {
            due: found_due,
            fresh,
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(off: u64, topic: &str) -> Row {
        (off, topic.to_string(), Bytes::from_static(b"0123456789"))
    }

    #[test]
    fn scans_from_the_cursor_and_skips_other_topics() {
        let t = Tail::new(1, 1 << 20);
        t.push([row(1, "a"), row(2, "b"), row(4, "a"), row(5, "a")]);
        let f = t.scan(&[], 1, &["a".into()], 2).expect("covered");
        assert_eq!(f.fresh.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(f.next, 5);
        let f = t.scan(&[2], 5, &["a".into()], 10).expect("covered");
        assert_eq!((f.due.len(), f.fresh.len(), f.next), (1, 1, 6));
        assert_eq!(
            t.scan(&[3], 5, &["a".into()], 10).map(|f| f.due.len()),
            None
        );
    }

    #[test]
    fn eviction_hands_old_cursors_to_the_file() {
        let t = Tail::new(1, 25);
        t.push([row(1, "a"), row(2, "a"), row(3, "a")]);
        assert!(t.scan(&[], 1, &["a".into()], 10).is_none(), "1 was evicted");
        let f = t.scan(&[], 3, &["a".into()], 10).expect("covered");
        assert_eq!(f.fresh.len(), 1);
    }
}
