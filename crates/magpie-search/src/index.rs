//! The index handle: a tantivy index in a directory (or in memory), one
//! writer thread, and a reader reloaded after each commit, so what a
//! commit returned for is visible to the next query.
//!
//! Writing is two steps: `stage` hands documents to the writer (buffered,
//! not yet durable), `commit` makes everything staged so far durable, one
//! commit for every caller waiting (group commit). A failed commit rolls
//! back whatever was staged, by anyone: `epoch` counts those losses, so a
//! caller that staged under one epoch and sees another after its commit
//! knows its documents are gone and must write them again.

use crate::error::{Result, SearchError};
use crate::schema::{self, Fields};
use crate::segment::Segmenter;
use magpie_core::Message;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use tantivy::query::RangeQuery;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, Term};
use tokio::sync::oneshot;

/// The file beside the index naming the segmenter that wrote it.
const SEGMENTER_FILE: &str = "magpie-tokenizer";

/// Memory the writer buffers before it flushes a segment. A smaller one
/// saved no memory under load and cost more merging (docs/performance.md).
const WRITER_HEAP: usize = 64 << 20;

/// One unit of work for the writer: messages to (re)index, then documents
/// to drop by server id (recalled messages), and a time before which every
/// expiring document goes.
#[derive(Default)]
pub struct Batch {
    pub upsert: Vec<Message>,
    pub delete: Vec<i64>,
    pub expire_before: Option<i64>,
}

