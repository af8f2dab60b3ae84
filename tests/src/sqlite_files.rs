//! A small workflow over every kind of record a SQLite file holds (instances, histories,
//! activities, events, an entity): the SQLite store's tests write files with it, close them,
//! and open them again.

use durable::prelude::*;
use durable::store::Sqlite;
use durable::testing::TestRuntime;
use serde::{Deserialize, Serialize};

/// Shouts a word.
#[activity]
pub async fn shout(_ctx: ActivityContext, text: String) -> Result<String, Error> {
    Ok(text.to_uppercase())
}

/// Shouts every word, waits for the event `Go`, counts the words on the entity `Tally` `words`
/// and returns the shouted words and the event's text.
#[orchestrator]
pub async fn pipeline(ctx: OrchestrationContext, words: Vec<String>) -> Result<String, Error> {
    let loud = ctx
        .when_all(words.into_iter().map(|w| ctx.call_activity(shout, w)))
        .await?;
    let go: String = ctx.wait_for_event("Go").await?;
    ctx.signal_entity::<Tally>("words").add(loud.len() as i64);
    Ok(format!("{} {go}", loud.join(" ")))
}

/// A count of words.
#[derive(Default, Serialize, Deserialize)]
pub struct Tally {
    n: i64,
}

#[entity]
impl Tally {
    /// Adds `by`.
    pub fn add(&mut self, by: i64) {
        self.n += by;
    }
}

/// A runtime builder on `store` with the workflow registered.
pub fn builder(store: Sqlite) -> durable::RuntimeBuilder {
    Runtime::builder()
        .store(store)
        .register(pipeline)
        .register(shout)
        .register_entity::<Tally>()
}

/// Every instance's history, as the store reads it.
pub async fn histories(
    runtime: &TestRuntime,
    ids: &[InstanceId],
) -> Vec<Vec<durable::history::HistoryEvent>> {
    let mut all = Vec::new();
    for id in ids {
        let status = runtime.client().status_with_history(id).await.unwrap();
        all.push(status.unwrap().history.unwrap());
    }
    all
}
