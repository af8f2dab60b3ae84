use durable::prelude::*;

#[activity]
pub struct SayHello {
    city: String,
}

fn main() {}
