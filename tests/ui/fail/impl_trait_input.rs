use durable::prelude::*;

#[activity]
async fn say_hello(_ctx: ActivityContext, city: impl Into<String>) -> Result<String, Error> {
    Ok(city.into())
}

fn main() {}
