use durable::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

pub trait Add {
    fn add(&mut self, amount: i64);
}

#[entity]
impl Add for Counter {
    fn add(&mut self, amount: i64) {
        self.value += amount;
    }
}

fn main() {}
