//! Retry policies for activities and sub-orchestrations.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::error::Error;

type Predicate = Arc<dyn Fn(&Error) -> bool + Send + Sync>;

/// How a failed activity or sub-orchestration is retried. Every wait between attempts is a
/// durable timer, so a retry schedule survives restarts.
///
/// ```
/// use std::time::Duration;
/// use durable::RetryPolicy;
///
/// let policy = RetryPolicy::new(5, Duration::from_secs(1))
///     .backoff_coefficient(2.0)
///     .max_retry_interval(Duration::from_secs(30))
///     .retry_timeout(Duration::from_secs(300))
///     .handle(|err| !err.message().contains("card declined"));
/// assert_eq!(policy.max_attempts(), 5);
/// ```
#[derive(Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    first_retry_interval: Duration,
    backoff_coefficient: f64,
    max_retry_interval: Duration,
    pub(crate) retry_timeout: Option<Duration>,
    handle: Option<Predicate>,
}

impl RetryPolicy {
    /// At most `max_attempts` attempts in all (the first call included), waiting
    /// `first_retry_interval` before the first retry.
    pub fn new(max_attempts: u32, first_retry_interval: Duration) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            first_retry_interval,
            backoff_coefficient: 1.0,
            max_retry_interval: Duration::from_secs(6 * 24 * 3600),
            retry_timeout: None,
            handle: None,
        }
    }

    /// Multiplies the wait by this factor after each retry (1.0, the default, keeps it fixed).
    pub fn backoff_coefficient(mut self, coefficient: f64) -> Self {
        self.backoff_coefficient = if coefficient.is_finite() && coefficient >= 1.0 {
            coefficient
        } else {
            1.0
        };
        self
    }

    /// Caps the wait between attempts.
    pub fn max_retry_interval(mut self, interval: Duration) -> Self {
        self.max_retry_interval = interval;
        self
    }

    /// Gives up once this much orchestration time has passed since the first attempt.
    pub fn retry_timeout(mut self, timeout: Duration) -> Self {
        self.retry_timeout = Some(timeout);
        self
    }

    /// Retries only errors for which `predicate` returns true; others fail at once.
    pub fn handle(mut self, predicate: impl Fn(&Error) -> bool + Send + Sync + 'static) -> Self {
        self.handle = Some(Arc::new(predicate));
        self
    }

    /// The most attempts this policy makes.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before the next attempt after `attempts` failed ones, or `None` to give up.
    pub fn next_delay(&self, attempts: u32, err: &Error) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        if let Some(handle) = &self.handle
            && !handle(err)
        {
            return None;
        }
        let factor = self
            .backoff_coefficient
            .powi(attempts.saturating_sub(1) as i32);
        let secs = self.first_retry_interval.as_secs_f64() * factor;
        let delay = Duration::try_from_secs_f64(secs).unwrap_or(self.max_retry_interval);
        Some(delay.min(self.max_retry_interval))
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("first_retry_interval", &self.first_retry_interval)
            .field("backoff_coefficient", &self.backoff_coefficient)
            .field("max_retry_interval", &self.max_retry_interval)
            .field("retry_timeout", &self.retry_timeout)
            .field("handle", &self.handle.as_ref().map(|_| "<predicate>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::new(6, Duration::from_secs(1))
            .backoff_coefficient(2.0)
            .max_retry_interval(Duration::from_secs(5));
        let e = Error::msg("x");
        let delays: Vec<_> = (1..=6).map(|n| p.next_delay(n, &e)).collect();
        assert_eq!(
            delays,
            vec![
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(4)),
                Some(Duration::from_secs(5)),
                Some(Duration::from_secs(5)),
                None
            ]
        );
    }

    #[test]
    fn predicate_stops_retries() {
        let p = RetryPolicy::new(3, Duration::from_secs(1)).handle(|e| e.message() != "fatal");
        assert!(p.next_delay(1, &Error::msg("fatal")).is_none());
        assert!(p.next_delay(1, &Error::msg("flaky")).is_some());
    }
}