enum Job {
    Stage(Batch, oneshot::Sender<Result<()>>),
    Commit(oneshot::Sender<Result<u64>>),
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
    pub(crate) segmenter: Segmenter,
    /// Taken by `close` (or the last handle's drop), which ends the writer
    /// thread; joined so the index's lock is released.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    rebuilding: AtomicBool,
    /// Rolled-back commits so far (see the module's comment).
    epoch: Arc<AtomicU64>,
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
    /// is none: `fresh()` then says it must be rebuilt from the store. An
    /// index written with another segmenter is dropped and created anew
    /// (fresh): its tokens would not match this one's queries.
    pub fn open(dir: &Path, segmenter: Segmenter) -> Result<SearchIndex> {
        let io = |e: std::io::Error| SearchError::Unavailable(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let marker = dir.join(SEGMENTER_FILE);
        let mut fresh = !dir.join("meta.json").exists();
        if !fresh {
            // Indexes from before the marker were all written by bigram.
            let wrote = std::fs::read_to_string(&marker).unwrap_or_else(|_| "bigram".into());
            if wrote.trim() != segmenter.name() {
                tracing::warn!(dir = %dir.display(), was = wrote.trim(), now = segmenter.name(),
                    "search index written by another tokenizer: dropping it to rebuild");
                drop_index_files(dir)?;
                fresh = true;
            }
        }
        let (s, _) = schema::schema();
        let index = if fresh {
            let index = Index::create_in_dir(dir, s)?;
            std::fs::write(&marker, segmenter.name()).map_err(io)?;
            index
        } else {
            Index::open_in_dir(dir)?
        };
        Self::start(index, fresh, segmenter)
    }

    /// An index in memory (tests, and `search.dir = ""` for a node that
    /// rebuilds at every start).
    pub fn in_memory(segmenter: Segmenter) -> Result<SearchIndex> {
        Self::start(Index::create_in_ram(schema::schema().0), true, segmenter)
    }

    fn start(index: Index, fresh: bool, segmenter: Segmenter) -> Result<SearchIndex> {
        schema::register(&index, segmenter);
        let fields = fields_of(&index)?;
        let writer: IndexWriter = index.writer_with_num_threads(1, WRITER_HEAP)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let (jobs, rx) = mpsc::channel();
        let epoch = Arc::new(AtomicU64::new(0));
        let state = Writer {
            highest: schema::highest_id(&reader.searcher()),
            reader: reader.clone(),
            f: fields,
            writer,
            epoch: epoch.clone(),
            dirty: false,
            staged_ids: HashSet::new(),
            stale: false,
        };
        let thread = std::thread::Builder::new()
            .name("search-writer".into())
            .spawn(move || state.run(rx))
            .map_err(|e| SearchError::Unavailable(e.to_string()))?;
        let inner = Arc::new(Inner {
            index,
            reader,
            fields,
            segmenter,
            jobs: Mutex::new(Some(jobs)),
            writer: Mutex::new(Some(thread)),
            rebuilding: AtomicBool::new(false),
            epoch,
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
        let epoch = self.epoch();
        self.stage(batch).await?;
        if self.commit().await? != epoch {
            return Err(SearchError::Unavailable(
                "a failed commit dropped the batch; write it again".into(),
            ));
        }
        Ok(())
    }

    /// Hands `batch` to the writer: in the next commit, not durable nor
    /// visible before it. Read `epoch` first to know whether it survived.
    pub async fn stage(&self, batch: Batch) -> Result<()> {
        let (done, answer) = oneshot::channel();
        self.send(Job::Stage(batch, done))?;
        answer.await.map_err(|_| stopped())?
    }

    /// Commits everything staged so far (one commit for every caller
    /// waiting) and returns the epoch it holds: different from the one
    /// read before a `stage` means that stage was rolled back.
    pub async fn commit(&self) -> Result<u64> {
        let (done, answer) = oneshot::channel();
        self.send(Job::Commit(done))?;
        answer.await.map_err(|_| stopped())?
    }

    /// Rolled-back commits so far.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::Acquire)
    }

    fn send(&self, job: Job) -> Result<()> {
        let jobs = self.inner.jobs.lock().clone().ok_or_else(stopped)?;
        jobs.send(job).map_err(|_| stopped())
    }

    /// Stops the writer (work staged and not committed is dropped: its
    /// stagers never saw a commit for it), waits for its merges and
    /// releases the index's lock (blocking). Writing then answers
    /// `Unavailable`; queries still read what was committed.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Documents in the index (as of the last commit).
    pub fn num_docs(&self) -> u64 {
        self.inner.reader.searcher().num_docs()
    }
}

/// Deletes the index in `dir` file by file — those tantivy lists as its
/// own (`.managed.json`), its meta and locks, the marker — and nothing
/// else: `search.dir` may be shared with other files.
fn drop_index_files(dir: &Path) -> Result<()> {
    let unavailable = |why: String| {
        SearchError::Unavailable(format!(
            "{}: cannot drop the index written by another tokenizer ({why}); delete it by hand",
            dir.display()
        ))
    };
    let listed =
        std::fs::read(dir.join(".managed.json")).map_err(|e| unavailable(e.to_string()))?;
    let files: Vec<String> =
        serde_json::from_slice(&listed).map_err(|e| unavailable(e.to_string()))?;
    let own = [
        ".managed.json",
        "meta.json",
        ".tantivy-meta.lock",
        ".tantivy-writer.lock",
        SEGMENTER_FILE,
    ];
    for name in files.iter().map(String::as_str).chain(own) {
        // Only plain names: a listed path never leaves the directory.
        if name.contains(['/', '\\']) || name == ".." {
            continue;
        }
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(unavailable(e.to_string())),
        }
    }
    Ok(())
}

fn stopped() -> SearchError {
    SearchError::Unavailable("the index writer stopped".into())
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

/// The writer thread's state.
struct Writer {
    reader: IndexReader,
    f: Fields,
    writer: IndexWriter,
    epoch: Arc<AtomicU64>,
    /// Something was staged since the last commit.
    dirty: bool,
    /// The highest server id staged since the start, or in the index when
    /// it opened. Invariant: no document has a higher id, so a message
    /// above it is new and its upsert needs neither a look-up nor a delete.
    /// Only ever raised: after a rollback it may be above what the index
    /// holds, which costs look-ups, never a duplicate.
    highest: i64,
    /// The ids staged since the last commit. With the committed documents
    /// (`reader`, reloaded by each commit) they are every document the
    /// index may hold: a commit makes them visible or drops them, and
    /// clears this either way.
    staged_ids: HashSet<i64>,
    /// The last commit or reload failed: `reader` may miss committed
    /// documents, so every id at or below `highest` is deleted before it
    /// is added, until a commit and reload succeed.
    stale: bool,
}

impl Writer {
    /// Takes every job waiting, stages the batches in order, then commits
    /// once for all the commits asked (group commit) and reloads the
    /// reader before answering them.
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut waiting = Vec::new();
            for job in std::iter::once(first).chain(rx.try_iter()) {
                match job {
                    Job::Stage(batch, done) => {
                        let _ = done.send(self.stage(batch));
                    }
                    Job::Commit(done) => waiting.push(done),
                }
            }
            if waiting.is_empty() {
                continue;
            }
            let result = self.commit();
            for done in waiting {
                let _ = done.send(result.clone());
            }
        }
        // Closed: what was staged and not committed is dropped (its events
        // were not acknowledged); merges still running finish before the
        // lock is let go.
        if let Err(e) = self.writer.wait_merging_threads() {
            tracing::warn!(error = %e, "search index merges did not finish");
        }
    }

