//! Runs the engine-neutral conformance suite against the embedded backend,
//! each case in its own temporary directory.

use magpie_bus::Bus;
use magpie_bus::testsuite::BusFactory;

struct Embedded {
    dir: tempfile::TempDir,
}

impl Embedded {
    fn fresh() -> Embedded {
        Embedded {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
}

impl BusFactory for Embedded {
    async fn open(&self) -> Bus {
        // A nested path also checks that open creates parent directories.
        let path = self.dir.path().join("data/bus.db");
        Bus::open(&format!("embedded://{}", path.display()))
            .await
            .expect("open embedded bus")
    }
}

magpie_bus::bus_conformance!(Embedded::fresh());
