//! Time as the runtime sees it, behind a trait so tests control it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::future::BoxFuture;

/// The source of "now" for orchestration time, timers and status timestamps.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Resolves once `now() >= at`.
    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<()>;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<()> {
        Box::pin(async move {
            // Re-check after waking: the wall clock may have been adjusted meanwhile.
            loop {
                let left = (at - Utc::now()).to_std().unwrap_or_default();
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left).await;
            }
        })
    }
}

/// A clock that only moves when told to: tests start a 72-hour wait and `advance` past it at
/// once.
///
/// ```
/// use std::time::Duration;
/// use durable::testing::ManualClock;
/// use durable::Clock;
///
/// let clock = ManualClock::new();
/// let before = clock.now();
/// clock.advance(Duration::from_secs(3600));
/// assert_eq!((clock.now() - before).num_seconds(), 3600);
/// ```
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

struct ManualInner {
    now: Mutex<DateTime<Utc>>,
    changed: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at a fixed, round instant (2030-01-01T00:00:00Z).
    pub fn new() -> Self {
        let start = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .expect("a valid timestamp")
            .with_timezone(&Utc);
        Self::starting_at(start)
    }

    /// A clock standing at `start`.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        let (changed, _) = watch::channel(start);
        ManualClock {
            inner: Arc::new(ManualInner {
                now: Mutex::new(start),
                changed,
            }),
        }
    }

    /// The clock's current time.
    pub fn now(&self) -> DateTime<Utc> {
        *self.inner.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves time forward by `by`, waking everything due.
    pub fn advance(&self, by: Duration) {
        let mut now = self.inner.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += chrono::TimeDelta::from_std(by).unwrap_or(chrono::TimeDelta::MAX);
        self.inner.changed.send_replace(*now);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        ManualClock::now(self)
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<()> {
        let mut rx = self.inner.changed.subscribe();
        Box::pin(async move {
            while *rx.borrow_and_update() < at {
                if rx.changed().await.is_err() {
                    // The clock is gone; nothing will ever advance it.
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

/// Real-time helper for waits that are about process liveness, not orchestration time.
pub(crate) fn real_sleep(d: Duration) -> tokio::time::Sleep {
    tokio::time::sleep(d)
}