    fn stage(&mut self, batch: Batch) -> Result<()> {
        let f = self.f;
        self.dirty = true;
        let committed = self.reader.searcher();
        for m in &batch.upsert {
            // Keyed by server id: a message written again replaces itself.
            // A node's ids increase, so most messages are above `highest`.
            // Below it (ids taken by concurrent sends reach the bus in
            // commit order, not id order) the id is looked up first: a
            // delete term would cost the same look-up in every segment at
            // the commit, and hold a query's weight until then, for the
            // many ids that were never indexed.
            let id = m.server_id.0;
            if id <= self.highest && self.may_hold(&committed, id) {
                self.writer.delete_term(schema::id_term(&f, id));
            }
            self.highest = self.highest.max(id);
            self.staged_ids.insert(id);
            self.writer.add_document(schema::document(&f, m))?;
        }
        // After the upserts: a message recalled in the same batch it was
        // indexed in is gone at the end of it.
        for &id in &batch.delete {
            self.writer.delete_term(schema::id_term(&f, id));
        }
        if let Some(t) = batch.expire_before {
            let lower = Term::from_field_i64(f.expire_at, i64::MIN);
            let upper = Term::from_field_i64(f.expire_at, t);
            let expired = RangeQuery::new(
                std::ops::Bound::Included(lower),
                std::ops::Bound::Excluded(upper),
            );
            self.writer.delete_query(Box::new(expired))?;
        }
        Ok(())
    }

    /// Whether a document with `id` may be in the index: staged since the
    /// last commit, or in a committed segment (deleted ones included; a
    /// failed look-up answers yes).
    fn may_hold(&self, committed: &Searcher, id: i64) -> bool {
        self.stale
            || self.staged_ids.contains(&id)
            || committed
                .doc_freq(&schema::id_term(&self.f, id))
                .map_or(true, |n| n > 0)
    }

    fn commit(&mut self) -> Result<u64> {
        if !std::mem::take(&mut self.dirty) {
            return Ok(self.epoch.load(Ordering::Acquire));
        }
        // Committed (and visible after the reload) or rolled back below.
        self.staged_ids.clear();
        let done = self
            .writer
            .commit()
            .and_then(|_| self.reader.reload())
            .map_err(SearchError::from);
        self.stale = done.is_err();
        if let Err(e) = &done {
            // Everything staged since the last commit is dropped: the epoch
            // tells its stagers, who write it again (keyed by id).
            tracing::warn!(error = %e, "search index commit failed");
            if let Err(e) = self.writer.rollback() {
                tracing::error!(error = %e, "search index rollback failed");
            }
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        done.map(|()| self.epoch.load(Ordering::Acquire))
    }
}
