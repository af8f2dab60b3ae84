use durable::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

#[entity]
impl Counter {
    pub fn get(&self) -> i64 {
        self.value
    }
}

fn main() {}
