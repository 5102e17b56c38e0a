//! Runs the engine-neutral conformance suite against NATS JetStream
//! (`MAGPIE_TEST_NATS_URL`, see `scripts/services.sh`), each case on a stream
//! of its own that is deleted when the case ends.
//!
//! Without the variable the cases are skipped with a notice, except under CI
//! (`CI` set), where a missing server must fail rather than pass silently.
#![cfg(feature = "jetstream")]

use magpie_bus::Bus;
use magpie_bus::testsuite::{BusFactory, nats_test_url, unique_name};

/// One case's namespace: a fresh stream on the test server. `open` after a
/// drop reconnects to the same stream, which is what a restart looks like.
struct JetStream {
    url: String,
    stream: String,
}

impl JetStream {
    /// `None` when no test server is configured (outside CI).
    fn fresh() -> Option<JetStream> {
        Some(JetStream {
            url: nats_test_url()?,
            stream: unique_name("magpie_t"),
        })
    }
}

impl BusFactory for JetStream {
    async fn open(&self) -> Bus {
        let url = format!("{}/?stream={}", self.url.trim_end_matches('/'), self.stream);
        Bus::open(&url).await.expect("open jetstream bus")
    }
}

impl Drop for JetStream {
    /// Deletes the case's stream, also when the case failed. Drop cannot
    /// await and runs inside the test's runtime, so a thread with a runtime
    /// of its own does the deletion.
    fn drop(&mut self) {
        let (url, stream) = (self.url.clone(), self.stream.clone());
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            rt.block_on(async {
                let client = async_nats::connect(&url)
                    .await
                    .expect("connect for cleanup");
                let js = async_nats::jetstream::new(client);
                if let Err(e) = js.delete_stream(&stream).await {
                    eprintln!("could not delete stream {stream}: {e}");
                }
            });
        });
        if cleanup.join().is_err() {
            eprintln!("cleanup of stream {} failed", self.stream);
        }
    }
}

// `return` leaves the generated test early when the server is not configured.
magpie_bus::bus_conformance!(match JetStream::fresh() {
    Some(factory) => factory,
    None => return,
});
