//! The single writer: every write runs on one thread, and all writes queued at the same moment
//! share one transaction and one fsync (group commit). Each write runs in its own savepoint, so
//! one that fails is rolled back alone.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use rusqlite::Connection;

use crate::store::StoreError;

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// The most writes one transaction takes.
const MAX_BATCH: usize = 512;

/// A handle to the writer thread. Dropping it lets the thread finish the writes already queued
/// and close its connection before the drop returns, so the file can be opened again at once.
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub fn start(conn: Connection) -> Writer {
        let (jobs, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("durable-sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .expect("the SQLite writer thread starts");
        Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    /// Runs `f` in the next group transaction and resolves once that transaction committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = match std::panic::catch_unwind(AssertUnwindSafe(|| f(conn))) {
                Ok(result) => result,
                Err(_) => Err(StoreError::Backend("a SQLite write panicked".into())),
            };
            let failed = result.is_err();
            let reply: Reply = Box::new(move |committed| {
                let _ = tx.send(match committed {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::Backend(format!("commit failed: {e}"))),
                });
            });
            (failed, reply)
        });
        self.jobs
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the SQLite writer has stopped".into()))?
            .send(job)
            .map_err(|_| StoreError::Backend("the SQLite writer has stopped".into()))?;
        rx.await.map_err(|_| {
            StoreError::Backend(
                "the SQLite write was not carried out: the writer stopped or its transaction \
                 could not begin (see the log)"
                    .into(),
            )
        })?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The thread's loop ends once it has run what was queued; then its connection closes.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take()
            // A job holding the last handle to the store drops it on the writer thread itself.
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(batch.len());
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Nothing runs; dropping the jobs tells every caller its write was not carried out.
            tracing::error!(error = ?e.to_string(), "a SQLite transaction could not begin");
            drop(batch);
            continue;
        }
        for job in batch {
            // Prepared once and kept: parsing these two was a tenth of the writer's work.
            let _ = run_cached(&conn, "SAVEPOINT job");
            let (failed, reply) = job(&conn);
            let ended = if failed {
                run_cached(&conn, "ROLLBACK TO job").and_then(|()| run_cached(&conn, "RELEASE job"))
            } else {
                run_cached(&conn, "RELEASE job")
            };
            if let Err(e) = ended {
                tracing::error!(error = ?e.to_string(), "ending a SQLite savepoint failed");
            }
            replies.push(reply);
        }
        let committed = conn.execute_batch("COMMIT").map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            e.to_string()
        });
        for reply in replies {
            reply(committed.clone());
        }
    }
}

fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}
