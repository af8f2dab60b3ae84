//! Two host processes share one PostgreSQL database and split its partitions; one is killed with
//! SIGKILL mid-work (or paused past its lease) and the other finishes everything once the dead
//! host's leases expire: right outputs, no step twice, every entity signal applied exactly
//! once. Runs when DURABLE_POSTGRES_URL is set (the README's test
//! command sets it); otherwise it says it was skipped.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable::history::EventKind;
use durable::store::{PartitionClaim, Postgres, Store};
use durable::{Client, Runtime};
use durable_tests::crash::{CrashCounter, STEPS, crash_chain, step};

const INSTANCES: usize = 40;

fn spawn_host(url: &str, hub: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_crash-host"))
        .args([url, &INSTANCES.to_string(), hub])
        .spawn()
        .expect("the crash host starts")
}

/// Starts every instance the hosts wait for, before any host runs. A host starts each one
/// itself when it finds none with its id; a host paused between that look and its start would,
/// once resumed, start again an instance the other host had meanwhile finished, and starting
/// with the id of a finished instance replaces it (a second execution, with its own signals).
async fn start_instances(url: &str, hub: &str) {
    let store: Arc<dyn Store> = Postgres::connect(url).await.unwrap().with_task_hub(hub);
    let client = Client::new(store);
    for i in 0..INSTANCES {
        client
            .start(crash_chain, STEPS)
            .instance_id(format!("c{i}"))
            .await
            .expect("the instance starts");
    }
}

/// How many partitions each live host holds, by host.
async fn partition_owners(url: &str, hub: &str) -> BTreeMap<String, usize> {
    let store = Postgres::connect(url).await.unwrap().with_task_hub(hub);
    // A claim of nothing with a zero lease only reads the table; it may wait behind the
    // hosts' claims, and then tries again.
    let look = PartitionClaim {
        owner: "observer".into(),
        count_if_new: 12,
        keep: Vec::new(),
        take: Vec::new(),
        release: Vec::new(),
        lease: Duration::ZERO,
        all_or_nothing: false,
    };
    let mut tries = 0;
    let table = loop {
        match store.claim_partitions(look.clone()).await {
            Ok(table) => break table,
            Err(e) if tries < 50 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("reading the partition table: {e}"),
        }
    };
    let mut owners = BTreeMap::new();
    for p in table.partitions.iter().filter(|p| !p.expired) {
        if let Some(owner) = &p.owner {
            *owners.entry(owner.clone()).or_default() += 1;
        }
    }
    owners
}

fn skip() -> Option<String> {
    match std::env::var("DURABLE_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            // Straight to stderr, past the test harness's capture, so the skip is visible.
            let _ = writeln!(
                std::io::stderr(),
                "PostgreSQL crash test skipped: set DURABLE_POSTGRES_URL or run scripts/with-postgres"
            );
            None
        }
    }
}

/// Checks every instance's output and that no step completed twice, then lets a fresh host
/// apply what is left of the entity traffic and checks every signal was applied once.
async fn assert_exactly_once(url: &str, hub: &str) {
    let store: Arc<dyn Store> = Postgres::connect(url).await.unwrap().with_task_hub(hub);
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

fn wait_for_exit(host: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = host.try_wait().unwrap() {
            assert!(status.success(), "{what} failed: {status}");
            return;
        }
        assert!(Instant::now() < deadline, "{what} did not finish in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A host process (possibly paused); resumed and killed if the test ends early, so that no
/// process outlives it.
struct Paused(Child);

/// Waits until `n` hosts own partitions (hosts start at their own pace).
async fn until_owners(url: &str, hub: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let owners = partition_owners(url, hub).await;
        if owners.len() == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} hosts to own partitions: {owners:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Paused {
    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {sig} failed");
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-CONT", &self.0.id().to_string()])
                .status();
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The fencing case: a host paused (SIGSTOP) mid-work, past its partitions' lease. The other
/// host takes its partitions over and finishes every instance while it is still stopped; then
/// the paused host resumes with turns and activities in flight under its old epochs. Its late
/// commits are refused, so nothing is applied twice, and it exits cleanly too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_paused_past_its_lease_applies_nothing_twice() {
    let Some(url) = skip() else { return };
    let hub = format!("paused{}", std::process::id());
    start_instances(&url, &hub).await;
    let mut paused = Paused(spawn_host(&url, &hub));
    let mut other = Paused(spawn_host(&url, &hub));
    until_owners(&url, &hub, 2).await;
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        paused.0.try_wait().unwrap().is_none(),
        "the host to pause finished first; the workload is too small"
    );
    paused.signal("-STOP");
    // The other host can finish only by taking the paused host's partitions over.
    wait_for_exit(&mut other.0, "the other host, while the first was paused");
    paused.signal("-CONT");
    wait_for_exit(&mut paused.0, "the paused host, once resumed");
    assert_exactly_once(&url, &hub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surviving_host_takes_over_a_killed_hosts_work() {
    let Some(url) = skip() else { return };
    let hub = format!("crash{}", std::process::id());
    let mut doomed = Paused(spawn_host(&url, &hub));
    let mut survivor = Paused(spawn_host(&url, &hub));
    // The two hosts split the partitions between them.
    until_owners(&url, &hub, 2).await;
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        doomed.0.try_wait().unwrap().is_none(),
        "the host to kill finished before it was killed; the workload is too small"
    );
    doomed.0.kill().unwrap();
    doomed.0.wait().unwrap();
    wait_for_exit(&mut survivor.0, "the surviving host");
    assert_exactly_once(&url, &hub).await;
}
