use durable::prelude::*;
use serde::{Deserialize, Serialize};

/// Does not re-export `durable`.
mod my_sdk {}

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

#[entity(crate = "crate::my_sdk")]
impl Counter {
    pub fn get(&self) -> i64 {
        self.value
    }
}

fn main() {}
