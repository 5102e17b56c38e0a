//! Runs the relay conformance suite against the in-process relay, each case
//! on a hub of its own, on paused tokio time (heartbeats and deadlines
//! advance instantly when everything waits).

use magpie_bus::testsuite::relay::RelayFactory;
use magpie_bus::{Relay, RelayOptions};
use std::sync::atomic::{AtomicU64, Ordering};

struct Mem {
    hub: String,
}

impl Mem {
    fn fresh() -> Mem {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Mem {
            hub: format!("case-{}", NEXT.fetch_add(1, Ordering::Relaxed)),
        }
    }
}

impl RelayFactory for Mem {
    async fn open(&self, opts: RelayOptions) -> Relay {
        Relay::open_with(&format!("mem://{}", self.hub), opts)
            .await
            .expect("open mem relay")
    }
}

magpie_bus::relay_conformance!(paused: Mem::fresh());
