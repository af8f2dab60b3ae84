use durable::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

#[entity]
impl Counter {
    pub fn get(&self) -> i64 {
        self.value
    }

    pub fn starting_at(value: i64) -> Self {
        Counter { value }
    }
}

fn main() {}
