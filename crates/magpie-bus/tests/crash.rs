//! Crash durability for real: a child process (this test binary, re-run with
//! an env var) publishes events one at a time and prints each acknowledged
//! offset; the parent SIGKILLs it mid-stream, reopens the file and checks
//! that every acknowledged event is there and consumable.

use magpie_bus::testsuite::{event, publish};
use magpie_bus::{Bus, ConsumerOptions};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Set (to the bus file) only in the child.
const CHILD_ENV: &str = "MAGPIE_BUS_CRASH_CHILD";
const ACKS_BEFORE_KILL: usize = 300;

/// The child's work; a no-op in a normal test run.
#[tokio::test(flavor = "multi_thread")]
async fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let bus = Bus::open(&format!("embedded://{path}"))
        .await
        .expect("open");
    for i in 0u64.. {
        let id = format!("crash-{i}");
        let offset = publish(&bus, vec![event("crash", &id)]).await[0];
        // Printed only after publish returned: each line is a promise.
        println!("ACK {offset} {id}");
    }
}

#[test]
fn acknowledged_publishes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bus.db");
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let out = BufReader::new(child.stdout.take().expect("child stdout"));
    let mut acked: Vec<(u64, String)> = Vec::new();
    for line in out.lines() {
        let line = line.expect("read child");
        if let Some(rest) = line.strip_prefix("ACK ") {
            let (off, id) = rest.split_once(' ').expect("ACK line");
            acked.push((off.parse().expect("offset"), id.to_string()));
            if acked.len() >= ACKS_BEFORE_KILL {
                break;
            }
        }
    }
    // SIGKILL while the child keeps publishing: no chance to flush anything.
    child.kill().expect("kill child");
    child.wait().expect("reap child");
    assert_eq!(
        acked.len(),
        ACKS_BEFORE_KILL,
        "child stopped before {ACKS_BEFORE_KILL} acks"
    );

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let bus = Bus::open(&format!("embedded://{}", path.display()))
            .await
            .expect("reopen");
        let mut c = bus
            .consumer(
                "check",
                &["crash"],
                0,
                ConsumerOptions {
                    ack_wait: Duration::from_secs(60),
                },
            )
            .await
            .expect("consumer");
        let mut stored = HashMap::new();
        loop {
            let got = c
                .fetch(1000, Duration::from_millis(300))
                .await
                .expect("fetch");
            if got.is_empty() {
                break;
            }
            for d in got {
                stored.insert(d.offset, String::from_utf8_lossy(&d.payload).into_owned());
            }
        }
        for (off, id) in &acked {
            assert_eq!(
                stored.get(off),
                Some(id),
                "acknowledged event {id} at {off} lost"
            );
            // The de-duplication index survived too.
            assert_eq!(publish(&bus, vec![event("crash", id)]).await, vec![*off]);
        }
    });
}
