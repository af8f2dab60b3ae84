//! Fan-out/fan-in: square 1..=20 in parallel activities and add the squares up.
//!
//! ```sh
//! cargo run -p durable-examples --example fan_out_fan_in
//! ```

use std::time::{Duration, Instant};

use durable::prelude::*;
use durable_examples::fan_out_fan_in::{self, expected_sum, sum_of_squares};

const ITEMS: u32 = 20;

#[tokio::main]
async fn main() -> Result<(), Error> {
    durable_examples::init_logging();
    let runtime = fan_out_fan_in::register(Runtime::builder())
        .store(durable::store::Memory::new())
        .start()
        .await?;
    let client = runtime.client();

    let started = Instant::now();
    let id = client.start(sum_of_squares, ITEMS).await?;
    println!("started sum_of_squares({ITEMS}) as {id}: one `square` activity per item");

    let status = client
        .wait_for_completion(&id, Duration::from_secs(10))
        .await?;
    let sum: u64 = status.output()?;
    println!(
        "{} in {:?}: 1² + 2² + … + {ITEMS}² = {sum} (expected {})",
        status.runtime_status,
        started.elapsed(),
        expected_sum(ITEMS)
    );

    runtime.shutdown().await;
    Ok(())
}
