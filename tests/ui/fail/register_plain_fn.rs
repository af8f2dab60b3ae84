use durable::prelude::*;

async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
    Ok(city)
}

fn main() {
    let _ = Runtime::builder().register(say_hello);
}
