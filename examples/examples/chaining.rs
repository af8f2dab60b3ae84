//! Function chaining: three activity calls in a row.
//!
//! ```sh
//! cargo run -p durable-examples --example chaining
//! ```

use std::time::Duration;

use durable::prelude::*;
use durable_examples::chaining::{self, hello_cities};

#[tokio::main]
async fn main() -> Result<(), Error> {
    durable_examples::init_logging();
    let runtime = chaining::register(Runtime::builder())
        .store(durable::store::Memory::new())
        .start()
        .await?;
    let client = runtime.client();

    let id = client.start(hello_cities, ()).await?;
    println!("started hello_cities as {id}");

    let status = client
        .wait_for_completion(&id, Duration::from_secs(10))
        .await?;
    println!("{}:", status.runtime_status);
    for greeting in status.output::<Vec<String>>()? {
        println!("  {greeting}");
    }

    runtime.shutdown().await;
    Ok(())
}
