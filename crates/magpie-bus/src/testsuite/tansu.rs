//! A Kafka-protocol broker of one test: tansu (`MAGPIE_TEST_TANSU_BIN`, built
//! by `scripts/services.sh`) on a free loopback port, its SQLite storage in
//! a directory of its own, killed and removed on drop.
//!
//! Why one broker per test rather than one shared: tansu 0.6's
//! idempotent-producer bookkeeping fails under unrelated concurrent
//! producers and takes its storage service down (docs/deploy.md, "Kafka"), so tests
//! sharing it would fail each other. A test's broker is its namespace.

use std::path::{Path, PathBuf};
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
        let child = spawn(&bin, &dir, &addr);
        Some(Tansu { child, dir, addr })
    }

    /// SIGKILL: what the broker had acknowledged is in its SQLite file,
    /// which stays for `restart`.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the broker again on the same address and storage.
    pub fn restart(&mut self) {
        let bin = std::env::var("MAGPIE_TEST_TANSU_BIN").expect("MAGPIE_TEST_TANSU_BIN");
        self.child = spawn(&bin, &self.dir, &self.addr);
    }
}

/// Runs `bin` on `addr` with its storage in `dir`; returns once it listens.
fn spawn(bin: &str, dir: &Path, addr: &str) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("tansu.log"))
        .expect("broker log");
    let child = Command::new(bin)
        .current_dir(dir)
        .args(["broker", "--listener-url", &format!("tcp://{addr}")])
        .args(["--advertised-listener-url", &format!("tcp://{addr}")])
        .args(["--storage-engine", "sqlite://tansu.db"])
        .stdout(log.try_clone().expect("broker log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {bin}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // MAGPIE_TEST_KEEP_BROKER keeps the log and storage to read after a failure.
        if std::env::var_os("MAGPIE_TEST_KEEP_BROKER").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("broker kept in {}", self.dir.display());
        }
    }
}
