use durable::prelude::*;
use serde::{Deserialize, Serialize};

pub struct Summary {
    pub count: usize,
}

#[derive(Default, Serialize, Deserialize)]
pub struct Cart {
    skus: Vec<String>,
}

#[entity]
impl Cart {
    pub fn summary(&self) -> Summary {
        Summary {
            count: self.skus.len(),
        }
    }
}

fn main() {}
