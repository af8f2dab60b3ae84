//! Entity to entity: usage counters alert a monitor entity when they cross 100, once per
//! crossing.
//!
//! Three customers make API calls, reported concurrently in small batches. `acme` and
//! `globex` go past 100, `initech` stays below. Then `acme` starts a new billing period
//! (`reset`) and crosses again. The monitor ends up with exactly three alerts.
//!
//! ```sh
//! cargo run -p durable-examples --example entity_to_entity
//! ```

use durable::prelude::*;
use durable_examples::entity_to_entity::{
    self, MONITOR_KEY, THRESHOLD, ThresholdMonitor, UsageCounter,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    durable_examples::init_logging();
    let runtime = entity_to_entity::register(Runtime::builder())
        .store(durable::store::Memory::new())
        .start()
        .await?;
    let client = runtime.client();

    // (customer, calls per batch, batches), all sent at once.
    let traffic = [("acme", 7, 30), ("globex", 13, 10), ("initech", 9, 11)];
    let mut senders = Vec::new();
    for (customer, calls, batches) in traffic {
        for _ in 0..batches {
            let client = client.clone();
            senders.push(tokio::spawn(async move {
                client
                    .signal_entity::<UsageCounter>(customer)
                    .add(calls)
                    .await
            }));
        }
    }
    for sender in senders {
        sender.await.map_err(|e| Error::msg(e.to_string()))??;
    }
    runtime.idle().await;
    for (customer, ..) in traffic {
        let counter = client.read_entity::<UsageCounter>(customer).await?;
        println!(
            "{customer:<8} {:>4} calls",
            counter.unwrap_or_default().value
        );
    }
    print_alerts(&client, "after the first period").await?;

    // A new billing period for acme: back to zero, then past the threshold again.
    client.signal_entity::<UsageCounter>("acme").reset().await?;
    client
        .signal_entity::<UsageCounter>("acme")
        .add(THRESHOLD + 5)
        .await?;
    runtime.idle().await;
    print_alerts(&client, "after acme's reset and new traffic").await?;

    runtime.shutdown().await;
    Ok(())
}

async fn print_alerts(client: &Client, when: &str) -> Result<(), Error> {
    let monitor = client
        .read_entity::<ThresholdMonitor>(MONITOR_KEY)
        .await?
        .unwrap_or_default();
    println!(
        "monitor `{MONITOR_KEY}` {when}: {} alert(s)",
        monitor.alerts.len()
    );
    for alert in &monitor.alerts {
        println!(
            "  {} crossed {THRESHOLD} (at {})",
            alert.counter, alert.value
        );
    }
    Ok(())
}
