//! The single writer: every write runs on one thread, and the writes queued at the same moment,
//! with those that come in while they run, share one transaction and one fsync (group commit).
//!
//! A write that may fail after it has changed something runs in a savepoint of its own, so
//! that it is rolled back alone ([`Writer::write`]). A savepoint costs a copy of every page
//! the write touches first (the statement journal): on a busy store that was a fifth of the
//! writer's work. So the hot writes refuse, when they refuse, before they change anything,
//! and run without one ([`Writer::write_checked`]). Should one of those fail after all once
//! it has changed something (an I/O error, a refusal its checks could not foresee), the
//! whole transaction is rolled back: the writes before it in the transaction fail too, as
//! when the commit fails, and the writes after it run in a new transaction.
//!
//! A write learns the state of its transaction ([`CommitState`]), which the writer settles
//! once the transaction committed or rolled back: a write may hand what it read over before
//! that (see [`Writer::write_after`]). A write may also name the transaction it depends on:
//! it runs only if that one was applied, and is refused otherwise, changing nothing.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::syncer::{Marks, Syncer};
use crate::store::{CommitState, StoreError};

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A write, run with its transaction's state and the transaction it depends on (if any).
type Run = Box<dyn FnOnce(&Connection, &CommitState, Option<&CommitState>) -> (bool, Reply) + Send>;

/// A write queued for the writer thread.
struct Job {
    run: Run,
    /// Whether it runs in a savepoint of its own.
    savepoint: bool,
    /// The transaction it depends on, if any.
    after: Option<CommitState>,
}

/// The most writes one transaction takes.
const MAX_BATCH: usize = 512;

/// How long a transaction takes in writes that depend on it as they come, once those queued
/// when it began have run (see [`run_transaction`]).
const OPEN_FOR: Duration = Duration::from_millis(2);

/// A handle to the writer thread. Dropping it lets the thread finish the writes already queued
/// and close its connection before the drop returns, so the file can be opened again at once.
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    marks: Option<Arc<Marks>>,
}

impl Writer {
    /// Starts the writer thread on `conn`. With a `syncer`, a group's writes are answered
    /// once it synced the group (see `syncer.rs`); without, once the group committed.
    pub fn start(conn: Connection, syncer: Option<Syncer>) -> Writer {
        Writer::start_open_for(conn, syncer, OPEN_FOR)
    }

    /// [`Writer::start`] with transactions that take in writes for `open_for`.
    fn start_open_for(conn: Connection, syncer: Option<Syncer>, open_for: Duration) -> Writer {
        let (jobs, rx) = mpsc::channel::<Job>();
        let marks = syncer.as_ref().map(Syncer::marks);
        let thread = std::thread::Builder::new()
            .name("durable-sqlite-writer".into())
            .spawn(move || run(conn, rx, syncer, open_for))
            .expect("the SQLite writer thread starts");
        Writer {
            jobs: Some(jobs),
            thread: Some(thread),
            marks,
        }
    }

    /// How far the groups have come, when a syncer answers them.
    pub fn marks(&self) -> Option<&Arc<Marks>> {
        self.marks.as_ref()
    }

    /// Runs `f` in the next group transaction, in a savepoint of its own, and resolves once
    /// that transaction committed. When `f` fails, what it changed is rolled back.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue(None, move |conn, _| f(conn), true).await
    }

    /// [`Writer::write`] without a savepoint, for a write that fails, when it fails, before
    /// it changes anything. One that fails after changing something takes the writes before
    /// it in its transaction down with it (see the module's documentation).
    pub async fn write_checked<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue(None, move |conn, _| f(conn), false).await
    }

    /// [`Writer::write_checked`] of a write that depends on the transaction `after` (when
    /// given): it runs only if that one was applied, and is refused otherwise. `f` learns
    /// the state of its own transaction, settled once that commits or rolls back.
    pub async fn write_after<T, F>(&self, after: Option<CommitState>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &CommitState) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue(after, f, false).await
    }

    /// [`Writer::write`] of a write that depends on the transaction `after` (when given), as
    /// [`Writer::write_after`].
    pub async fn write_saved_after<T, F>(
        &self,
        after: Option<CommitState>,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue(after, move |conn, _| f(conn), true).await
    }

    async fn queue<T, F>(
        &self,
        after: Option<CommitState>,
        f: F,
        savepoint: bool,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &CommitState) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let run: Run = Box::new(move |conn, state, after| {
            // The transaction depended on was settled before this one began, or is this one.
            let result =
                CommitState::check_within(after, state).and_then(
                    |()| match std::panic::catch_unwind(AssertUnwindSafe(|| f(conn, state))) {
                        Ok(result) => result,
                        Err(_) => Err(StoreError::Backend("a SQLite write panicked".into())),
                    },
                );
            let failed = result.is_err();
            let reply: Reply = Box::new(move |committed| {
                let _ = tx.send(match committed {
                    // A write that failed answers with its own error, committed or not.
                    Ok(()) => result,
                    Err(_) if result.is_err() => result,
                    Err(e) => Err(StoreError::Backend(format!("commit failed: {e}"))),
                });
            });
            (failed, reply)
        });
        self.jobs
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the SQLite writer has stopped".into()))?
            .send(Job {
                run,
                savepoint,
                after,
            })
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
        join_unless_current(self.thread.take());
    }
}

