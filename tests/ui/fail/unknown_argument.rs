use durable::prelude::*;

#[activity(retries = 3)]
async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
    Ok(city)
}

fn main() {}
