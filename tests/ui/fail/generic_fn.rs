use durable::prelude::*;

#[activity]
async fn echo<T: Send>(_ctx: ActivityContext, value: T) -> Result<T, Error> {
    Ok(value)
}

fn main() {}
