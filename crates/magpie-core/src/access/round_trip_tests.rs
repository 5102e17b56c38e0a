//! Both formats over many random events (a seeded generator, so a failure
//! reproduces): what Magpie writes, it reads back, modulo only what the
//! format cannot carry.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn text(rng: &mut StdRng, alphabet: &[char], max: usize) -> String {
    let n = rng.random_range(0..=max);
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())])
        .collect()
}

/// Characters a hostile client would pick, and ordinary ones.
const NASTY: &[char] = &[
    'a', 'Z', '0', ' ', '"', '\\', '\n', '\r', '\t', '\0', '\u{7f}', '[', ']', '-', '/', '?', '#',
    'é', '\u{fffd}', '😀', 'x',
];

fn random_event(rng: &mut StdRng) -> AccessEvent {
    let ip: IpAddr = if rng.random_bool(0.5) {
        IpAddr::from(rng.random::<[u8; 4]>())
    } else {
        IpAddr::from(rng.random::<[u16; 8]>())
    };
    let methods = ["GET", "POST", "DELETE", "WS", "TCP", "-"];
    let method = methods[rng.random_range(0..methods.len())].to_string();
    // A path: what a request target is once its query is stripped.
    let path = format!("/{}", text(rng, NASTY, 20).replace(['?', '#'], ""));
    let ua = text(rng, NASTY, 40);
    AccessEvent {
        // Years 1900 to 2100.
        at_ms: rng.random_range(-2_208_988_800_000..4_102_444_800_000),
        ip,
        user: rng.random_bool(0.5).then(|| UserId(rng.random())),
        method,
        path,
        status: rng.random_range(100..600),
        code: rng.random_bool(0.3).then(|| "not_found".to_string()),
        bytes: rng.random(),
        latency_ms: rng.random_range(0.0..100_000.0),
        user_agent: (ua != "-" && rng.random_bool(0.8)).then_some(ua),
        miss: rng.random_bool(0.2),
    }
}

#[test]
fn combined_round_trips_modulo_what_it_cannot_carry() {
    let mut rng = StdRng::seed_from_u64(0x6d61_6770);
    for _ in 0..5_000 {
        let e = random_event(&mut rng);
        let line = format_combined(&e);
        assert!(!line.contains(['\n', '\r']), "{line}");
        let back = parse_combined(&line).unwrap_or_else(|err| panic!("{err}: {line}"));
        let want = AccessEvent {
            at_ms: e.at_ms.div_euclid(1000) * 1000,
            code: None,
            latency_ms: e.latency_ms.round(),
            miss: e.status == 404,
            ..e.clone()
        };
        // Rounding to the millisecond happens on seconds, so a .5 may go
        // either way; anything else is exact.
        assert!((back.latency_ms - want.latency_ms).abs() <= 1.0, "{line}");
        assert_eq!(
            AccessEvent {
                latency_ms: want.latency_ms,
                ..back
            },
            want,
            "{line}"
        );
    }
}

#[test]
fn apisix_round_trips_modulo_sub_microsecond_latency() {
    let mut rng = StdRng::seed_from_u64(0x6170_6973);
    for _ in 0..5_000 {
        let e = random_event(&mut rng);
        let line = format_apisix(&e);
        assert!(!line.contains('\n'), "{line}");
        let back = parse_apisix(&line).unwrap_or_else(|err| panic!("{err}: {line}"));
        let want = AccessEvent {
            latency_ms: (e.latency_ms * 1000.0).round() / 1000.0,
            ..e.clone()
        };
        assert_eq!(back, want, "{line}");
    }
}

#[test]
fn log_format_dispatches() {
    let mut rng = StdRng::seed_from_u64(7);
    let e = random_event(&mut rng);
    for f in [LogFormat::Combined, LogFormat::Apisix] {
        let line = f.format(&e);
        let back = f
            .parse(&line)
            .unwrap_or_else(|err| panic!("{f}: {err}: {line}"));
        assert_eq!((back.ip, back.status), (e.ip, e.status), "{f}");
    }
    assert!(LogFormat::Apisix.parse(&format_combined(&e)).is_err());
    assert!(LogFormat::Combined.parse(&format_apisix(&e)).is_err());
}
