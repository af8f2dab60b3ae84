use durable::prelude::*;

/// Neither a `std::error::Error` nor convertible into `durable::Error`.
#[derive(Debug)]
pub struct Oops;

#[activity]
async fn fragile(_ctx: ActivityContext, n: u32) -> Result<u32, Oops> {
    if n == 0 { Err(Oops) } else { Ok(n) }
}

fn main() {}
