use durable::prelude::*;

struct Greeter;

impl Greeter {
    #[activity]
    async fn say_hello(&self, _ctx: ActivityContext, city: String) -> Result<String, Error> {
        Ok(city)
    }
}

fn main() {}
