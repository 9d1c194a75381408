//! [`Db`]: the store as async code reaches it. This is the one way a task
//! on the runtime (a bridge session, an HTTP handler, the delivery queue)
//! touches the database; nothing async calls [`Store`] directly.
//!
//! * [`Db::read`] runs a closure on one of the reader threads, each with a
//!   read-only connection (WAL: it never waits for the writer). Reads run
//!   in parallel, as many at once as there are read connections; more
//!   wait in line. A fixed set of threads, not the blocking pool: a burst
//!   of reads (10,000 printers heard for the first time) neither starts
//!   threads nor leaves them behind.
//! * [`Db::write`] hands a closure to the one writer thread and awaits its
//!   answer. Writes run one at a time, in the order they were asked for,
//!   so a write that waits for the file's lock (another process, a backup,
//!   a slow SD card) holds up other writes — never a runtime thread, never
//!   a read.
//! * [`Db::write_detached`] queues a write and does not wait: for
//!   bookkeeping (a command's answer, a bridge's log, last-heard times)
//!   whose outcome nobody awaits. It keeps its order with the other writes.
//!   When the queue is full (the disk has stalled for a long time) it is
//!   dropped with an error in the log; writes of what people send always go
//!   through [`Db::write`], which waits for room instead.
//!
//! ```text
//! let printer = state.db.read(move |s| s.printer_by_id(id)).await?;
//! let claim = state.db.write(move |s| s.claim(user, &code, &name, now)).await?;
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::sync::{mpsc, oneshot};

use super::Store;

/// Writes waiting for the writer thread at most; past this, [`Db::write`]
/// waits for room and [`Db::write_detached`] drops.
const WRITE_QUEUE: usize = 8192;

type Job = Box<dyn FnOnce(&Store) + Send>;

/// The async handle to the store. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    store: Arc<Store>,
    writer: mpsc::Sender<Job>,
    counters: Arc<Counters>,
    /// The reader threads' line of reads.
    reads: std::sync::mpsc::Sender<Job>,
}

#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
    queued: AtomicU64,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("store", &self.store)
            .field("writes_waiting", &self.writes_waiting())
            .finish()
    }
}

