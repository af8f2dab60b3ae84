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

    #[allow(non_snake_case)]
    pub fn Add(&mut self, amount: i64) {
        self.value += amount;
    }
}

fn main() {}
