use std::rc::Rc;

use durable::prelude::*;

async fn yield_now() {}

#[activity]
async fn count(_ctx: ActivityContext, n: u32) -> Result<u32, Error> {
    let shared = Rc::new(n);
    yield_now().await;
    Ok(*shared)
}

fn main() {}
