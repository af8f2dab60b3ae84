use durable::prelude::*;
use serde::{Deserialize, Serialize};

#[entity]
#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

fn main() {}
