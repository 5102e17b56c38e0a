//! Read-by counts of many messages of one group at once
//! (`GroupStore::read_counts`), from the members who read at or past the
//! oldest of them — not from every member once per message, which is what
//! made a busy large group's receipts cost its whole membership per sender
//! and second (docs/scale.md).
//!
//! Positions, not counters (ARCHITECTURE.md): member `m` could see message
//! `s` iff `joined_seq < s`, and has read it iff also `read_seq >= s`. A
//! member's `read_seq` starts at its `joined_seq` and never moves back, so
//! a member who joined at or after `s` has `read_seq >= s` too. Hence, with
//! `R(s)` the members whose `read_seq >= s` and `L(s)` those who joined at
//! or after `s` (all among `R(s)`):
//!
//! - read(s) = R(s) − L(s)
//! - unread(s) = members − R(s)
//!
//! and both need only the rows with `read_seq >= min(seqs)`.

use magpie_core::Seq;

/// One group of members who read at or past the oldest sequence asked
/// for: their read position, their join position if they joined at or
/// after that oldest sequence (else `None`), and how many they are.
pub(crate) type PositionRow = (Seq, Option<Seq>, i64);

/// (read, unread) for each of `seqs`, in order.
pub(crate) fn counts(members: i64, rows: &[PositionRow], seqs: &[Seq]) -> Vec<(i64, i64)> {
    seqs.iter()
        .map(|&s| {
            let read_past: i64 = rows.iter().filter(|r| r.0 >= s).map(|r| r.2).sum();
            let late: i64 = rows
                .iter()
                .filter(|r| r.1.is_some_and(|j| j >= s))
                .map(|r| r.2)
                .sum();
            (read_past - late, members - read_past)
        })
        .collect()
}

/// The column value the grouped query gives members who joined before the
/// oldest sequence asked for (their join position does not matter).
pub(crate) const EARLY: Seq = -1;

/// A grouped row as the engines return it (`EARLY` for early joiners).
pub(crate) fn row((read, joined, n): (Seq, Seq, i64)) -> PositionRow {
    (read, (joined != EARLY).then_some(joined), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_positions() {
        // 10 members. Read past 3: four at 5 (one of them joined at 4),
        // two at 3. Everyone else (4) is below 3.
        let rows = [(5, None, 3), (5, Some(4), 1), (3, None, 2)];
        let got = counts(10, &rows, &[3, 4, 5]);
        // s=3: R=6, L=1 (joined at 4 >= 3) → read 5, unread 4.
        // s=4: R=4, L=1 → read 3, unread 6.
        // s=5: R=4, L=0 → read 4, unread 6.
        assert_eq!(got, vec![(5, 4), (3, 6), (4, 6)]);
    }
}
