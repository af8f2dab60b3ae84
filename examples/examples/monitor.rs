//! Monitor: poll a job on a durable timer until it is done, or give up at a deadline.
//!
//! Runs two monitors side by side: one whose job finishes on the third poll, and one whose job
//! never finishes in time.
//!
//! ```sh
//! cargo run -p durable-examples --example monitor
//! ```

use std::time::Duration;

use durable::prelude::*;
use durable_examples::monitor::{self, MonitorInput, MonitorProgress, job_monitor};

#[tokio::main]
async fn main() -> Result<(), Error> {
    durable_examples::init_logging();
    let runtime = monitor::register(Runtime::builder())
        .store(durable::store::Memory::new())
        .start()
        .await?;
    let client = runtime.client();

    // Poll every 300 ms; the first job is done on poll 3, the second would need 100 polls but
    // its monitor gives up after 1.5 s.
    let quick = MonitorInput {
        job_id: "quick-job".into(),
        done_on_poll: 3,
        poll_every_ms: 300,
        expires_after_ms: 5_000,
    };
    let slow = MonitorInput {
        job_id: "slow-job".into(),
        done_on_poll: 100,
        poll_every_ms: 300,
        expires_after_ms: 1_500,
    };

    let mut ids = Vec::new();
    for input in [quick, slow] {
        let job = input.job_id.clone();
        let id = client.start(job_monitor, input).await?;
        println!("monitoring {job} as {id}");
        ids.push((job, id));
    }

    for (job, id) in ids {
        let status = client
            .wait_for_completion(&id, Duration::from_secs(10))
            .await?;
        let progress: Option<MonitorProgress> = status.custom_status()?;
        let polls = progress.map_or(0, |p| p.polls);
        println!("{job}: {} after {polls} polls", status.output::<String>()?);
    }

    runtime.shutdown().await;
    Ok(())
}
