use durable::prelude::*;
use serde::{Deserialize, Serialize};

pub struct Item {
    pub sku: String,
}

#[derive(Default, Serialize, Deserialize)]
pub struct Cart {
    skus: Vec<String>,
}

#[entity]
impl Cart {
    pub fn add(&mut self, item: Item) {
        self.skus.push(item.sku);
    }
}

fn main() {}
