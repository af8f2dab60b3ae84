use durable::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Greeter {
    name: String,
}

#[entity]
impl Greeter {
    pub fn rename(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }
}

fn main() {}
