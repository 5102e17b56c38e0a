//! The offline index segmented by time (docs/deploy.md, "Big keys"): what
//! both backends share — the options, the calendar of buckets, where an
//! entry goes, how reads across segments merge — and the `State` calls
//! that hand the options to the backend.
//!
//! A queue (one receiver, one conversation) is a set of segments, one per
//! time bucket (an ISO week or a calendar month of the entry's time), each
//! holding at most `cap` entries and expiring as a whole `keep_ms` after
//! its bucket ends. **Invariant:** a seq is in at most one segment of its
//! queue (an add removes it from the others first), so a read that takes
//! the first `n` of every segment and merges them returns exactly what one
//! unsegmented set would (`merge_newest`, `merge_after`).

use crate::error::{Result, StoreError};
use crate::state::{OFFLINE_CAP, State};
use magpie_core::time::{civil_from_days, days_from_civil};
use magpie_core::{ConvId, Seq, ServerMsgId, UserId};

const DAY_MS: i64 = 86_400_000;

/// The time span of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BucketUnit {
    /// ISO weeks, Monday 00:00 UTC to Monday.
    Week,
    /// Calendar months, UTC.
    Month,
}

/// One time bucket: its unit and its number (weeks since the Monday
/// 1969-12-29, or `year * 12 + month - 1`). Its text, `w{n}` or `m{n}`,
/// names the segment's key; the unit letter keeps week and month buckets
/// apart, so a queue written under both units (the option changed) reads
/// as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket {
    pub unit: BucketUnit,
    pub n: i64,
}

impl Bucket {
    /// The bucket of `unit` holding the instant `ms` (epoch ms).
    pub fn of(unit: BucketUnit, ms: i64) -> Bucket {
        let days = ms.div_euclid(DAY_MS);
        let n = match unit {
            // 1970-01-01 was a Thursday: +3 days puts Mondays on multiples of 7.
            BucketUnit::Week => (days + 3).div_euclid(7),
            BucketUnit::Month => {
                let (y, m, _) = civil_from_days(days);
                y * 12 + i64::from(m) - 1
            }
        };
        Bucket { unit, n }
    }

    /// The first instant after the bucket, epoch ms.
    pub fn end_ms(self) -> i64 {
        let next = self.n + 1;
        match self.unit {
            BucketUnit::Week => (next * 7 - 3) * DAY_MS,
            BucketUnit::Month => {
                days_from_civil(next.div_euclid(12), next.rem_euclid(12) as u32 + 1, 1) * DAY_MS
            }
        }
    }

    pub fn id(self) -> String {
        match self.unit {
            BucketUnit::Week => format!("w{}", self.n),
            BucketUnit::Month => format!("m{}", self.n),
        }
    }

    pub fn parse(id: &str) -> Option<Bucket> {
        let unit = match id.as_bytes().first()? {
            b'w' => BucketUnit::Week,
            b'm' => BucketUnit::Month,
            _ => return None,
        };
        Some(Bucket {
            unit,
            n: id[1..].parse().ok()?,
        })
    }
}

/// How a `State` segments its offline index; set by the state URL's
/// `offline_bucket`, `offline_cap` and `offline_keep_ms` (docs/config.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineOptions {
    pub unit: BucketUnit,
    /// Entries one segment keeps at most (its newest); what falls off is
    /// still in the store, for sync.
    pub cap: usize,
    /// How long a segment lives after its bucket ends.
    pub keep_ms: u64,
}

impl Default for OfflineOptions {
    fn default() -> Self {
        OfflineOptions {
            unit: BucketUnit::Week,
            cap: OFFLINE_CAP,
            keep_ms: 30 * DAY_MS as u64,
        }
    }
}

impl OfflineOptions {
    /// Takes our query parameters off a state URL: the options, and the URL
    /// without them (a redis client rejects parameters it does not know).
    pub fn split_url(url: &str) -> Result<(String, OfflineOptions)> {
        let mut opts = OfflineOptions::default();
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_string(), opts));
        };
        let bad = |k: &str, v: &str| StoreError::Config(format!("bad state url {k}={v:?}"));
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "offline_bucket" => {
                    opts.unit = match v {
                        "week" => BucketUnit::Week,
                        "month" => BucketUnit::Month,
                        _ => return Err(bad(k, v)),
                    }
                }
                "offline_cap" => {
                    opts.cap = v.parse().ok().filter(|c| *c > 0).ok_or_else(|| bad(k, v))?
                }
                "offline_keep_ms" => {
                    opts.keep_ms = v.parse().ok().filter(|t| *t > 0).ok_or_else(|| bad(k, v))?
                }
                _ => rest.push(pair),
            }
        }
        let url = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        Ok((url, opts))
    }

    /// Where an entry goes: its bucket and when that segment expires, or
    /// `None` when it has expired already (the entry is not kept). The
    /// entry's time is its message's, read from the payload (a server
    /// message id); a payload that is not one takes `now`.
    pub fn place(&self, payload: &str, now: i64) -> Option<(Bucket, i64)> {
        let id = payload
            .parse()
            .ok()
            .filter(|_| payload.starts_with(|c: char| c.is_ascii_digit()));
        let at = id.and_then(|n| ServerMsgId(n).unix_ms()).unwrap_or(now);
        let bucket = Bucket::of(self.unit, at);
        let expires = bucket.end_ms().saturating_add(self.keep_ms as i64);
        (expires > now).then_some((bucket, expires))
    }
}

/// One segment of a queue, as `StateBackend::offline_segments` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// `None`: the unsegmented key written before buckets (Redis only),
    /// read and trimmed until its own expiry drains it.
    pub bucket: Option<Bucket>,
    /// When it expires, epoch ms (`None` for the old key).
    pub expires_at: Option<i64>,
    pub len: usize,
}

/// Puts segments in their reported order: newest bucket first (by end,
/// then id), the old unsegmented key last; empty ones are left out.
pub fn order_segments(mut segs: Vec<Segment>) -> Vec<Segment> {
    segs.retain(|s| s.len > 0);
    segs.sort_by_key(|s| {
        let end = s.bucket.map(Bucket::end_ms);
        (std::cmp::Reverse(end), s.bucket)
    });
    segs
}

/// The newest `n` of entries gathered from every segment, newest first.
pub fn merge_newest(mut all: Vec<(Seq, String)>, n: usize) -> Vec<(Seq, String)> {
    all.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
    all.truncate(n);
    all
}

/// The first `n` (lowest seq) of entries gathered from every segment.
pub fn merge_after(mut all: Vec<(Seq, String)>, n: usize) -> Vec<(Seq, String)> {
    all.sort_unstable_by_key(|e| e.0);
    all.truncate(n);
    all
}

/// The offline calls that need the options: `State` passes its own, so
/// callers write `state.arrived(&items)` whatever the backend.
impl State {
    /// `StateBackend::offline_add` with this handle's options.
    pub async fn offline_add(&self, items: &[(UserId, ConvId, Seq, String)]) -> Result<()> {
        self.backend().offline_add(items, self.offline()).await
    }

    /// `StateBackend::arrived` with this handle's options.
    pub async fn arrived(&self, items: &[(UserId, ConvId, Seq, String)]) -> Result<()> {
        self.backend().arrived(items, self.offline()).await
    }
}

#[cfg(test)]
#[path = "offline_tests.rs"]
mod tests;
