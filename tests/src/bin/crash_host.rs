//! A host the crash tests kill with SIGKILL at random moments: it runs a fixed workload of
//! orchestrations and entity signals on a SQLite file until everything has completed.
//!
//! `crash-host <db> <instances>`: starts instances `c0..c{n-1}` (those not yet started), then
//! runs until all have completed and exits 0.

use std::time::Duration;

use durable::prelude::*;
use durable::store::Sqlite;
use durable_tests::crash::{CrashCounter, crash_chain, step};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(n)) = (args.next(), args.next()) else {
        eprintln!("usage: crash-host <db> <instances>");
        std::process::exit(2);
    };
    let n: usize = n.parse().map_err(Error::from)?;
    let runtime = Runtime::builder()
        .store(Sqlite::open(&db)?)
        .register(crash_chain)
        .register(step)
        .register_entity::<CrashCounter>()
        .lease_duration(Duration::from_millis(500))
        .max_concurrent_orchestrations(4)
        .start()
        .await?;
    let client = runtime.client();
    for i in 0..n {
        let id = format!("c{i}");
        if client.status(&id).await?.is_none() {
            client.start(crash_chain, 60).instance_id(id).await?;
        }
    }
    for i in 0..n {
        let id = format!("c{i}");
        client
            .wait_for_completion(&id, Duration::from_secs(120))
            .await?;
    }
    runtime.shutdown().await;
    Ok(())
}
