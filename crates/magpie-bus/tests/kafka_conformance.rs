//! Runs the engine-neutral conformance suite against a Kafka-protocol
//! broker, each case on topics of its own (a fresh prefix) deleted when the
//! case ends: once on one partition, once on three.
//!
//! The broker: with `MAGPIE_TEST_TANSU_BIN` (set by `scripts/services.sh`),
//! each case starts its own tansu on a free loopback port with SQLite
//! storage in a temporary directory, so cases run in parallel without
//! sharing a broker (tansu 0.6's idempotent-producer bookkeeping breaks
//! under unrelated concurrent producers: docs/deploy.md, "Kafka"); otherwise
//! `MAGPIE_TEST_KAFKA_URL` (`host:port`) names a running broker the cases
//! share. Without either the cases are skipped with a notice, except under
//! CI (`CI` set), where a missing broker must fail rather than pass silently.
#![cfg(feature = "kafka")]

use magpie_bus::Bus;
use magpie_bus::testsuite::tansu::Tansu;
use magpie_bus::testsuite::{BusFactory, unique_name};

struct Kafka {
    brokers: String,
    prefix: String,
    partitions: u32,
    /// This case's own broker (`None` on a shared one).
    broker: Option<Tansu>,
}

impl Kafka {
    fn fresh(partitions: u32) -> Option<Kafka> {
        let broker = Tansu::start();
        let brokers = match (&broker, std::env::var("MAGPIE_TEST_KAFKA_URL")) {
            (Some(b), _) => b.addr.clone(),
            (None, Ok(url)) => url,
            _ if std::env::var_os("CI").is_some() => {
                panic!("no Kafka test broker: run scripts/services.sh start")
            }
            _ => {
                eprintln!("skipping: no Kafka test broker configured");
                return None;
            }
        };
        Some(Kafka {
            brokers,
            prefix: unique_name("magpie_k"),
            partitions,
            broker,
        })
    }

    fn url(&self, partitions: u32) -> String {
        format!(
            "kafka://{}/{}?partitions={partitions}",
            self.brokers, self.prefix
        )
    }
}

impl BusFactory for Kafka {
    async fn open(&self) -> Bus {
        let bus = Bus::open(&self.url(self.partitions))
            .await
            .expect("open kafka bus");
        assert_eq!(bus.partitions(), self.partitions);
        bus
    }
    fn competing(&self) -> bool {
        false
    }
    fn pending_counts_other_topics(&self) -> bool {
        true
    }
    /// The test broker is tansu 0.6, whose OffsetFetch drops a commit's
    /// metadata (the offsets acked above the committed one): docs/deploy.md, "Kafka".
    /// The mock cluster below keeps it, and so does Apache Kafka.
    fn exact_redelivery(&self) -> bool {
        false
    }
    /// tansu 0.6 answers a new group's first offset fetch over a log of
    /// 10,000 records after more than the consumer's 10 s (docs/deploy.md,
    /// "Kafka"); the mock cluster below runs the full 10 × 1,000.
    fn concurrent_events(&self) -> usize {
        300
    }
}

impl Drop for Kafka {
    /// Deletes the case's topics on a shared broker, also when the case
    /// failed (a case's own broker goes with its storage).
    fn drop(&mut self) {
        if self.broker.is_some() {
            return;
        }
        use rdkafka::admin::{AdminClient, AdminOptions};
        use rdkafka::client::DefaultClientContext;
        let topics: Vec<String> = (0..self.partitions)
            .map(|i| format!("{}.{i}", self.prefix))
            .collect();
        let brokers = self.brokers.clone();
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            rt.block_on(async {
                let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", &brokers)
                    .create()
                    .expect("admin client");
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                if let Err(e) = admin.delete_topics(&names, &AdminOptions::new()).await {
                    eprintln!("could not delete topics {names:?}: {e}");
                }
            });
        });
        if cleanup.join().is_err() {
            eprintln!("cleanup of {} failed", self.prefix);
        }
    }
}

// `return` leaves the generated test early when the broker is not configured.
mod single {
    magpie_bus::bus_conformance!(match super::Kafka::fresh(1) {
        Some(factory) => factory,
        None => return,
    });
}

mod partitioned {
    magpie_bus::bus_conformance!(match super::Kafka::fresh(3) {
        Some(factory) => factory,
        None => return,
    });

    /// A log reopened with another partition count is refused: its keys
    /// would land in other partitions than their earlier events.
    #[tokio::test]
    async fn another_partition_count_is_refused() {
        let Some(f) = super::Kafka::fresh(3) else {
            return;
        };
        let _bus = magpie_bus::testsuite::BusFactory::open(&f).await;
        let err = magpie_bus::Bus::open(&f.url(2))
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("partitions"), "{err}");
    }
}

/// The same suite on librdkafka's in-process mock cluster: the adapter's
/// own logic (in-flight events, commit metadata, rebalances, the window),
/// without a broker. The real broker's run above is what counts for the
/// engine.
mod mock {
    use magpie_bus::Bus;
    use magpie_bus::testsuite::BusFactory;
    use rdkafka::mocking::MockCluster;

    /// The mock cluster lives on a thread of its own (it is neither Send
    /// nor Sync) until the factory is dropped.
    pub struct Mock {
        brokers: String,
        _stop: std::sync::mpsc::Sender<()>,
    }

    impl Mock {
        pub fn fresh() -> Mock {
            let (tx, rx) = std::sync::mpsc::channel();
            let (stop, stopped) = std::sync::mpsc::channel::<()>();
            std::thread::spawn(move || {
                let cluster = MockCluster::new(1).expect("mock cluster");
                // The mock has no CreateTopics: the bus finds its topic made.
                cluster.create_topic("mock.0", 1, 1).expect("mock topic");
                tx.send(cluster.bootstrap_servers()).expect("factory");
                // Until the factory's sender is dropped.
                let _ = stopped.recv();
            });
            Mock {
                brokers: rx.recv().expect("mock cluster started"),
                _stop: stop,
            }
        }
    }

    impl BusFactory for Mock {
        async fn open(&self) -> Bus {
            let url = format!("kafka://{}/mock", self.brokers);
            Bus::open(&url).await.expect("open kafka bus")
        }
        fn competing(&self) -> bool {
            false
        }
        fn pending_counts_other_topics(&self) -> bool {
            true
        }
    }

    magpie_bus::bus_conformance!(Mock::fresh());
}
