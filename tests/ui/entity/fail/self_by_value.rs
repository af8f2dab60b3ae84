use durable::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

#[entity]
impl Counter {
    pub fn into_value(self) -> i64 {
        self.value
    }

    pub fn boxed(self: Box<Self>) -> i64 {
        self.value
    }
}

fn main() {}
