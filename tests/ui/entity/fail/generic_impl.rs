use durable::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Register<T> {
    value: T,
}

#[entity]
impl<T: Clone> Register<T> {
    pub fn get(&self) -> T {
        self.value.clone()
    }
}

fn main() {}
