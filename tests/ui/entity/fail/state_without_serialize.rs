use durable::prelude::*;
use serde::Deserialize;

#[derive(Default, Deserialize)]
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
