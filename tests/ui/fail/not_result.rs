use durable::prelude::*;

#[activity]
async fn say_hello(_ctx: ActivityContext, city: String) -> String {
    city
}

fn main() {}
