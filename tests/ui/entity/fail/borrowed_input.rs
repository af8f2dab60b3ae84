use durable::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Greeter {
    name: String,
}

#[entity]
impl Greeter {
    pub fn rename(&mut self, name: &str) {
        self.name = name.to_string();
    }
}

fn main() {}
