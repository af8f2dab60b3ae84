//! Scheduled signals: a reminder entity wakes itself up 1.5 seconds later.
//!
//! `alice` schedules a reminder 1.5 s ahead; the entity signals itself for that time and the
//! program watches it go from pending to fired. `bob` schedules one for 1 s and cancels it at
//! once: its signal still arrives, but it is recognised as outdated and nothing fires.
//!
//! ```sh
//! cargo run -p durable-examples --example reminders
//! ```

use std::time::{Duration, Instant};

use durable::prelude::*;
use durable_examples::reminders::{self, Reminder, ReminderRequest};

#[tokio::main]
async fn main() -> Result<(), Error> {
    durable_examples::init_logging();
    let runtime = reminders::register(Runtime::builder())
        .store(durable::store::Memory::new())
        .start()
        .await?;
    let client = runtime.client();

    let started = Instant::now();
    client
        .signal_entity::<Reminder>("alice")
        .schedule(ReminderRequest::new(
            "stand-up in 5 minutes",
            Duration::from_millis(1500),
        ))
        .await?;
    client
        .signal_entity::<Reminder>("bob")
        .schedule(ReminderRequest::new(
            "water the plants",
            Duration::from_secs(1),
        ))
        .await?;
    client.signal_entity::<Reminder>("bob").cancel().await?;
    println!("alice: reminder scheduled 1.5 s ahead; bob: scheduled 1 s ahead, then cancelled");

    // Watch alice's reminder until it fires.
    let mut last = String::new();
    let fired = loop {
        let alice = client
            .read_entity::<Reminder>("alice")
            .await?
            .unwrap_or_default();
        let now = match (&alice.pending, alice.fired.last()) {
            (_, Some(fired)) => break fired.clone(),
            (Some(pending), None) => format!("pending, due {}", pending.due.format("%T%.3f")),
            (None, None) => "not created yet".to_string(),
        };
        if now != last {
            println!("{:>7.3} s  alice: {now}", started.elapsed().as_secs_f64());
            last = now;
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err(Error::msg("the reminder did not fire within 10 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "{:>7.3} s  alice: fired \"{}\" at {} ({} ms after it was due)",
        started.elapsed().as_secs_f64(),
        fired.message,
        fired.fired_at.format("%T%.3f"),
        (fired.fired_at - fired.due).num_milliseconds()
    );

    let bob = client
        .read_entity::<Reminder>("bob")
        .await?
        .unwrap_or_default();
    println!(
        "{:>7.3} s  bob: {} fired, {} pending (cancelled before it was due)",
        started.elapsed().as_secs_f64(),
        bob.fired.len(),
        usize::from(bob.pending.is_some())
    );

    runtime.shutdown().await;
    Ok(())
}
