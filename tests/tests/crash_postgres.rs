//! Two hosts share one PostgreSQL database; one is killed with SIGKILL mid-work and the other
//! finishes everything once the dead host's leases expire: right outputs, no step twice, every
//! entity signal applied exactly once. Runs when DURABLE_POSTGRES_URL is set (the README's test
//! command sets it); otherwise it says it was skipped.

use std::collections::HashSet;
use std::io::Write;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable::history::EventKind;
use durable::store::{Postgres, Store};
use durable::{Client, Runtime};
use durable_tests::crash::{CrashCounter, STEPS, crash_chain, step};

const INSTANCES: usize = 40;

fn spawn_host(url: &str, hub: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_crash-host"))
        .args([url, &INSTANCES.to_string(), hub])
        .spawn()
        .expect("the crash host starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surviving_host_takes_over_a_killed_hosts_work() {
    let Ok(url) = std::env::var("DURABLE_POSTGRES_URL") else {
        // Straight to stderr, past the test harness's capture, so the skip is visible.
        let _ = writeln!(
            std::io::stderr(),
            "PostgreSQL crash test skipped: set DURABLE_POSTGRES_URL or run scripts/with-postgres"
        );
        return;
    };
    let hub = format!("crash{}", std::process::id());
    let mut doomed = spawn_host(&url, &hub);
    let mut survivor = spawn_host(&url, &hub);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        doomed.try_wait().unwrap().is_none(),
        "the host to kill finished before it was killed; the workload is too small"
    );
    doomed.kill().unwrap();
    doomed.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = survivor.try_wait().unwrap() {
            assert!(status.success(), "the surviving host failed: {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the surviving host did not finish in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let store: Arc<dyn Store> = Postgres::connect(&url).await.unwrap().with_task_hub(&hub);
    let client = Client::new(store.clone());
    let expected: u64 = (1..=STEPS).map(|i| i * 10).sum();
    for i in 0..INSTANCES {
        let id = format!("c{i}");
        let status = client.status_with_history(&id).await.unwrap().unwrap();
        assert_eq!(status.output::<u64>().unwrap(), expected, "{id}");
        let mut completed = HashSet::new();
        for event in status.history.unwrap() {
            if let EventKind::TaskCompleted {
                task_scheduled_id, ..
            } = event.kind
            {
                assert!(
                    completed.insert(task_scheduled_id),
                    "{id}: step completed twice"
                );
            }
        }
        assert_eq!(completed.len() as u64, STEPS, "{id}");
    }

    let settle = Runtime::builder()
        .shared_store(store)
        .register(crash_chain)
        .register(step)
        .register_entity::<CrashCounter>()
        .start()
        .await
        .unwrap();
    settle.idle().await;
    settle.shutdown().await;
    let counter = client
        .read_entity::<CrashCounter>("total")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counter.count, INSTANCES as u64 * STEPS, "{counter:?}");
}
