//! nginx's `$time_local` (`10/Oct/2000:13:55:36 -0700`) to and from epoch
//! milliseconds, with Howard Hinnant's days-from-civil algorithm (proleptic
//! Gregorian calendar) instead of a date crate.
//!
//! Invariants: only years 0000–9999 in UTC are accepted or written, so
//! every time [`format_time_local`] writes is read back by
//! [`parse_time_local`] (a time that lands outside those years once its
//! offset is applied is refused, not wrapped); written times are always
//! UTC (`+0000`) and whole seconds (the format has no finer field).

use crate::time::{civil_from_days, days_from_civil};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAY_MS: i64 = 86_400_000;
/// 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z, in epoch milliseconds.
pub(crate) const MIN_MS: i64 = -62_167_219_200_000;
pub(crate) const MAX_MS: i64 = 253_402_300_800_000;

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `dd/Mon/yyyy:HH:MM:SS +0000` in UTC, or `None` outside years 0000–9999.
pub(crate) fn format_time_local(at_ms: i64) -> Option<String> {
    if !(MIN_MS..MAX_MS).contains(&at_ms) {
        return None;
    }
    let (y, m, d) = civil_from_days(at_ms.div_euclid(DAY_MS));
    let secs = at_ms.rem_euclid(DAY_MS) / 1000;
    let month = MONTHS[(m - 1) as usize];
    Some(format!(
        "{d:02}/{month}/{y:04}:{:02}:{:02}:{:02} +0000",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    ))
}

/// Exactly `n` ASCII digits as a number.
fn digits(s: &str, n: usize) -> Option<i64> {
    if s.len() != n || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Epoch milliseconds (UTC) of `dd/Mon/yyyy:HH:MM:SS ±hhmm`; `None` for
/// anything else, an impossible date or a time outside years 0000–9999.
pub(crate) fn parse_time_local(s: &str) -> Option<i64> {
    let (date_time, offset) = s.split_once(' ')?;
    let mut parts = date_time.splitn(4, ':');
    let date = parts.next()?;
    let (h, mi, sec) = (
        digits(parts.next()?, 2)?,
        digits(parts.next()?, 2)?,
        digits(parts.next()?, 2)?,
    );
    let mut date = date.splitn(3, '/');
    let d = digits(date.next()?, 2)?;
    let mon = date.next()?;
    let m = MONTHS
        .iter()
        .position(|&name| name.eq_ignore_ascii_case(mon))? as u32
        + 1;
    let y = digits(date.next()?, 4)?;
    // 60 is a leap second; nginx never writes one, but it is a valid time.
    if d < 1 || d > i64::from(days_in_month(y, m)) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let off = offset.get(1..)?;
    let (oh, om) = (digits(off.get(..2)?, 2)?, digits(off.get(2..)?, 2)?);
    if oh > 23 || om > 59 {
        return None;
    }
    let local_secs = days_from_civil(y, m, d as u32) * 86_400 + h * 3600 + mi * 60 + sec;
    let at_ms = (local_secs - sign * (oh * 3600 + om * 60)) * 1000;
    (MIN_MS..MAX_MS).contains(&at_ms).then_some(at_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_over_the_whole_range() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(0, 1, 1) * DAY_MS, MIN_MS);
        assert_eq!(days_from_civil(10_000, 1, 1) * DAY_MS, MAX_MS);
        let mut z = MIN_MS / DAY_MS;
        while z < MAX_MS / DAY_MS {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z, "{y}-{m}-{d}");
            z += 97; // a prime stride visits every month and day of week
        }
    }

    #[test]
    fn nginx_doc_example_with_offset() {
        // nginx's documentation example: 13:55:36 at -0700 is 20:55:36 UTC.
        let ms = parse_time_local("10/Oct/2000:13:55:36 -0700").expect("parses");
        assert_eq!(ms, 971_211_336_000);
        assert_eq!(
            format_time_local(ms).as_deref(),
            Some("10/Oct/2000:20:55:36 +0000")
        );
        assert_eq!(parse_time_local("10/Oct/2000:20:55:36 +0000"), Some(ms));
    }

    #[test]
    fn sub_second_and_negative_times_floor() {
        assert_eq!(
            format_time_local(-1).as_deref(),
            Some("31/Dec/1969:23:59:59 +0000")
        );
        assert_eq!(
            format_time_local(1_999).as_deref(),
            Some("01/Jan/1970:00:00:01 +0000")
        );
        assert_eq!(format_time_local(MAX_MS), None);
    }

    #[test]
    fn bad_times_are_refused() {
        for s in [
            "",
            "29/Feb/2001:00:00:00 +0000",
            "31/Apr/2020:00:00:00 +0000",
            "10/Foo/2000:13:55:36 -0700",
            "10/Oct/2000:24:00:00 +0000",
            "10/Oct/2000:13:55:36 0700",
            "10/Oct/2000:13:55:36 +07",
            "10/Oct/2000:13:55:36",
            "1/Oct/2000:13:55:36 +0000",
            "01/Jan/0000:00:00:00 +0100",
            "10/Oct/2000:13:55:36 +0é00",
        ] {
            assert_eq!(parse_time_local(s), None, "{s}");
        }
        assert!(parse_time_local("29/Feb/2000:00:00:00 +0000").is_some());
    }
}
