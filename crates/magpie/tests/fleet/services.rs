//! A test's own redis-server, nats-server and mariadbd, on free loopback
//! ports, which it may kill -9, restart or flush. Binaries come from
//! scripts/services.sh (`redis-server` on PATH, `MAGPIE_TEST_NATS_BIN`,
//! `MAGPIE_TEST_MARIADBD` and `MAGPIE_TEST_MARIADB_INSTALL_DB`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::free_port;

/// Runs `cmd` with its output discarded and waits until it listens on
/// `port`; a child that exits first (a port taken after all) fails at once.
fn spawn_listening(mut cmd: Command, what: &str, port: u16) -> Child {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} (run scripts/services.sh start): {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before listening on {port}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn kill9(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// redis-server with nothing kept on disk: a restart comes back empty.
pub struct Redis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    pub fn start(parent: &Path) -> Redis {
        let dir = parent.join("redis");
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Redis {
            port: free_port(),
            dir,
            child: None,
        };
        r.run();
        r
    }

    fn run(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir);
        self.child = Some(spawn_listening(cmd, "redis-server", self.port));
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// kill -9 and start again on the same port: every key is gone.
    pub fn restart_empty(&mut self) {
        kill9(&mut self.child);
        self.run();
    }

    pub async fn flushall(&self) {
        let client = redis::Client::open(self.url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
    }

    pub async fn dbsize(&self) -> i64 {
        let client = redis::Client::open(self.url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("DBSIZE").query_async(&mut c).await.unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        kill9(&mut self.child);
    }
}

/// nats-server with JetStream and `sync_interval: always`: what it
/// acknowledged is on disk and survives kill -9.
pub struct Nats {
    port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Nats {
    pub fn start(parent: &Path) -> Nats {
        Nats::start_in(&parent.join("nats"), free_port(), "")
    }

    /// A server on `port` with its store under `dir`; `extra` is appended
    /// to its configuration (a cluster block).
    fn start_in(dir: &Path, port: u16, extra: &str) -> Nats {
        std::fs::create_dir_all(dir).unwrap();
        let conf = dir.join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n{extra}",
                dir.join("js").display()
            ),
        )
        .unwrap();
        let mut n = Nats {
            port,
            conf,
            child: None,
        };
        n.run();
        n
    }

    fn run(&mut self) {
        let bin = std::env::var("MAGPIE_TEST_NATS_BIN").unwrap_or_else(|_| {
            panic!("MAGPIE_TEST_NATS_BIN is not set: run `eval \"$(scripts/services.sh start)\"`")
        });
        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(&self.conf);
        self.child = Some(spawn_listening(cmd, "nats-server", self.port));
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn kill9(&mut self) {
        kill9(&mut self.child);
    }

    /// Starts again on the same port and store directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "nats-server is running");
        self.run();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        kill9(&mut self.child);
    }
}

/// Three nats-servers in one JetStream cluster, each as `Nats` (kill -9
/// and restart one by one). Streams with three replicas survive any one.
pub struct NatsCluster {
    pub servers: Vec<Nats>,
}

impl NatsCluster {
    pub fn start(parent: &Path) -> NatsCluster {
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, route)| format!("nats-route://127.0.0.1:{route}"))
            .collect();
        let servers = ports
            .iter()
            .enumerate()
            .map(|(i, (port, route))| {
                let extra = format!(
                    "server_name: n{i}\ncluster {{\n  name: test\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n",
                    routes.join(", ")
                );
                Nats::start_in(&parent.join(format!("nats-{i}")), *port, &extra)
            })
            .collect();
        NatsCluster { servers }
    }

    /// Every server, for a client to fail over between.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("nats://{}", hosts.join(","))
    }

    /// The bus at `url` (on this cluster), once the cluster can create
    /// replicated streams: it elects its JetStream leaders after it listens.
    pub async fn bus_when_ready(url: &str) -> magpie_bus::Bus {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match magpie_bus::Bus::open(url).await {
                Ok(bus) => return bus,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("nats cluster not ready yet: {e}");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => panic!("nats cluster never became ready: {e}"),
            }
        }
    }
}

/// mariadbd that flushes InnoDB's log at every commit: what it committed
/// survives kill -9. Root without a password, like the services' servers.
pub struct MariaDb {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn mariadb_bin(var: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run `eval \"$(scripts/services.sh start)\"`"))
}

impl MariaDb {
    pub fn start(parent: &Path) -> MariaDb {
        let dir = parent.join("mariadb");
        std::fs::create_dir_all(&dir).unwrap();
        let made = Command::new(mariadb_bin("MAGPIE_TEST_MARIADB_INSTALL_DB"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .args(["--user=root", "--auth-root-authentication-method=normal"])
            .arg("--skip-test-db")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mariadb-install-db");
        assert!(made.success(), "mariadb-install-db failed");
        let mut m = MariaDb {
            port: free_port(),
            dir,
            child: None,
        };
        m.run();
        m
    }

    fn run(&mut self) {
        let mut cmd = Command::new(mariadb_bin("MAGPIE_TEST_MARIADBD"));
        let d = &self.dir;
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--socket={}", d.join("mysql.sock").display()))
            .arg(format!("--pid-file={}", d.join("mysql.pid").display()))
            .args([
                "--user=root",
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
            ])
            .args(["--skip-log-bin", "--innodb-flush-log-at-trx-commit=1"])
            .arg("--innodb-buffer-pool-size=16M");
        self.child = Some(spawn_listening(cmd, "mariadbd", self.port));
    }

    /// The admin URL (database `mysql`).
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/mysql", self.port)
    }

    pub fn kill9(&mut self) {
        kill9(&mut self.child);
    }

    /// Starts again on the same port and data (InnoDB recovers its log).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "mariadbd is running");
        self.run();
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        kill9(&mut self.child);
    }
}
