//! A host the crash tests kill with SIGKILL at random moments: it runs a fixed workload of
//! orchestrations and entity signals until everything has completed.
//!
//! `crash-host <store> <instances> [task-hub]`: `<store>` is a SQLite file path or a
//! `postgres://` URL. Starts instances `c0..c{n-1}` (those not yet started — several hosts may
//! race to do so), then runs until all have completed and exits 0. `DURABLE_CRASH_STEPS` sets
//! the steps per instance (default [`STEPS`]) and `DURABLE_CRASH_TURNS` the turns in flight
//! (default 4).

use std::sync::Arc;
use std::time::Duration;

use durable::ErrorKind;
use durable::prelude::*;
use durable::store::{Postgres, Sqlite, Store};
use durable_tests::crash::{CrashCounter, STEPS, crash_chain, step};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(spec), Some(n)) = (args.next(), args.next()) else {
        eprintln!("usage: crash-host <sqlite-path | postgres-url> <instances> [task-hub]");
        std::process::exit(2);
    };
    let n: usize = n.parse().map_err(Error::from)?;
    let setting = |name: &str, default: u64| -> Result<u64, Error> {
        match std::env::var(name) {
            Ok(value) => value.parse().map_err(Error::from),
            Err(_) => Ok(default),
        }
    };
    let steps = setting("DURABLE_CRASH_STEPS", STEPS)?;
    let turns = setting("DURABLE_CRASH_TURNS", 4)? as usize;
    let store: Arc<dyn Store> =
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            Arc::new(Postgres::connect(&spec).await.map_err(Error::from)?)
        } else {
            Arc::new(Sqlite::open(&spec)?)
        };
    let mut builder = Runtime::builder()
        .shared_store(store)
        .register(crash_chain)
        .register(step)
        .register_entity::<CrashCounter>()
        .lease_duration(Duration::from_millis(500))
        .max_concurrent_orchestrations(turns);
    if let Some(hub) = args.next() {
        builder = builder.task_hub(hub);
    }
    let runtime = builder.start().await?;
    let client = runtime.client();
    // A host resumed after a pause finds the connections the server closed meanwhile
    // failing once: store errors are retried for a while, here and below.
    let mut failures = 0;
    let mut retry = |e: Error, what: &str| -> Result<(), Error> {
        if e.kind() == &ErrorKind::Store && failures < 50 {
            failures += 1;
            eprintln!("crash-host: {what}: {e}; trying again");
            Ok(())
        } else {
            Err(e)
        }
    };
    let mut i = 0;
    while i < n {
        let id = format!("c{i}");
        let started = match client.status(&id).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => match client.start(crash_chain, steps).instance_id(&id).await {
                Ok(_) => Ok(()),
                // Another host started it first.
                Err(e) if e.kind() == &ErrorKind::InstanceAlreadyExists => Ok(()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match started {
            Ok(()) => i += 1,
            Err(e) => {
                retry(e, &format!("starting {id}"))?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    for i in 0..n {
        let id = format!("c{i}");
        loop {
            match client
                .wait_for_completion(&id, Duration::from_secs(120))
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    retry(e, &format!("waiting for {id}"))?;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    runtime.shutdown().await;
    Ok(())
}
