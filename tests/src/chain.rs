//! A chain of entity calls from one orchestration: each turn gives the next one its work (the
//! entity's, then the orchestration's), which a store that reads with the commit hands over.
//! Shared by the host's tests on every store.

use std::sync::Arc;

use durable::prelude::*;
use durable::store::Store;
use durable::testing::TestRuntime;
use serde::{Deserialize, Serialize};

use crate::WAIT;
use crate::counted::{Counted, Counts};

/// A counter.
#[derive(Default, Serialize, Deserialize, Debug)]
pub struct Steps {
    value: i64,
}

#[entity]
impl Steps {
    /// Adds `amount`.
    pub fn add(&mut self, amount: i64) {
        self.value += amount;
    }

    /// The count.
    pub fn get(&self) -> i64 {
        self.value
    }
}

/// Calls counter `key` `times` times, one call after the other; returns its count.
#[orchestrator]
pub async fn count_up(
    ctx: OrchestrationContext,
    (key, times): (String, u32),
) -> Result<i64, Error> {
    for _ in 0..times {
        ctx.call_entity::<Steps>(key.clone()).add(1).await?;
    }
    ctx.call_entity::<Steps>(key).get().await
}

/// A builder with the chain's orchestration and entity.
pub fn builder() -> durable::RuntimeBuilder {
    Runtime::builder()
        .register(count_up)
        .register_entity::<Steps>()
}

/// Runs `count_up` 100 times on `store` and returns (work read by commits, work read alone).
pub async fn chain_reads(store: Arc<dyn Store>) -> (usize, usize) {
    let counts = run(store).await;
    (counts.handed(), counts.items())
}

/// Runs `count_up` 100 times on `store` (about 200 turns, each giving the next its work) and
/// returns what the store did meanwhile.
pub async fn run(store: Arc<dyn Store>) -> Arc<Counts> {
    let (store, counts) = Counted::wrap(store);
    let rt = TestRuntime::start(builder().shared_store(store))
        .await
        .unwrap();
    let client = rt.client();
    let id = client
        .start(count_up, ("chain".to_string(), 100))
        .await
        .unwrap();
    let status = client.wait_for_completion(&id, WAIT).await.unwrap();
    assert_eq!(status.output::<i64>().unwrap(), 100);
    rt.shutdown().await;
    counts
}
