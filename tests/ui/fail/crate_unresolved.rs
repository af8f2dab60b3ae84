use durable::prelude::*;

mod my_sdk {}

#[activity(crate = "crate::my_sdk::durable")]
async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
    Ok(city)
}

fn main() {}