/// Waits for `thread` to end, unless this is that thread: a job (or an answer) holding the
/// last handle to the store drops it on the store's own thread, which cannot wait for itself.
pub(super) fn join_unless_current(thread: Option<std::thread::JoinHandle<()>>) {
    if let Some(thread) = thread
        && thread.thread().id() != std::thread::current().id()
    {
        let _ = thread.join();
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>, syncer: Option<Syncer>, open_for: Duration) {
    let mut batch = VecDeque::new();
    loop {
        if batch.is_empty() {
            match rx.recv() {
                Ok(job) => batch.push_back(job),
                Err(_) => break,
            }
        }
        if let Some(syncer) = &syncer {
            syncer.wait_for_room();
        }
        // A transaction begins with every write queued.
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push_back(job),
                Err(_) => break,
            }
        }
        run_transaction(&conn, &mut batch, (&rx, open_for), syncer.as_ref());
    }
    // The groups committed are synced and answered before the connection closes.
    drop(syncer);
}

/// Runs the jobs at the front of `batch` in one transaction and answers them: all of them,
/// unless one without a savepoint fails after changing something; then the transaction is
/// rolled back there and the jobs after it are left in `batch`.
///
/// A write that depends on the transaction itself, queued while it runs, joins it, until it
/// holds [`MAX_BATCH`] writes or has been open for `open_for` ([`OPEN_FOR`]): work handed
/// over by one of its writes (see [`Writer::write_after`]) then comes back with its turn in
/// the same transaction, instead of waiting for this one to commit and the next to begin. A
/// chain of turns between this host's instances moves several steps per transaction. The
/// first other write queued ends it (writes run in the order they are queued), and begins
/// the next with the others queued by then.
fn run_transaction(
    conn: &Connection,
    batch: &mut VecDeque<Job>,
    (rx, open_for): (&mpsc::Receiver<Job>, Duration),
    syncer: Option<&Syncer>,
) {
    if let Some(Err(e)) = syncer.map(Syncer::check) {
        // What the disk holds is not known: nothing more is written.
        tracing::error!(error = ?e.to_string(), "a SQLite write was refused");
        batch.clear();
        return;
    }
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        // Nothing runs; dropping the jobs tells every caller its write was not carried out.
        tracing::error!(error = ?e.to_string(), "a SQLite transaction could not begin");
        batch.clear();
        return;
    }
    let state = CommitState::new();
    let began = Instant::now();
    let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
    loop {
        let job = match batch.pop_front() {
            Some(job) => job,
            None if replies.len() < MAX_BATCH && began.elapsed() < open_for => {
                match rx.try_recv() {
                    Ok(job) if job.after.as_ref().is_some_and(|a| a.is(&state)) => job,
                    Ok(job) => {
                        batch.push_back(job);
                        break;
                    }
                    Err(_) => break,
                }
            }
            None => break,
        };
        let changes = conn.total_changes();
        if job.savepoint {
            // Prepared once and kept: parsing these two was a tenth of the writer's work.
            let _ = run_cached(conn, "SAVEPOINT job");
        }
        let (failed, reply) = (job.run)(conn, &state, job.after.as_ref());
        if job.savepoint {
            let ended = if failed {
                run_cached(conn, "ROLLBACK TO job").and_then(|()| run_cached(conn, "RELEASE job"))
            } else {
                run_cached(conn, "RELEASE job")
            };
            if let Err(e) = ended {
                tracing::error!(error = ?e.to_string(), "ending a SQLite savepoint failed");
            }
        }
        // The transaction is lost when SQLite rolled it back itself (after an I/O error, say),
        // or when a write without a savepoint changed something and then failed.
        let changed_then_failed = failed && !job.savepoint && conn.total_changes() != changes;
        if conn.is_autocommit() || changed_then_failed {
            tracing::warn!(
                "a SQLite write failed after changing the store; its transaction is rolled back"
            );
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            state.settle(false);
            let undone = Err("rolled back: another write in its transaction failed".to_string());
            for reply in replies {
                reply(undone.clone());
            }
            reply(undone);
            return;
        }
        replies.push(reply);
    }
    let committed = conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    });
    // Applied, in order: the writes that depend on it may run (they are answered after it).
    state.settle(committed.is_ok());
    match (committed, syncer) {
        (Ok(()), Some(syncer)) => syncer.committed(replies),
        (committed, _) => {
            for reply in replies {
                reply(committed.clone());
            }
        }
    }
}

fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn writer() -> Writer {
        writer_open_for(OPEN_FOR)
    }

    fn writer_open_for(open_for: Duration) -> Writer {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            .unwrap();
        Writer::start_open_for(conn, None, open_for)
    }

    fn insert(k: i64) -> impl FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static {
        move |conn| {
            conn.execute("INSERT INTO t (k) VALUES (?1)", [k])
                .map(drop)
                .map_err(|e| StoreError::Backend(e.to_string()))
        }
    }

    async fn keys(writer: &Writer) -> Vec<i64> {
        writer
            .write(|conn| {
                let mut stmt = conn.prepare("SELECT k FROM t ORDER BY k").unwrap();
                let keys = stmt.query_map([], |r| r.get(0)).unwrap();
                Ok(keys.map(Result::unwrap).collect())
            })
            .await
            .unwrap()
    }

    /// A write for [`one_batch`]: whether it runs in a savepoint, and what it does.
    type TestJob = (
        bool,
        Box<dyn FnOnce(&Connection) -> Result<(), StoreError> + Send>,
    );

    /// Runs `jobs` in one transaction: they are queued while the writer is busy.
    async fn one_batch(writer: &Writer, jobs: Vec<TestJob>) -> Vec<Result<(), StoreError>> {
        let busy = writer.write(|_| {
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        });
        let queued = futures::future::join_all(jobs.into_iter().map(|(savepoint, f)| {
            let started = tokio::time::sleep(Duration::from_millis(50));
            async move {
                started.await;
                writer.queue(None, move |conn, _| f(conn), savepoint).await
            }
        }));
        let (busy, results) = tokio::join!(busy, queued);
        busy.unwrap();
        results
    }

    #[tokio::test]
    async fn a_checked_write_refused_before_it_changed_anything_leaves_the_others() {
        let writer = writer();
        let results = one_batch(
            &writer,
            vec![
                (false, Box::new(insert(1))),
                (false, Box::new(|_: &Connection| Err(StoreError::LeaseLost))),
                (false, Box::new(insert(2))),
            ],
        )
        .await;
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        assert!(matches!(results[1], Err(StoreError::LeaseLost)));
        assert_eq!(keys(&writer).await, [1, 2]);
    }

    #[tokio::test]
    async fn a_checked_write_failing_after_a_change_rolls_its_transaction_back() {
        let writer = writer();
        let results = one_batch(
            &writer,
            vec![
                (false, Box::new(insert(1))),
                (true, Box::new(insert(2))),
                (
                    false,
                    Box::new(|conn: &Connection| {
                        insert(3)(conn)?;
                        Err(StoreError::LeaseLost)
                    }),
                ),
                (false, Box::new(insert(4))),
            ],
        )
        .await;
        assert!(results[0].is_err() && results[1].is_err(), "{results:?}");
        assert!(matches!(results[2], Err(StoreError::LeaseLost)));
        assert!(results[3].is_ok(), "the next write commits: {results:?}");
        assert_eq!(keys(&writer).await, [4]);
    }

    /// A write sees its transaction's state, settled once the transaction ends: rolled back
    /// (by a later write that failed after a change), it is not durable, and a write that
    /// depends on it is refused without running; one that depends on a transaction that
    /// committed runs.
    #[tokio::test]
    async fn a_write_after_a_transaction_rolled_back_is_refused() {
        let writer = writer();
        let (states, seen) = std::sync::mpsc::channel::<CommitState>();
        let note = move |k: i64| {
            let states = states.clone();
            move |conn: &Connection, state: &CommitState| {
                states.send(state.clone()).unwrap();
                insert(k)(conn)
            }
        };
        let busy = writer.write(|_| {
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        });
        let first = writer.write_after(None, note(1));
        let failing = async {
            // Queued after `first`, in the same transaction.
            tokio::time::sleep(Duration::from_millis(100)).await;
            writer
                .write_after(None, |conn, _| {
                    insert(2)(conn)?;
                    Err::<(), _>(StoreError::LeaseLost)
                })
                .await
        };
        let queued = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            first.await
        };
        let (busy, first, failing) = tokio::join!(busy, queued, failing);
        busy.unwrap();
        assert!(first.is_err() && failing.is_err(), "{first:?} {failing:?}");
        let rolled_back = seen.recv().unwrap();
        assert_eq!(rolled_back.applied(), Some(false));

        let refused = writer
            .write_after(Some(rolled_back), |conn, _| insert(3)(conn))
            .await;
        assert!(refused.is_err(), "{refused:?}");
        writer.write_after(None, note(4)).await.unwrap();
        let committed = seen.recv().unwrap();
        assert_eq!(committed.applied(), Some(true));
        writer
            .write_after(Some(committed), |conn, _| insert(5)(conn))
            .await
            .unwrap();
        assert_eq!(keys(&writer).await, [4, 5]);
    }

    /// A first write, inserting 1, that tells its transaction's state and then holds the
    /// transaction open until told to go on.
    #[allow(clippy::type_complexity)]
    fn held_open(
        writer: &Writer,
    ) -> (
        impl std::future::Future<Output = Result<(), StoreError>> + '_,
        tokio::sync::oneshot::Receiver<CommitState>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (states, state) = tokio::sync::oneshot::channel::<CommitState>();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let first = writer.write_after(None, move |conn, state| {
            insert(1)(conn)?;
            states.send(state.clone()).unwrap();
            wait.recv().unwrap();
            Ok(())
        });
        (first, state, go)
    }

    /// A write queued while a transaction is open joins it, even one that depends on that
    /// transaction (work it handed over, say): both are applied together.
    #[tokio::test]
    async fn a_write_queued_while_a_transaction_runs_joins_it() {
        let writer = writer_open_for(Duration::from_secs(60));
        let (first, state, go) = held_open(&writer);
        let second = async {
            let first_state = state.await.unwrap();
            let seen = first_state.clone();
            let mut second =
                std::pin::pin!(writer.write_after(Some(first_state), move |conn, _| {
                    // Not settled yet: this runs in the transaction it depends on.
                    assert_eq!(seen.applied(), None);
                    insert(2)(conn)
                }));
            assert!(futures::poll!(second.as_mut()).is_pending());
            go.send(()).unwrap();
            second.await
        };
        let (first, second) = tokio::join!(first, second);
        first.unwrap();
        second.unwrap();
        assert_eq!(keys(&writer).await, [1, 2]);
    }

    /// A write that does not depend on the open transaction ends it: it runs in the next,
    /// and so does a write that depends on the first but was queued after it.
    #[tokio::test]
    async fn another_write_queued_while_a_transaction_runs_waits_for_the_next() {
        let writer = writer_open_for(Duration::from_secs(60));
        let (first, state, go) = held_open(&writer);
        let others = async {
            let first_state = state.await.unwrap();
            let (seen, seen_too) = (first_state.clone(), first_state.clone());
            let mut other = std::pin::pin!(writer.write_after(None, move |conn, _| {
                assert_eq!(seen.applied(), Some(true), "runs after the first committed");
                insert(2)(conn)
            }));
            let mut dependent =
                std::pin::pin!(writer.write_after(Some(first_state), move |conn, _| {
                    assert_eq!(seen_too.applied(), Some(true), "queued behind the other");
                    insert(3)(conn)
                }));
            assert!(futures::poll!(other.as_mut()).is_pending());
            assert!(futures::poll!(dependent.as_mut()).is_pending());
            go.send(()).unwrap();
            tokio::join!(other, dependent)
        };
        let (first, (other, dependent)) = tokio::join!(first, others);
        first.unwrap();
        other.unwrap();
        dependent.unwrap();
        assert_eq!(keys(&writer).await, [1, 2, 3]);
    }

    #[tokio::test]
    async fn a_write_in_a_savepoint_is_rolled_back_alone() {
        let writer = writer();
        let results = one_batch(
            &writer,
            vec![
                (false, Box::new(insert(1))),
                (
                    true,
                    Box::new(|conn: &Connection| {
                        insert(2)(conn)?;
                        Err(StoreError::LeaseLost)
                    }),
                ),
                (false, Box::new(insert(3))),
            ],
        )
        .await;
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        assert!(matches!(results[1], Err(StoreError::LeaseLost)));
        assert_eq!(keys(&writer).await, [1, 3]);
    }
}
