use durable::prelude::*;

#[activity]
async fn add(_ctx: ActivityContext, a: i64, b: i64) -> Result<i64, Error> {
    Ok(a + b)
}

fn main() {}
