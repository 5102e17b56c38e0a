//! Arbitrary bytes (as lossy UTF-8, like the log followers read) as an
//! access-log line through both parsers of `magpie_core::access`.
//!
//! Checks: no panic; every event a parser returns, its format writes into a
//! line that parses back into the same event (the formats' module docs
//! state this invariant), so what Magpie writes from a parsed event is
//! never lost or changed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_core::access::LogFormat;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    for format in [LogFormat::Combined, LogFormat::Apisix] {
        let Ok(event) = format.parse(&line) else {
            continue;
        };
        let written = format.format(&event);
        assert!(!written.contains('\n'), "{format}: {written}");
        match format.parse(&written) {
            Ok(back) => assert_eq!(back, event, "{format}: {line:?} -> {written}"),
            Err(e) => panic!("{format}: {line:?} -> {written}: {e}"),
        }
    }
});
