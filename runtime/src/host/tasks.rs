//! The host's task group: every task a host spawns (dispatchers, the lease and partition
//! keepers, activities and the turns their results start) goes through it, so the host can be
//! stopped as a whole at whatever await point each task is (a crash), or paused (its tasks are
//! no longer polled, as in a long stall of the process) and resumed.
//!
//! A task that panics is logged as an error, never lost silently; the long-lived ones (the
//! dispatchers and keepers) start again after a backoff, so one bug in the host's own code
//! cannot stop a host from taking work while it looks alive.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use futures::FutureExt;
use tokio::task::{AbortHandle, JoinHandle};

use crate::model::real_sleep;
use crate::replay::panic_message;

/// How long a restarted task must run before its next panic counts as the first again.
const HEALTHY_RUN: std::time::Duration = std::time::Duration::from_secs(60);

/// The tasks of one host.
#[derive(Default)]
pub(super) struct TaskGroup {
    running: Mutex<BTreeMap<u64, AbortHandle>>,
    next: AtomicU64,
    /// Set once aborted: nothing new starts.
    aborted: AtomicBool,
    gate: std::sync::Arc<Gate>,
}

/// Whether the group's tasks may be polled, and the tasks that were held back.
#[derive(Default)]
struct Gate {
    paused: AtomicBool,
    held: Mutex<Vec<Waker>>,
}

impl TaskGroup {
    /// Spawns `future` as one of the group's tasks.
    pub(super) fn spawn<F>(self: &std::sync::Arc<Self>, future: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let group = std::sync::Arc::downgrade(self);
        let gated = Gated {
            gate: self.gate.clone(),
            future: Box::pin(future),
        };
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let handle = tokio::spawn(async move {
            // Removed from the group when it ends (finished, or dropped when aborted).
            let _done = Done { group, key };
            if let Err(panic) = std::panic::AssertUnwindSafe(gated).catch_unwind().await {
                tracing::error!(
                    panic = ?panic_message(&*panic),
                    "a host task panicked and ended"
                );
            }
        });
        if self.aborted.load(Ordering::Acquire) {
            handle.abort();
        } else {
            running.insert(key, handle.abort_handle());
        }
        handle
    }

    /// Spawns the long-lived task `make` gives (`what` names it in logs), and starts it again
    /// with a fresh `make()` whenever it panics, after a backoff that grows with the panics in
    /// a row. It ends when a run of it ends without a panic (the host stopping).
    pub(super) fn spawn_restarting<F, Fut>(
        self: &std::sync::Arc<Self>,
        what: &'static str,
        make: F,
    ) -> JoinHandle<()>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn(async move {
            let mut panics = 0u32;
            loop {
                let started = tokio::time::Instant::now();
                match std::panic::AssertUnwindSafe(make()).catch_unwind().await {
                    Ok(()) => return,
                    Err(panic) => {
                        // A panic after a long healthy run starts the backoff over.
                        if started.elapsed() > HEALTHY_RUN {
                            panics = 0;
                        }
                        panics += 1;
                        let after = super::backoff(panics);
                        tracing::error!(
                            task = what,
                            panic = ?panic_message(&*panic),
                            restart_in = ?after,
                            "a host task panicked; it starts again"
                        );
                        real_sleep(after).await;
                    }
                }
            }
        })
    }

    /// Ends every task of the group at its current await point, in the order they were
    /// spawned (paused ones too: an aborted task is dropped without being polled); tasks
    /// spawned later are aborted at once.
    pub(super) fn abort_all(&self) {
        self.aborted.store(true, Ordering::Release);
        let running = std::mem::take(&mut *self.running.lock().unwrap_or_else(|p| p.into_inner()));
        for handle in running.into_values() {
            handle.abort();
        }
    }

    /// Stops polling the group's tasks until [`resume`](Self::resume).
    pub(super) fn pause(&self) {
        self.gate.paused.store(true, Ordering::Release);
    }

    /// Polls the group's tasks again.
    pub(super) fn resume(&self) {
        self.gate.paused.store(false, Ordering::Release);
        let held = std::mem::take(&mut *self.gate.held.lock().unwrap_or_else(|p| p.into_inner()));
        for waker in held {
            waker.wake();
        }
    }

    /// How many of the group's tasks are running.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

struct Done {
    group: std::sync::Weak<TaskGroup>,
    key: u64,
}

impl Drop for Done {
    fn drop(&mut self) {
        if let Some(group) = self.group.upgrade() {
            group
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&self.key);
        }
    }
}

/// A task that is not polled while its group is paused.
struct Gated {
    gate: std::sync::Arc<Gate>,
    future: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Future for Gated {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.gate.paused.load(Ordering::Acquire) {
            let mut held = self.gate.held.lock().unwrap_or_else(|p| p.into_inner());
            // Checked again under the lock: a resume in between has already woken the held.
            if self.gate.paused.load(Ordering::Acquire) {
                held.push(cx.waker().clone());
                return Poll::Pending;
            }
        }
        self.future.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn aborting_the_group_ends_every_task_at_its_await_point() {
        let group = Arc::new(TaskGroup::default());
        let finished = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let finished = finished.clone();
            group.spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        tokio::task::yield_now().await;
        assert_eq!(group.len(), 3);
        group.abort_all();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(finished.load(Ordering::SeqCst), 0);
        assert_eq!(group.len(), 0);
        // Nothing starts after a crash.
        let late = group.spawn(async {});
        assert!(late.await.unwrap_err().is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarting_task_starts_again_after_each_panic_until_it_ends() {
        let group = Arc::new(TaskGroup::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let task = group.spawn_restarting("test task", move || {
            let runs = counted.clone();
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) < 3 {
                    panic!("a bug");
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the task ends once a run ends without a panic")
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        assert_eq!(group.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_leaves_the_group() {
        let group = Arc::new(TaskGroup::default());
        let task = group.spawn(async { panic!("a bug") });
        // Caught and logged: the handle reports a normal end.
        task.await.unwrap();
        assert_eq!(group.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_group_is_not_polled_until_resumed() {
        let group = Arc::new(TaskGroup::default());
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = ticks.clone();
        group.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        tokio::time::sleep(Duration::from_millis(55)).await;
        group.pause();
        let before = ticks.load(Ordering::SeqCst);
        assert!(before >= 4, "ticked {before} times");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(ticks.load(Ordering::SeqCst) <= before + 1);
        group.resume();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(ticks.load(Ordering::SeqCst) > before + 5);
    }
}
