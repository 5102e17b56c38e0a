//! Password hashing's own threads: `auth.hash_concurrency` of them, made
//! at start, each taking one hash at a time from a shared queue.
//!
//! A hash holds `auth.argon2_m_kib` (19 MiB by default) while it runs.
//! Two things keep the memory of a burst of logins near
//! `hash_concurrency × argon2_m_kib`: the hashes run on these few threads
//! instead of tokio's blocking pool (whose many threads would each get an
//! allocator arena of their own), and glibc's malloc is kept from holding
//! on to freed hash blocks ([`large_blocks_go_back`]). Measured with glibc
//! (the test process, `tests/guard_load.rs`): +52 MB for a storm of 256 at
//! 19 MiB on two threads, +300 MB before; with the `magpie` binary's
//! mimalloc (`magpie-bench login --real-hash --concurrency 256`): 90 ->
//! 100 MB. The bound on waiting hashes is `Auth`'s (`auth.hash_queue`).

use parking_lot::Mutex;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

type Job = Box<dyn FnOnce() + Send>;

pub struct Hashers {
    jobs: Sender<Job>,
}

impl Hashers {
    /// `n` threads (at least one); they end when this is dropped.
    pub fn new(n: usize) -> Hashers {
        large_blocks_go_back();
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..n.max(1) {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("magpie-hash-{i}"))
                .spawn(move || work(&queue));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "a password hashing thread did not start");
            }
        }
        Hashers { jobs }
    }

    /// Runs `f` on one of the threads; `None` if it panicked or the
    /// threads are gone.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.send(job).ok()?;
        rx.await.ok()
    }
}

/// glibc serves a large allocation with its own mapping, returned to the
/// system when freed — until the first such free, after which it raises
/// that threshold to the block's size and serves the next ones from its
/// heaps, which keep what is freed. A hash's 19 MiB would then stay with
/// the process after every burst of logins (measured: +300 MB after 18
/// hashes on two threads). Setting the threshold once turns the raising
/// off: hashes' blocks are mapped and unmapped each time (a few page
/// faults beside a hash's 50 ms).
fn large_blocks_go_back() {
    /// Blocks this large are mapped of their own (hash memory is 19 MiB;
    /// the message path's allocations are far smaller).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    const MMAP_FROM: libc::c_int = 4 << 20;
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    const TRIM_FROM: libc::c_int = 64 << 20;
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only sets an allocator parameter.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_FROM);
            // Setting the first also fixes the heaps' trim threshold at
            // its 128 KiB default, and trimming that eagerly costs the
            // message path page faults (measured: 21 -> 40 µs a message);
            // keep what the dynamic setting would have grown to.
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_FROM);
        });
    }
}

fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held while waiting: the others wait on it instead.
        let job = match queue.lock().recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        // A panicking hash fails its own request (its sender is dropped),
        // not the thread.
        let _ = catch_unwind(AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_pool_and_a_panic_fails_only_its_own() {
        let h = Hashers::new(2);
        assert_eq!(h.run(|| 21 * 2).await, Some(42));
        let name = h
            .run(|| std::thread::current().name().map(String::from))
            .await
            .flatten()
            .unwrap_or_default();
        assert!(name.starts_with("magpie-hash-"), "{name}");
        assert_eq!(h.run(|| -> u8 { panic!("boom") }).await, None);
        assert_eq!(h.run(|| 7).await, Some(7), "the thread survived");
    }
}
