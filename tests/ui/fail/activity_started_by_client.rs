use durable::prelude::*;

#[activity]
async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
    Ok(city)
}

async fn start(client: Client) -> Result<InstanceId, Error> {
    client.start(say_hello, "Tokyo".to_string()).await
}

fn main() {}
