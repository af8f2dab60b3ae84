//! The host's task group: every task a host spawns (dispatchers, the lease and partition
//! keepers, activities and the turns their results start) goes through it, so the host can be
//! stopped as a whole at whatever await point each task is (a crash), or paused (its tasks are
//! no longer polled, as in a long stall of the process) and resumed.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use tokio::task::{AbortHandle, JoinHandle};

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
            gated.await;
        });
        if self.aborted.load(Ordering::Acquire) {
            handle.abort();
        } else {
            running.insert(key, handle.abort_handle());
        }
        handle
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
