use durable::prelude::*;

#[activity]
async unsafe fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
    Ok(city)
}

fn main() {}
