//! A client signals an entity through its typed proxy and reads its committed state.

use durable::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

#[entity]
impl Counter {
    pub fn add(&mut self, amount: i64) {
        self.value += amount;
    }

    pub fn get(&self) -> i64 {
        self.value
    }
}

async fn bump(client: &Client) -> Result<Option<i64>, Error> {
    client.signal_entity::<Counter>("k").add(5).await?;
    client
        .signal_entity::<Counter>(String::from("k"))
        .get()
        .await?;
    let state: Option<Counter> = client.read_entity::<Counter>("k").await?;
    client.signal_entity::<Counter>("k").delete().await?;
    Ok(state.map(|counter| counter.value))
}

/// The proxies' futures are `Send`, so they can be spawned.
fn assert_send<T: Send>(_: T) {}

#[allow(dead_code)]
fn spawnable(client: &Client) {
    assert_send(bump(client));
    assert_send(client.signal_entity::<Counter>("k").add(1));
}

fn main() {}
