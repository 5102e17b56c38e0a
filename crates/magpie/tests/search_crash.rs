//! kill -9 of a node in the middle of a stream of messages while its search
//! indexer runs (docs/search.md): after the restart every acknowledged
//! message is found exactly once, and the index holds one document per
//! message the store kept (none twice, none of the unacknowledged ones
//! more than once).

mod common;
use common::process::node_with;
use common::*;
use magpie_core::ClientMsgId;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const SENT: usize = 300;

fn env() -> [(&'static str, &'static str); 2] {
    [
        // The unacknowledged batch comes back this long after the kill.
        ("MAGPIE_WORKERS__ACK_WAIT_MS", "2000"),
        ("MAGPIE_SEARCH__SWEEP_MS", "200"),
    ]
}

/// How many messages `text` finds for `who` (at most 10).
async fn hits(s: &TestServer, who: &magpie_proto::http::Tokens, text: &str) -> usize {
    let (st, page) = s
        .get(who, &format!("/v1/search?text={text}&limit=10"))
        .await;
    assert_eq!(st, 200, "{page}");
    page["hits"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_stream_indexes_every_message_exactly_once() {
    let mut node = node_with(tempfile::tempdir().unwrap(), &env());
    let alice = node.server.user("alice", "phone").await;
    let bob = node.server.user("bob", "phone").await;
    let server = Arc::new(std::mem::replace(
        &mut node.server,
        TestServer {
            running: None,
            base: String::new(),
            dir: tempfile::tempdir().unwrap(),
            http: reqwest::Client::new(),
            ns: None,
        },
    ));
    // Eight senders over one counter; each records what was acknowledged.
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut senders = Vec::new();
    for _ in 0..8 {
        let (server, next, acked) = (server.clone(), next.clone(), acked.clone());
        let (alice, bob) = (alice.clone(), bob.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= SENT {
                    return;
                }
                let body = format!("word{i}x 搜索");
                let (st, _) = server
                    .http_send(&alice, bob.user_id, ClientMsgId::new_v7(), &body)
                    .await;
                if st == 200 {
                    acked.lock().unwrap().push(i);
                }
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while acked.lock().unwrap().len() < SENT / 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream never got going"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    for s in senders {
        let _ = s.await;
    }
    let acked = acked.lock().unwrap().clone();
    let attempted = next.load(Ordering::SeqCst).min(SENT);
    eprintln!(
        "{} of {attempted} acknowledged before the kill",
        acked.len()
    );

    let mut server = Arc::try_unwrap(server).ok().expect("senders are done");
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let node = node_with(dir, &env());
    let s = &node.server;
    // Every acknowledged message is found once; none of the others twice.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut found = vec![0; attempted];
    loop {
        for (i, f) in found.iter_mut().enumerate() {
            *f = hits(s, &bob, &format!("word{i}x")).await;
        }
        if acked.iter().all(|&i| found[i] == 1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all indexed: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        found.iter().all(|&f| f <= 1),
        "a message found twice: {found:?}"
    );
    let total: usize = found.iter().sum();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let docs = counter(s, "magpie_search_documents").await as usize;
        if docs == total {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{docs} documents, {total} messages"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
