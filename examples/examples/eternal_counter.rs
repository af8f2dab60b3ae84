//! Eternal orchestration: count to 10 with `continue_as_new`, keeping the history short.
//!
//! ```sh
//! cargo run -p durable-examples --example eternal_counter
//! ```

use std::time::Duration;

use durable::prelude::*;
use durable_examples::eternal_counter::{CounterState, eternal_counter};

#[tokio::main]
async fn main() -> Result<(), Error> {
    durable_examples::init_logging();
    let runtime = durable_examples::eternal_counter::register(Runtime::builder())
        .store(durable::store::Memory::new())
        .start()
        .await?;
    let client = runtime.client();

    let id = client
        .start(eternal_counter, CounterState::new(10, 100))
        .await?;
    println!("started eternal_counter as {id}: counting to 10, one step every 100 ms");

    // Watch the count go up: each step is a new execution of the same instance.
    let mut last_seen = None;
    let status = loop {
        let status = client
            .status(&id)
            .await?
            .ok_or_else(|| Error::msg("the instance disappeared"))?;
        let count: Option<u64> = status.custom_status()?;
        if count.is_some() && count != last_seen {
            println!("  count = {}", count.unwrap_or_default());
            last_seen = count;
        }
        if status.runtime_status.is_terminal() {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "{}: final count {}",
        status.runtime_status,
        status.output::<u64>()?
    );

    let history = client
        .status_with_history(&id)
        .await?
        .and_then(|s| s.history)
        .unwrap_or_default();
    println!(
        "history of the last execution: {} events ({})",
        history.len(),
        history
            .iter()
            .map(|e| e.kind.name())
            .collect::<Vec<_>>()
            .join(", ")
    );

    runtime.shutdown().await;
    Ok(())
}
