use durable::prelude::*;

#[activity]
fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
    Ok(city)
}

fn main() {}
