//! Runs the relay conformance suite against NATS core
//! (`MAGPIE_TEST_NATS_URL`, see `scripts/services.sh`), each case under a
//! subject prefix of its own so parallel cases and runs never meet.
//!
//! Without the variable the cases are skipped with a notice, except under CI
//! (`CI` set), where a missing server must fail rather than pass silently.
#![cfg(feature = "nats")]

use magpie_bus::testsuite::relay::RelayFactory;
use magpie_bus::testsuite::{nats_test_url, unique_name};
use magpie_bus::{Relay, RelayOptions};

struct Nats {
    url: String,
    prefix: String,
}

impl Nats {
    /// `None` when no test server is configured (outside CI).
    fn fresh() -> Option<Nats> {
        Some(Nats {
            url: nats_test_url()?,
            prefix: unique_name("relay_t"),
        })
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
