//! The index handle: a tantivy index in a directory (or in memory), one
//! writer thread that group-commits, and a reader reloaded after each
//! commit, so what `apply` returned for is visible to the next query.

use crate::error::{Result, SearchError};
use crate::schema::{self, Fields};
use magpie_core::Message;
use parking_lot::Mutex;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use tantivy::query::RangeQuery;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Term};
use tokio::sync::oneshot;

/// Memory the writer buffers before it flushes a segment.
const WRITER_HEAP: usize = 64 << 20;

/// One unit of work for the writer: messages to (re)index, and a time
/// before which every expiring document goes.
#[derive(Default)]
pub struct Batch {
    pub upsert: Vec<Message>,
    pub expire_before: Option<i64>,
}

struct Job {
    batch: Batch,
    done: oneshot::Sender<Result<()>>,
}

/// Cheap, cloneable handle to one search index.
#[derive(Clone)]
pub struct SearchIndex {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) index: Index,
    pub(crate) reader: IndexReader,
    pub(crate) fields: Fields,
    /// Taken by `close` (or the last handle's drop), which ends the writer
    /// thread; joined so the index's lock is released.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    rebuilding: AtomicBool,
    fresh: bool,
}

impl Inner {
    fn close(&self) {
        drop(self.jobs.lock().take());
        let thread = self.writer.lock().take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it (and the directory) if there
    /// is none: `fresh()` then says it must be rebuilt from the store.
    pub fn open(dir: &Path) -> Result<SearchIndex> {
        std::fs::create_dir_all(dir).map_err(|e| SearchError::Unavailable(e.to_string()))?;
        let fresh = !dir.join("meta.json").exists();
        let (s, _) = schema::schema();
        let index = if fresh {
            Index::create_in_dir(dir, s)?
        } else {
            Index::open_in_dir(dir)?
        };
        Self::start(index, fresh)
    }

    /// An index in memory (tests, and `search.dir = ""` for a node that
    /// rebuilds at every start).
    pub fn in_memory() -> Result<SearchIndex> {
        Self::start(Index::create_in_ram(schema::schema().0), true)
    }

    fn start(index: Index, fresh: bool) -> Result<SearchIndex> {
        schema::register(&index);
        let fields = fields_of(&index)?;
        let writer: IndexWriter = index.writer_with_num_threads(1, WRITER_HEAP)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let (jobs, rx) = mpsc::channel();
        let for_thread = (reader.clone(), fields);
        let thread = std::thread::Builder::new()
            .name("search-writer".into())
            .spawn(move || write_loop(&for_thread.0, for_thread.1, writer, rx))
            .map_err(|e| SearchError::Unavailable(e.to_string()))?;
        let inner = Arc::new(Inner {
            index,
            reader,
            fields,
            jobs: Mutex::new(Some(jobs)),
            writer: Mutex::new(Some(thread)),
            rebuilding: AtomicBool::new(false),
            fresh,
        });
        Ok(SearchIndex { inner })
    }

    /// The index was created empty by this `open`: the caller rebuilds it.
    pub fn fresh(&self) -> bool {
        self.inner.fresh
    }

    /// Marks a rebuild as running (reported by `/healthz` and metrics).
    pub fn set_rebuilding(&self, on: bool) {
        self.inner.rebuilding.store(on, Ordering::Relaxed);
    }

    pub fn rebuilding(&self) -> bool {
        self.inner.rebuilding.load(Ordering::Relaxed)
    }

    /// Indexes what `batch` holds, durably: returns once the commit that
    /// contains it is on disk and visible to queries. Batches arriving
    /// while a commit runs share the next one.
    pub async fn apply(&self, batch: Batch) -> Result<()> {
        let (done, answer) = oneshot::channel();
        let stopped = || SearchError::Unavailable("the index writer stopped".into());
        let jobs = self.inner.jobs.lock().clone().ok_or_else(stopped)?;
        jobs.send(Job { batch, done }).map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| SearchError::Unavailable("the index writer stopped".into()))?
    }

    /// Stops the writer once the work sent to it is committed, waits for
    /// its merges and releases the index's lock (blocking). `apply` then
    /// answers `Unavailable`; queries still read what was committed.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Documents in the index (as of the last commit).
    pub fn num_docs(&self) -> u64 {
        self.inner.reader.searcher().num_docs()
    }
}

fn fields_of(index: &Index) -> Result<Fields> {
    let s = index.schema();
    let f = |name: &str| {
        s.get_field(name)
            .map_err(|_| SearchError::Unavailable(format!("index has no field {name}: rebuild it")))
    };
    Ok(Fields {
        id: f("id")?,
        conv: f("conv")?,
        party: f("party")?,
        seq: f("seq")?,
        from: f("from")?,
        sent_at: f("sent_at")?,
        expire_at: f("expire_at")?,
        body: f("body")?,
    })
}

/// The writer thread: takes every job waiting, applies them all, commits
/// once, reloads the reader, then answers them all (group commit).
fn write_loop(reader: &IndexReader, f: Fields, mut writer: IndexWriter, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        let mut result = Ok(());
        for job in &mut jobs {
            let batch = std::mem::take(&mut job.batch);
            for m in &batch.upsert {
                writer.delete_term(schema::id_term(&f, m.server_id.0));
                if let Err(e) = writer.add_document(schema::document(&f, m)) {
                    result = Err(SearchError::from(e));
                }
            }
            if let Some(t) = batch.expire_before {
                let lower = Term::from_field_i64(f.expire_at, i64::MIN);
                let upper = Term::from_field_i64(f.expire_at, t);
                let expired = RangeQuery::new(
                    std::ops::Bound::Included(lower),
                    std::ops::Bound::Excluded(upper),
                );
                if let Err(e) = writer.delete_query(Box::new(expired)) {
                    result = Err(SearchError::from(e));
                }
            }
        }
        let result = result.and_then(|()| {
            writer.commit()?;
            reader.reload()?;
            Ok(())
        });
        if let Err(e) = &result {
            // Uncommitted work is dropped; every job is answered with the
            // error and retried by its worker (idempotent: keyed by id).
            tracing::warn!(error = %e, "search index commit failed");
            if let Err(e) = writer.rollback() {
                tracing::error!(error = %e, "search index rollback failed");
            }
        }
        for job in jobs {
            let _ = job.done.send(result.clone());
        }
    }
    // Closed: merges still running finish before the lock is let go.
    if let Err(e) = writer.wait_merging_threads() {
        tracing::warn!(error = %e, "search index merges did not finish");
    }
}
