//! A NATS restart in the middle of a stream: the subscription reports a gap
//! (`from: None`, the reconnect) before any message sent after it, even
//! though no frame was published while the server was down. The test runs
//! its own nats-server (`MAGPIE_TEST_NATS_BIN`, see `scripts/services.sh`)
//! on a free port so it can kill it.
#![cfg(feature = "nats")]

use magpie_bus::testsuite::relay::{fast, messages, next, numbered, publish, subscribe};
use magpie_bus::{Relay, RelayEvent, RelayOptions};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A core-only nats-server (no JetStream: the relay stores nothing).
struct Server {
    port: u16,
    child: Option<Child>,
}

impl Server {
    fn start() -> Server {
        let port = magpie_bus::testsuite::free_port();
        let mut s = Server { port, child: None };
        s.run();
        s
    }

    fn run(&mut self) {
        let bin = std::env::var("MAGPIE_TEST_NATS_BIN").expect("MAGPIE_TEST_NATS_BIN");
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nats_restart_is_reported_as_a_gap() {
    if std::env::var_os("MAGPIE_TEST_NATS_BIN").is_none() && std::env::var_os("CI").is_none() {
        eprintln!("needs MAGPIE_TEST_NATS_BIN: run `eval \"$(scripts/services.sh start)\"`");
        return;
    }
    let mut server = Server::start();
    let open = || async {
        Relay::open_with(&server.url(), RelayOptions { ..fast() })
            .await
            .expect("open relay")
    };
    let (listener, publisher) = (open().await, open().await);
    let mut sub = subscribe(&listener, "node.n1").await;
    for i in 0..5 {
        publish(&publisher, "node.n1", numbered(i));
    }
    messages(&mut sub, 5).await;

    server.kill9();
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.run();
    // Publish until something gets through the reconnected connections.
    let feeder = publisher.clone();
    let feed = tokio::spawn(async move {
        for i in 5.. {
            // Refused while the publisher is still reconnecting: a loss.
            let _ = feeder.publish("node.n1", numbered(i));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut reconnect_gap = false;
    loop {
        match next(&mut sub).await {
            RelayEvent::Gap { from: None } => reconnect_gap = true,
            RelayEvent::Gap { from: Some(_) } => {}
            RelayEvent::Message { .. } => break,
        }
    }
    feed.abort();
    assert!(
        reconnect_gap,
        "a message after the restart came without a reconnect gap"
    );
}
