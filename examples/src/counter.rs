//! **Counter**: the smallest entity — one number, addressable by key, changed one operation at
//! a time.
//!
//! Each [`Counter`] is an entity `@counter@{key}`, created by its first operation. `add` and
//! `reset` change it; `get` reads it (a `&self` operation, which never writes state). Its state
//! is stored as a bare JSON number, so the HTTP API shows a counter at 10 as `10`:
//!
//! ```text
//! POST entities/counter/demo?op=add  (body 5)  ──► @counter@demo: 5
//! POST entities/counter/demo?op=add  (body 5)  ──► @counter@demo: 10
//! GET  entities/counter/demo                   ──► 10
//! ```
//!
//! From Rust, a client signals it with `client.signal_entity::<Counter>("demo").add(5)` and
//! reads it with `client.read_entity::<Counter>("demo")`; an orchestration calls it two-way
//! with `ctx.call_entity::<Counter>("demo").get()`.

use durable::RuntimeBuilder;
use durable::prelude::*;
use serde::{Deserialize, Serialize};

/// A signed count. Serialized as the bare number (`10`, not `{"value":10}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Counter {
    /// The current count (0 for a new counter).
    pub value: i64,
}

#[entity]
impl Counter {
    /// Adds `amount` (negative to subtract).
    pub fn add(&mut self, amount: i64) {
        self.value += amount;
    }

    /// The current count.
    pub fn get(&self) -> i64 {
        self.value
    }

    /// Sets the count back to zero.
    pub fn reset(&mut self) {
        self.value = 0;
    }
}

/// Registers the [`Counter`] entity.
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder.register_entity::<Counter>()
}
