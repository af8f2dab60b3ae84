//! Human interaction: wait for an approval event, with a durable timeout that escalates.
//!
//! Starts two approval workflows. The first is answered by this program after a moment, the
//! way a person clicking "approve" would; the second is left alone and escalates when its
//! 2-second timeout passes.
//!
//! ```sh
//! cargo run -p durable-examples --example approval
//! ```

use std::time::Duration;

use durable::prelude::*;
use durable_examples::approval::{self, APPROVAL_EVENT, approval_workflow};

#[tokio::main]
async fn main() -> Result<(), Error> {
    durable_examples::init_logging();
    let runtime = approval::register(Runtime::builder())
        .store(durable::store::Memory::new())
        .start()
        .await?;
    let client = runtime.client();
    let wait = Duration::from_secs(10);

    // 1. Somebody answers.
    let id = client.start(approval_workflow, 60).await?;
    println!("[answered] started {id} with a 60 s timeout");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = client.status(&id).await?.and_then(|s| s.custom_status);
    println!("[answered] custom status: {}", waiting.unwrap_or_default());
    client.raise_event(&id, APPROVAL_EVENT, true).await?;
    println!("[answered] raised {APPROVAL_EVENT}: true");
    let status = client.wait_for_completion(&id, wait).await?;
    println!(
        "[answered] {} -> {}",
        status.runtime_status,
        status.output::<String>()?
    );

    // 2. Nobody answers.
    let id = client.start(approval_workflow, 2).await?;
    println!("[ignored]  started {id} with a 2 s timeout; not answering");
    let status = client.wait_for_completion(&id, wait).await?;
    println!(
        "[ignored]  {} -> {}",
        status.runtime_status,
        status.output::<String>()?
    );

    runtime.shutdown().await;
    Ok(())
}
