//! Runs the relay conformance suite against NATS core
//! (`MAGPIE_TEST_NATS_URL`, see `scripts/services.sh`), each case under a
//! subject prefix of its own so parallel cases and runs never meet.
//!
//! Without the variable the cases are skipped with a notice, except under CI
//! (`CI` set), where a missing server must fail rather than pass silently.
#![cfg(feature = "nats")]

use magpie_bus::testsuite::relay::RelayFactory;
use magpie_bus::{Relay, RelayOptions};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

struct Nats {
    url: String,
    prefix: String,
}

impl Nats {
    /// `None` when no test server is configured (outside CI).
    fn fresh() -> Option<Nats> {
        let Ok(url) = std::env::var("MAGPIE_TEST_NATS_URL") else {
            if std::env::var_os("CI").is_some() {
                panic!("MAGPIE_TEST_NATS_URL is not set (run scripts/services.sh start)");
            }
            eprintln!("skipping: MAGPIE_TEST_NATS_URL is not set");
            return None;
        };
        // RandomState is seeded per process and per instance: unique enough
        // for parallel cases and for runs that share one server.
        let prefix = format!(
            "relay_t_{:016x}",
            RandomState::new().build_hasher().finish()
        );
        Some(Nats { url, prefix })
    }
}

impl RelayFactory for Nats {
    async fn open(&self, opts: RelayOptions) -> Relay {
        let opts = RelayOptions {
            prefix: self.prefix.clone(),
            ..opts
        };
        Relay::open_with(&self.url, opts)
            .await
            .expect("open nats relay")
    }
}

// `return` leaves the generated test early when the server is not configured.
magpie_bus::relay_conformance!(match Nats::fresh() {
    Some(factory) => factory,
    None => return,
});
