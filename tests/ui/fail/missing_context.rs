use durable::prelude::*;

#[activity]
async fn say_hello(city: String) -> Result<String, Error> {
    Ok(city)
}

fn main() {}
