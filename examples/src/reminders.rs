//! **Scheduled signal**: an entity that wakes itself up later, with no orchestration and no
//! timer running in memory.
//!
//! A [`Reminder`] (key: whose reminder it is) is told to `schedule` a message some time ahead.
//! It writes the reminder down as pending and signals *itself* with
//! `ctx.signal_entity_at::<Reminder>(key, due).fire(..)`. That signal is an ordinary queued
//! message that stays invisible until `due`; no host holds a timer for it, so it survives
//! restarts and costs nothing while it waits. At `due`, `fire` runs and moves the reminder
//! from pending to fired, with the time it fired.
//!
//! A reminder can be cancelled or replaced before it fires. The old signal cannot be
//! withdrawn from the queue, so each `schedule` and `cancel` bumps a generation number and
//! `fire` carries the number it was scheduled with: a signal from an outdated generation is
//! recognised and ignored.
//!
//! A client can schedule a signal too: sent through
//! `client.signal_entity_at::<Reminder>(key, at)`, even the `schedule` operation itself is
//! delivered only at `at`.
//!
//! ```text
//! schedule("stand up", 1 s) ──► pending ──(signal to itself, visible at due)──► fire ──► fired
//!                                  │
//!                         cancel / schedule again: generation + 1, the old signal is ignored
//! ```

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use durable::RuntimeBuilder;
use durable::prelude::*;
use serde::{Deserialize, Serialize};

/// What [`Reminder::schedule`] takes: the message, and how long from now it is due.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderRequest {
    /// The text to deliver.
    pub message: String,
    /// How long from now, in milliseconds.
    pub delay_ms: u64,
}

impl ReminderRequest {
    /// A reminder of `message` due `delay` from now (whole milliseconds).
    pub fn new(message: impl Into<String>, delay: Duration) -> Self {
        ReminderRequest {
            message: message.into(),
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// A reminder that has been scheduled and has not fired yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingReminder {
    /// The text to deliver.
    pub message: String,
    /// When it is due.
    pub due: DateTime<Utc>,
    /// The generation it was scheduled in.
    pub generation: u64,
}

/// A reminder that fired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiredReminder {
    /// The text delivered.
    pub message: String,
    /// When it was due.
    pub due: DateTime<Utc>,
    /// When it actually fired (never before `due`).
    pub fired_at: DateTime<Utc>,
}

/// Someone's reminder: at most one pending, and the log of those that fired.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    /// The reminder waiting for its time, if any.
    pub pending: Option<PendingReminder>,
    /// The reminders that fired, oldest first.
    pub fired: Vec<FiredReminder>,
    /// Bumped by every `schedule` and `cancel`; a `fire` from an older generation is ignored.
    pub generation: u64,
}

#[entity]
impl Reminder {
    /// Schedules `request.message` to fire `request.delay_ms` from now, replacing any pending
    /// reminder. Returns when it is due.
    pub fn schedule(&mut self, ctx: &EntityContext, request: ReminderRequest) -> DateTime<Utc> {
        self.generation += 1;
        let delay = TimeDelta::milliseconds(i64::try_from(request.delay_ms).unwrap_or(i64::MAX));
        let due = ctx.current_utc_datetime() + delay;
        self.pending = Some(PendingReminder {
            message: request.message,
            due,
            generation: self.generation,
        });
        ctx.signal_entity_at::<Reminder>(ctx.id().key(), due)
            .fire(self.generation);
        due
    }

    /// Fires the pending reminder of `generation`: the delayed signal [`schedule`] sends
    /// itself. Returns whether anything fired (`false` for a reminder cancelled or replaced
    /// since).
    ///
    /// [`schedule`]: Reminder::schedule
    pub fn fire(&mut self, ctx: &EntityContext, generation: u64) -> bool {
        match self.pending.take() {
            Some(pending) if pending.generation == generation => {
                self.fired.push(FiredReminder {
                    message: pending.message,
                    due: pending.due,
                    fired_at: ctx.current_utc_datetime(),
                });
                true
            }
            other => {
                // Outdated: keep whatever is pending now.
                self.pending = other;
                false
            }
        }
    }

    /// Cancels the pending reminder; returns whether there was one.
    pub fn cancel(&mut self) -> bool {
        self.generation += 1;
        self.pending.take().is_some()
    }
}

/// Registers the [`Reminder`] entity.
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder.register_entity::<Reminder>()
}
