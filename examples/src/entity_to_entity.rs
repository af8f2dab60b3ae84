//! **Entity to entity**: one entity reacts to its own state changes by messaging another.
//!
//! A [`UsageCounter`] counts API calls per customer (the entity key is the customer). When a
//! customer's count reaches [`THRESHOLD`], the counter signals the [`ThresholdMonitor`] entity
//! (key [`MONITOR_KEY`]), which keeps the list of alerts a billing team would look at.
//!
//! The check happens inside the counter's `add` operation, which sees the value before and
//! after the change. Because an entity runs one operation at a time, no two reports can both
//! believe they were the one to cross the line: the alert goes out **once per crossing**. If
//! the count drops back below the threshold (a refund, a `reset`) and climbs again, that is a
//! new crossing and a new alert.
//!
//! The signal is sent only when the operation succeeds, and it is committed together with the
//! counter's new value: a crash cannot leave a crossing without its alert, or an alert without
//! the crossing.
//!
//! ```text
//! client ──add(n)──► @usagecounter@acme ──(value crosses 100)──alert──► @thresholdmonitor@billing
//! ```

use durable::RuntimeBuilder;
use durable::prelude::*;
use serde::{Deserialize, Serialize};

/// The value at which a counter alerts its monitor.
pub const THRESHOLD: i64 = 100;

/// The key of the [`ThresholdMonitor`] every counter reports to.
pub const MONITOR_KEY: &str = "billing";

/// Whether going from `before` to `after` crosses [`THRESHOLD`] upwards: `before` is below it
/// and `after` is at or above it.
pub fn crosses_threshold(before: i64, after: i64) -> bool {
    before < THRESHOLD && after >= THRESHOLD
}

/// A customer's API-call count; the entity key is the customer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageCounter {
    /// The current count.
    pub value: i64,
}

#[entity]
impl UsageCounter {
    /// Adds `amount` calls (negative to correct a count). Signals the monitor when the count
    /// crosses [`THRESHOLD`] upwards.
    pub fn add(&mut self, ctx: &EntityContext, amount: i64) {
        let before = self.value;
        self.value += amount;
        if crosses_threshold(before, self.value) {
            ctx.signal_entity::<ThresholdMonitor>(MONITOR_KEY)
                .alert(ThresholdAlert {
                    counter: ctx.id().key().to_string(),
                    value: self.value,
                });
        }
    }

    /// Sets the count back to zero (a new billing period); the next crossing alerts again.
    pub fn reset(&mut self) {
        self.value = 0;
    }

    /// The current count.
    pub fn value(&self) -> i64 {
        self.value
    }
}

/// What a counter tells the monitor when it crosses the threshold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThresholdAlert {
    /// The key of the counter that crossed.
    pub counter: String,
    /// Its value right after the crossing (at least [`THRESHOLD`]).
    pub value: i64,
}

/// Collects the alerts of every counter, in the order they arrived.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThresholdMonitor {
    /// The alerts received, oldest first.
    pub alerts: Vec<ThresholdAlert>,
}

#[entity]
impl ThresholdMonitor {
    /// Records an alert (sent by a [`UsageCounter`]).
    pub fn alert(&mut self, alert: ThresholdAlert) {
        self.alerts.push(alert);
    }

    /// The alerts received so far.
    pub fn alerts(&self) -> Vec<ThresholdAlert> {
        self.alerts.clone()
    }
}

impl ThresholdMonitor {
    /// How many alerts came from the counter with this key.
    pub fn alerts_for(&self, counter: &str) -> usize {
        self.alerts.iter().filter(|a| a.counter == counter).count()
    }
}

/// Registers the [`UsageCounter`] and [`ThresholdMonitor`] entities.
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
        .register_entity::<UsageCounter>()
        .register_entity::<ThresholdMonitor>()
}
