//! Real-process crash tests: a host on SQLite is killed with SIGKILL at random moments while
//! it runs orchestrations and entity signals; after a restart everything completes with the
//! right output, no step is recorded twice, no entity operation is applied twice, and nothing
//! acknowledged is lost. Two loads: 100 long chains four turns at a time, and 1,000 short ones
//! with the default 256 turns in flight (W3's size, where results and the turns they unblock are
//! committed together and commits are grouped). Bounded in time; everything stays on this
//! machine.

use std::collections::HashSet;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable::history::EventKind;
use durable::store::Sqlite;
use durable::{Client, Runtime};
use durable_tests::crash::{CrashCounter, STEPS, crash_chain, step};

const KILLS: usize = 8;

/// One crash test's load: instances, steps each, turns in flight.
#[derive(Clone, Copy)]
struct Load {
    instances: usize,
    steps: u64,
    turns: usize,
}

/// Starts a host; its stderr is appended to `hosts.log` beside the database, which failing
/// assertions print.
fn spawn_host(db: &std::path::Path, load: Load) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(host_log(db))
        .expect("the host log opens");
    Command::new(env!("CARGO_BIN_EXE_crash-host"))
        .arg(db)
        .arg(load.instances.to_string())
        .env("DURABLE_CRASH_STEPS", load.steps.to_string())
        .env("DURABLE_CRASH_TURNS", load.turns.to_string())
        .stderr(log)
        .spawn()
        .expect("the crash host starts")
}

fn host_log(db: &std::path::Path) -> std::path::PathBuf {
    db.with_file_name("hosts.log")
}

fn host_output(db: &std::path::Path) -> String {
    std::fs::read_to_string(host_log(db)).unwrap_or_default()
}

/// A cheap, seedable pseudo-random sequence (xorshift), so a failing run can be repeated.
fn delays(seed: u64) -> impl Iterator<Item = u64> {
    let mut x = seed.max(1);
    std::iter::from_fn(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        Some(40 + x % 260)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_host_loses_nothing_and_repeats_nothing() {
    crash_run(Load {
        instances: 100,
        steps: STEPS,
        turns: 4,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_host_under_w3_sized_load_loses_nothing_and_repeats_nothing() {
    crash_run(Load {
        instances: 1000,
        steps: 5,
        turns: 256,
    })
    .await;
}

async fn crash_run(load: Load) {
    let Load {
        instances: instances_n,
        steps,
        ..
    } = load;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let seed = std::env::var("DURABLE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64);
    println!("crash test seed {seed} (set DURABLE_CRASH_SEED to repeat)");
    // Start the first host once, uninterrupted, so the instances exist before the client
    // sends its own signals.
    let client = {
        let mut host = spawn_host(&db, load);
        std::thread::sleep(Duration::from_millis(300));
        host.kill().unwrap();
        host.wait().unwrap();
        Client::new(Arc::new(Sqlite::open(&db).unwrap()))
    };

    let mut acknowledged = 0u64;
    let mut killed_mid_work = 0;
    for (round, delay) in delays(seed).take(KILLS).enumerate() {
        let host = spawn_host(&db, load);
        // The host is killed exactly `delay` ms after it started, however long this process's
        // own writes take.
        let killer = std::thread::spawn(move || {
            let mut host = host;
            std::thread::sleep(Duration::from_millis(delay));
            let finished_alone = host.try_wait().unwrap().is_some();
            host.kill().unwrap();
            (finished_alone, host.wait().unwrap())
        });
        // Meanwhile this process signals the counter itself; every acknowledged signal must be
        // applied exactly once in the end.
        while !killer.is_finished() {
            client
                .signal_entity::<CrashCounter>("total")
                .add(1000)
                .await
                .unwrap();
            acknowledged += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (finished_alone, status) = killer.join().unwrap();
        if !finished_alone {
            killed_mid_work += 1;
        }
        println!(
            "round {round}: {} after {delay} ms ({status})",
            if finished_alone {
                "had already exited"
            } else {
                "killed"
            }
        );
    }
    // The workload is sized so that the host is still busy when it is killed; otherwise this
    // test would not be testing crashes.
    assert!(
        killed_mid_work >= KILLS / 2,
        "only {killed_mid_work} of {KILLS} kills hit a busy host; host output:\n{}",
        host_output(&db)
    );

    // A last host runs to the end.
    let mut host = spawn_host(&db, load);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = host.try_wait().unwrap() {
            assert!(
                status.success(),
                "the final host failed: {status}; host output:\n{}",
                host_output(&db)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the final host did not finish in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Every instance completed with the right output.
    let expected: u64 = (1..=steps).map(|i| i * 10).sum();
    for i in 0..instances_n {
        let id = format!("c{i}");
        let status = client.status_with_history(&id).await.unwrap().unwrap();
        assert_eq!(status.output::<u64>().unwrap(), expected, "{id}");
        // No step was recorded twice: scheduling events have distinct ids, and each step
        // completed once.
        let history = status.history.unwrap();
        let mut scheduled = HashSet::new();
        let mut completed = HashSet::new();
        for event in &history {
            match &event.kind {
                EventKind::TaskScheduled { .. } | EventKind::EntityOperationSignaled { .. } => {
                    assert!(
                        scheduled.insert(event.event_id),
                        "{id}: step {} recorded twice",
                        event.event_id
                    )
                }
                EventKind::TaskCompleted {
                    task_scheduled_id, ..
                } => {
                    assert!(
                        completed.insert(*task_scheduled_id),
                        "{id}: step {task_scheduled_id} completed twice"
                    )
                }
                _ => {}
            }
        }
        assert_eq!(completed.len() as u64, steps, "{id}");
    }

    // Let signals still queued for the counter settle on an in-process host.
    let settle = Runtime::builder()
        .store(Sqlite::open(&db).unwrap())
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
    // Each orchestration step signalled once (by 1), and each acknowledged client signal
    // added 1000: applied exactly once each.
    assert_eq!(
        counter.count,
        instances_n as u64 * steps + acknowledged,
        "{counter:?}"
    );
    assert_eq!(
        counter.sum,
        instances_n as u64 * steps + 1000 * acknowledged,
        "{counter:?}"
    );
}