impl Db {
    /// Starts the writer thread for `store`. The thread ends when the last
    /// handle is dropped, after the writes already queued.
    pub fn new(store: Arc<Store>) -> Db {
        let (writer, mut jobs) = mpsc::channel::<Job>(WRITE_QUEUE);
        let counters = Arc::new(Counters::default());
        let thread_store = Arc::clone(&store);
        let thread_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("sirius-store-writer".into())
            .spawn(move || {
                while let Some(job) = jobs.blocking_recv() {
                    thread_counters.queued.fetch_sub(1, Relaxed);
                    let started = std::time::Instant::now();
                    // A panicking write is a bug; it must not take the writer
                    // (and every later write) down with it. The waiting side
                    // sees its answer channel dropped.
                    let run = std::panic::AssertUnwindSafe(|| job(&thread_store));
                    if std::panic::catch_unwind(run).is_err() {
                        tracing::error!("a database write panicked; it was abandoned");
                    }
                    crate::metrics::global()
                        .store_write_seconds
                        .observe(started.elapsed().as_secs_f64());
                }
            })
            .expect("could not start the database writer thread");
        let (reads, line) = std::sync::mpsc::channel::<Job>();
        let line = Arc::new(std::sync::Mutex::new(line));
        for i in 0..super::READERS {
            let line = Arc::clone(&line);
            let store = Arc::clone(&store);
            std::thread::Builder::new()
                .name(format!("sirius-store-reader-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next
                        // read, not while running it.
                        let next = line
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        match next {
                            Ok(job) => job(&store),
                            Err(_) => break, // every handle is gone
                        }
                    }
                })
                .expect("could not start a database reader thread");
        }
        Db {
            store,
            writer,
            counters,
            reads,
        }
    }

    /// The synchronous store, for code already off the runtime (a blocking
    /// task, a thread, the command line).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Runs `f` with the store on a reader thread, for reads. A read whose
    /// caller has gone away (a closed connection) by its turn is skipped.
    ///
    /// Panics inside `f` are resumed in the caller.
    pub async fn read<R, F>(&self, f: F) -> R
    where
        F: FnOnce(&Store) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |store| {
            if tx.is_closed() {
                return;
            }
            let run = std::panic::AssertUnwindSafe(|| f(store));
            let _ = tx.send(std::panic::catch_unwind(run));
        });
        if self.reads.send(job).is_err() {
            panic!("the database reader threads are gone");
        }
        match rx.await {
            Ok(Ok(r)) => r,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => panic!("a database read was dropped unanswered"),
        }
    }

    /// Runs `f` on the writer thread, after the writes queued before it,
    /// and returns its answer.
    pub async fn write<R, F>(&self, f: F) -> R
    where
        F: FnOnce(&Store) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |store| {
            let _ = tx.send(f(store));
        });
        self.counters.queued.fetch_add(1, Relaxed);
        if self.writer.send(job).await.is_err() {
            panic!("the database writer thread is gone");
        }
        match rx.await {
            Ok(r) => r,
            Err(_) => panic!("a database write panicked"),
        }
    }

    /// Queues `f` on the writer thread without waiting. Errors are logged
    /// with `what` (e.g. "record the answer to command 7").
    pub fn write_detached<F, E>(&self, what: impl Into<String>, f: F)
    where
        F: FnOnce(&Store) -> Result<(), E> + Send + 'static,
        E: std::fmt::Display,
    {
        let what = what.into();
        let job: Job = Box::new(move |store| {
            if let Err(e) = f(store) {
                tracing::error!("could not {what}: {e}");
            }
        });
        self.counters.queued.fetch_add(1, Relaxed);
        if self.writer.try_send(job).is_err() {
            self.counters.queued.fetch_sub(1, Relaxed);
            let n = self.counters.dropped.fetch_add(1, Relaxed) + 1;
            tracing::error!(
                dropped_so_far = n,
                "the database has fallen {WRITE_QUEUE} writes behind (is the disk stalled?); dropped a bookkeeping write"
            );
        }
    }

    /// Waits until every write queued before this call is done.
    pub async fn flush(&self) {
        self.write(|_| ()).await
    }

    /// Writes queued and not yet done.
    pub fn writes_waiting(&self) -> u64 {
        self.counters.queued.load(Relaxed)
    }

    /// Bookkeeping writes dropped because the queue was full.
    pub fn writes_dropped(&self) -> u64 {
        self.counters.dropped.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_keep_their_order_and_reads_see_them() {
        let db = Db::new(Arc::new(Store::open_in_memory().unwrap()));
        for i in 0..20 {
            let name = format!("user{i}");
            db.write_detached(format!("create {name}"), move |s| {
                s.create_user(&name, None, i).map(|_| ())
            });
        }
        let last = db.write(|s| s.create_user("last", None, 99)).await.unwrap();
        let users = db.read(|s| s.list_users()).await.unwrap();
        assert_eq!(users.len(), 21);
        // Done in the order asked: user0 first, "last" last.
        let id_of = |name: &str| users.iter().find(|u| u.username == name).unwrap().id;
        assert!(id_of("user0") < id_of("user19"));
        assert_eq!(users.iter().map(|u| u.id).max(), Some(last.id));
        assert_eq!(db.writes_waiting(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_write_does_not_stop_the_writer() {
        let db = Db::new(Arc::new(Store::open_in_memory().unwrap()));
        let db2 = db.clone();
        let r = tokio::spawn(async move { db2.write(|_| -> () { panic!("boom") }).await }).await;
        assert!(r.is_err());
        let u = db.write(|s| s.create_user("after", None, 1)).await;
        assert!(u.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_read_panics_its_caller_and_reads_go_on() {
        let db = Db::new(Arc::new(Store::open_in_memory().unwrap()));
        // More panics than reader threads: none of them is lost.
        for _ in 0..super::super::READERS + 2 {
            let db2 = db.clone();
            let r = tokio::spawn(async move { db2.read(|_| -> () { panic!("boom") }).await }).await;
            assert!(r.unwrap_err().is_panic());
        }
        db.write(|s| s.create_user("after", None, 1)).await.unwrap();
        // Many reads at once all get their answer.
        let reads = (0..50).map(|_| db.read(|s| s.user_count()));
        for n in futures_util::future::join_all(reads).await {
            assert_eq!(n.unwrap(), 1);
        }
    }
}
