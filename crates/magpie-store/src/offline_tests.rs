//! The calendar of buckets and the state URL's offline options.

use super::*;

/// Epoch ms of a UTC date at midnight.
fn day(y: i64, m: i64, d: i64) -> i64 {
    days_from_civil(y, m as u32, d as u32) * DAY_MS
}

#[test]
fn weeks_start_on_monday_utc() {
    // 2024-01-01 was a Monday; 2023-12-31 a Sunday.
    let monday = day(2024, 1, 1);
    let w = Bucket::of(BucketUnit::Week, monday);
    assert_eq!(Bucket::of(BucketUnit::Week, monday - 1).n, w.n - 1);
    assert_eq!(Bucket::of(BucketUnit::Week, monday + 7 * DAY_MS - 1), w);
    assert_eq!(w.end_ms(), monday + 7 * DAY_MS);
    assert_eq!(Bucket::of(BucketUnit::Week, w.end_ms()).n, w.n + 1);
    // Before 1970 too (div_euclid, not truncation).
    let old = Bucket::of(BucketUnit::Week, -1);
    assert_eq!(
        old.end_ms(),
        4 * DAY_MS,
        "the week of 1969-12-31 ends on Monday 1970-01-05"
    );
}

#[test]
fn months_follow_the_calendar() {
    for (y, m) in [
        (2024, 1),
        (2024, 2),
        (2024, 12),
        (2023, 2),
        (2000, 2),
        (1970, 1),
    ] {
        let start = day(y, m, 1);
        let b = Bucket::of(BucketUnit::Month, start);
        assert_eq!(b.n, y * 12 + m - 1);
        assert_eq!(Bucket::of(BucketUnit::Month, start - 1).n, b.n - 1);
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        assert_eq!(b.end_ms(), day(ny, nm, 1), "{y}-{m}");
        assert_eq!(Bucket::of(BucketUnit::Month, b.end_ms() - 1), b);
    }
    // Leap years: February 2024 had 29 days, 2023 and 1900 28, 2000 29.
    assert_eq!(day(2024, 3, 1) - day(2024, 2, 1), 29 * DAY_MS);
    assert_eq!(day(2023, 3, 1) - day(2023, 2, 1), 28 * DAY_MS);
    assert_eq!(day(1900, 3, 1) - day(1900, 2, 1), 28 * DAY_MS);
    assert_eq!(day(2000, 3, 1) - day(2000, 2, 1), 29 * DAY_MS);
    assert_eq!(day(1970, 1, 1), 0);
}

#[test]
fn bucket_ids_round_trip_and_keep_units_apart() {
    for b in [
        Bucket::of(BucketUnit::Week, day(2025, 6, 3)),
        Bucket::of(BucketUnit::Month, day(2025, 6, 3)),
    ] {
        assert_eq!(Bucket::parse(&b.id()), Some(b));
    }
    assert_ne!(
        Bucket::of(BucketUnit::Week, 0).id(),
        Bucket::of(BucketUnit::Month, 0).id()
    );
    assert_eq!(Bucket::parse("x1"), None);
    assert_eq!(Bucket::parse("w"), None);
}

#[test]
fn entries_go_to_their_message_time_bucket_unless_expired() {
    let opts = OfflineOptions {
        unit: BucketUnit::Month,
        cap: 10,
        keep_ms: DAY_MS as u64,
    };
    let now = day(2025, 3, 15);
    let id_at = |ms: i64| (((ms - 1_704_067_200_000) << 22) | 7).to_string();
    let (b, exp) = opts.place(&id_at(day(2025, 3, 2)), now).expect("live");
    assert_eq!(b, Bucket::of(BucketUnit::Month, day(2025, 3, 1)));
    assert_eq!(exp, day(2025, 4, 2));
    // February's bucket ended with the month, a day's keep has passed.
    assert_eq!(opts.place(&id_at(day(2025, 2, 27)), now), None);
    // Not an id: the time of the call.
    let (b, _) = opts.place("hello", now).expect("live");
    assert_eq!(b, Bucket::of(BucketUnit::Month, now));
    assert_eq!(opts.place("+5", now).map(|p| p.0), Some(b));
}

#[test]
fn url_options_are_taken_off_and_checked() {
    let (url, o) = OfflineOptions::split_url("redis://h/?prefix=p").expect("url");
    assert_eq!(
        (url.as_str(), o),
        ("redis://h/?prefix=p", OfflineOptions::default())
    );
    let (url, o) = OfflineOptions::split_url(
        "redis://h/?offline_bucket=month&prefix=p&offline_cap=500&offline_keep_ms=60000",
    )
    .expect("url");
    assert_eq!(url, "redis://h/?prefix=p");
    assert_eq!(
        o,
        OfflineOptions {
            unit: BucketUnit::Month,
            cap: 500,
            keep_ms: 60_000
        }
    );
    let (url, o) = OfflineOptions::split_url("mem://?offline_bucket=week").expect("url");
    assert_eq!((url.as_str(), o.unit), ("mem://", BucketUnit::Week));
    for bad in [
        "mem://?offline_bucket=day",
        "mem://?offline_cap=0",
        "mem://?offline_cap=x",
        "mem://?offline_keep_ms=0",
    ] {
        assert!(
            matches!(OfflineOptions::split_url(bad), Err(StoreError::Config(_))),
            "{bad}"
        );
    }
}

#[test]
fn merges_read_as_one_sorted_set() {
    let e = |v: &[Seq]| v.iter().map(|s| (*s, s.to_string())).collect::<Vec<_>>();
    let gathered = [e(&[9, 7]), e(&[8, 3]), e(&[12])].concat();
    assert_eq!(merge_newest(gathered.clone(), 3), e(&[12, 9, 8]));
    assert_eq!(merge_after(gathered, 2), e(&[3, 7]));
}
