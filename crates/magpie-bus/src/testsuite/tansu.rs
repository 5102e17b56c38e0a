//! A Kafka-protocol broker of one test: tansu (`MAGPIE_TEST_TANSU_BIN`, built
//! by `scripts/services.sh`) on a free loopback port, its SQLite storage in
//! a directory of its own, killed and removed on drop.
//!
//! Why one broker per test rather than one shared: tansu 0.6's
//! idempotent-producer bookkeeping fails under unrelated concurrent
//! producers and takes its storage service down (KAFKA-STATUS.md), so tests
//! sharing it would fail each other. A test's broker is its namespace.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct Tansu {
    child: Child,
    dir: PathBuf,
    /// `host:port`, for `bootstrap.servers`.
    pub addr: String,
}

impl Tansu {
    /// Starts one, or `None` when `MAGPIE_TEST_TANSU_BIN` is not set.
    pub fn start() -> Option<Tansu> {
        let bin = std::env::var("MAGPIE_TEST_TANSU_BIN").ok()?;
        let dir = std::env::temp_dir().join(super::unique_name("magpie_tansu"));
        std::fs::create_dir_all(&dir).expect("broker dir");
        // A free port: bound and released; tansu takes it a moment later.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("tansu.log")).expect("broker log");
        let child = Command::new(&bin)
            .current_dir(&dir)
            .args(["broker", "--listener-url", &format!("tcp://{addr}")])
            .args(["--advertised-listener-url", &format!("tcp://{addr}")])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(log.try_clone().expect("broker log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        let tansu = Tansu { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&tansu.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {}",
                tansu.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(tansu)
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
