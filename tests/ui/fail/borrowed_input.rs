use durable::prelude::*;

#[activity]
async fn say_hello(_ctx: ActivityContext, city: &str) -> Result<String, Error> {
    Ok(city.to_string())
}

fn main() {}
