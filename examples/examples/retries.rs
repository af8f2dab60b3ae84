//! Retries: a flaky activity that succeeds on its third attempt, and one that never does.
//!
//! ```sh
//! cargo run -p durable-examples --example retries
//! ```

use std::time::Duration;

use durable::history::EventKind;
use durable::prelude::*;
use durable_examples::retries::{self, charge_with_retry, upload_with_retry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    durable_examples::init_logging();
    let runtime = retries::register(Runtime::builder())
        .store(durable::store::Memory::new())
        .start()
        .await?;
    let client = runtime.client();
    let policy = retries::policy();
    println!("retry policy: {policy:?}\n");

    let upload = client
        .start(upload_with_retry, "q3-report.pdf".to_string())
        .await?;
    let charge = client.start(charge_with_retry, 4_200).await?;

    for (label, id) in [("upload_with_retry", upload), ("charge_with_retry", charge)] {
        let status = client
            .wait_for_completion(&id, Duration::from_secs(10))
            .await?;
        println!("{label} ({id}): {}", status.runtime_status);

        // The attempts, as the history recorded them.
        let history = client
            .status_with_history(&id)
            .await?
            .and_then(|s| s.history)
            .unwrap_or_default();
        for event in &history {
            if let EventKind::TaskFailed { failure, .. } = &event.kind {
                println!("  attempt failed: {}", failure.message);
            }
        }
        match status.output::<String>() {
            Ok(output) => println!("  output: {output}\n"),
            Err(_) => println!(
                "  failure: {}\n",
                status.failure.map(|f| f.message).unwrap_or_default()
            ),
        }
    }

    runtime.shutdown().await;
    Ok(())
}
