//! Runs the engine-neutral conformance suite against NATS JetStream, each
//! case on streams of its own that are deleted when the case ends: once on
//! one stream of the single test server (`MAGPIE_TEST_NATS_URL`), once on
//! three partitions replicated three times over the three-server cluster
//! (`MAGPIE_TEST_NATS_CLUSTER_URL`); see `scripts/services.sh`.
//!
//! Without the variable the cases are skipped with a notice, except under CI
//! (`CI` set), where a missing server must fail rather than pass silently.
#![cfg(feature = "jetstream")]

use magpie_bus::Bus;
use magpie_bus::testsuite::{BusFactory, nats_test_url, unique_name};

/// One case's namespace: fresh streams on a test server. `open` after a
/// drop reconnects to the same streams, which is what a restart looks like.
struct JetStream {
    url: String,
    stream: String,
    partitions: u32,
    replicas: u32,
}

impl JetStream {
    /// One stream on the single server; `None` when no test server is
    /// configured (outside CI).
    fn fresh() -> Option<JetStream> {
        Some(JetStream {
            url: nats_test_url()?,
            stream: unique_name("magpie_t"),
            partitions: 1,
            replicas: 1,
        })
    }

    /// Three partitions, three replicas, on the three-server cluster.
    fn partitioned() -> Option<JetStream> {
        let url = match std::env::var("MAGPIE_TEST_NATS_CLUSTER_URL") {
            Ok(url) => url,
            Err(_) if std::env::var_os("CI").is_some() => {
                panic!("MAGPIE_TEST_NATS_CLUSTER_URL is not set (run scripts/services.sh start)")
            }
            Err(_) => {
                eprintln!("skipping: MAGPIE_TEST_NATS_CLUSTER_URL is not set");
                return None;
            }
        };
        Some(JetStream {
            url,
            stream: unique_name("magpie_p"),
            partitions: 3,
            replicas: 3,
        })
    }
}

impl BusFactory for JetStream {
    async fn open(&self) -> Bus {
        let url = format!(
            "{}/?stream={}&partitions={}&replicas={}",
            self.url.trim_end_matches('/'),
            self.stream,
            self.partitions,
            self.replicas
        );
        let bus = Bus::open(&url).await.expect("open jetstream bus");
        assert_eq!(bus.partitions(), self.partitions);
        bus
    }
}

impl Drop for JetStream {
    /// Deletes the case's stream, also when the case failed. Drop cannot
    /// await and runs inside the test's runtime, so a thread with a runtime
    /// of its own does the deletion.
    fn drop(&mut self) {
        let url = self.url.clone();
        let streams: Vec<String> = match self.partitions {
            1 => vec![self.stream.clone()],
            p => (0..p).map(|i| format!("{}-{i}", self.stream)).collect(),
        };
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            rt.block_on(async {
                let first = url.split(',').next().unwrap_or_default().to_string();
                let client = async_nats::connect(&first)
                    .await
                    .expect("connect for cleanup");
                let js = async_nats::jetstream::new(client);
                for stream in streams {
                    if let Err(e) = js.delete_stream(&stream).await {
                        eprintln!("could not delete stream {stream}: {e}");
                    }
                }
            });
        });
        if cleanup.join().is_err() {
            eprintln!("cleanup of stream {} failed", self.stream);
        }
    }
}

// `return` leaves the generated test early when the server is not configured.
mod single {
    magpie_bus::bus_conformance!(match super::JetStream::fresh() {
        Some(factory) => factory,
        None => return,
    });
}

mod partitioned {
    magpie_bus::bus_conformance!(match super::JetStream::partitioned() {
        Some(factory) => factory,
        None => return,
    });

    /// A bus reopened with another partition count is refused: its keys
    /// would land in other partitions than their earlier events.
    #[tokio::test]
    async fn another_partition_count_is_refused() {
        let Some(f) = super::JetStream::partitioned() else {
            return;
        };
        let _bus = magpie_bus::testsuite::BusFactory::open(&f).await;
        let url = format!(
            "{}/?stream={}&partitions=2&replicas=3",
            f.url.trim_end_matches('/'),
            f.stream
        );
        let err = magpie_bus::Bus::open(&url).await.err().expect("refused");
        assert!(err.to_string().contains("partitions"), "{err}");
    }
}
