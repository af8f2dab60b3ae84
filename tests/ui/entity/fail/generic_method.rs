use durable::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

#[entity]
impl Counter {
    pub fn add<T: Into<i64>>(&mut self, amount: T) {
        self.value += amount.into();
    }
}

fn main() {}
