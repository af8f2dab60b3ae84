use durable::prelude::*;

#[activity(name = "SayHello", name = "Greet")]
async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
    Ok(city)
}

fn main() {}
