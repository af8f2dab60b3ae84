use durable::prelude::*;

#[activity(name = SayHello)]
async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
    Ok(city)
}

fn main() {}
