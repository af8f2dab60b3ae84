//! How the host passes work from commit to commit: a commit reads the work it gives this
//! host's idle instances and the host runs it next, without a look at the store or a read of
//! its own; a failed commit lets those instances go; a client waiting for one instance is not
//! woken by the others, nor by that instance's turns that leave it running. (On PostgreSQL:
//! `store_postgres.rs`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use durable::prelude::*;
use durable::store::Memory;
use durable::testing::TestRuntime;
use durable_tests::WAIT;
use durable_tests::chain::{self, chain_reads, count_up};
use durable_tests::counted::Counted;

/// Every turn here gives the next one its work, which the host takes as its commit tells it,
/// without looking at the store for it: the host looks for ready instances now and then (for
/// timers and other processes' work), not at each of the ~200 turns.
#[tokio::test(start_paused = true)]
async fn a_host_busy_with_its_own_work_does_not_look_at_the_store_for_each_turn() {
    let counts = chain::run(Arc::new(Memory::new())).await;
    assert!(counts.commits() >= 200, "{} turns", counts.commits());
    assert!(
        counts.looks() <= 20,
        "{} looks for {} turns",
        counts.looks(),
        counts.commits()
    );
}

/// Each turn's commit gives the next turn's instance its work, and reads that work in the same
/// transaction: the host runs the ~200 turns without reading any of them on its own.
#[tokio::test]
async fn a_commit_reads_the_work_it_gives_the_hosts_idle_instances() {
    let (handed, read) = chain_reads(Arc::new(Memory::new())).await;
    assert!(
        handed >= 195 && read <= 5,
        "{handed} handed over, {read} read"
    );

    let dir = tempfile::tempdir().unwrap();
    let sqlite = durable::store::Sqlite::open(dir.path().join("chain.db")).unwrap();
    let (handed, read) = chain_reads(Arc::new(sqlite)).await;
    assert!(
        handed >= 195 && read <= 5,
        "{handed} handed over, {read} read"
    );
}

/// A turn whose commit fails lets go of the instances it was to give work to: every fifth
/// commit of the orchestration fails, is retried, and the calls all arrive, each once.
#[tokio::test]
async fn a_failed_commit_leaves_the_instances_it_was_to_give_work_free() {
    let commits = Arc::new(AtomicUsize::new(0));
    let counted = commits.clone();
    let (store, counts) = Counted::wrap_failing(
        Arc::new(Memory::new()),
        Some(Arc::new(move |item, _| {
            if item.instance_id == "flaky" && counted.fetch_add(1, Ordering::SeqCst) % 5 == 4 {
                return Err(durable::store::StoreError::Backend(
                    "the disk hiccuped".into(),
                ));
            }
            Ok(())
        })),
    );
    let builder = chain::builder().shared_store(store);
    let rt = TestRuntime::start(builder).await.unwrap();
    let client = rt.client();
    client
        .start(count_up, ("flaky".to_string(), 20))
        .instance_id("flaky")
        .await
        .unwrap();
    let status = client.wait_for_completion("flaky", WAIT).await.unwrap();
    assert_eq!(status.output::<i64>().unwrap(), 20, "{status:?}");
    assert!(commits.load(Ordering::SeqCst) > 20, "some commits failed");
    assert!(counts.handed() > 0, "the work was handed over");
}

/// Waits for the event "go".
#[orchestrator]
async fn wait_for_go(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ctx.wait_for_event::<()>("go").await
}

/// A client waiting for one instance reads its status again when that instance changes, not
/// at each of the ~200 commits other instances make meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_waiting_for_one_instance_sleeps_through_other_instances_turns() {
    let (store, counts) = Counted::wrap(Arc::new(Memory::new()));
    let builder = chain::builder().register(wait_for_go).shared_store(store);
    let rt = TestRuntime::start(builder).await.unwrap();
    let client = rt.client();
    let waiting = client.start(wait_for_go, ()).await.unwrap();
    rt.idle().await;
    let waiter = {
        let (client, id) = (client.clone(), waiting.clone());
        tokio::spawn(async move { client.wait_for_completion(&id, WAIT).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before = counts.statuses();
    let chain = client
        .start(count_up, ("busy".to_string(), 100))
        .await
        .unwrap();
    rt.idle().await;
    assert_eq!(
        client.status(&chain).await.unwrap().unwrap().runtime_status,
        RuntimeStatus::Completed
    );
    let during = counts.statuses() - before;
    assert!(
        during <= 5,
        "{during} status reads while other instances ran"
    );
    client.raise_event(&waiting, "go", ()).await.unwrap();
    let done = waiter.await.unwrap().unwrap();
    assert_eq!(done.runtime_status, RuntimeStatus::Completed);
}

/// A client waiting for an instance to end reads its status when a turn of it ends it, not
/// at each of the ~200 turns that leave it running: those tell the client what they wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_waiting_for_an_instance_to_end_sleeps_through_its_running_turns() {
    let (store, counts) = Counted::wrap(Arc::new(Memory::new()));
    let rt = TestRuntime::start(chain::builder().shared_store(store))
        .await
        .unwrap();
    let client = rt.client();
    let before = counts.statuses();
    let chain = client
        .start(count_up, ("long".to_string(), 100))
        .await
        .unwrap();
    let status = client.wait_for_completion(&chain, WAIT).await.unwrap();
    assert_eq!(status.output::<i64>().unwrap(), 100, "{status:?}");
    let reads = counts.statuses() - before;
    assert!(counts.commits() >= 200, "{} turns", counts.commits());
    assert!(
        reads <= 5,
        "{reads} status reads while waiting through {} turns",
        counts.commits()
    );
    rt.shutdown().await;
}

/// Waits for the events "a" and then "b"; returns both.
#[orchestrator]
async fn wait_for_a_then_b(ctx: OrchestrationContext, _input: ()) -> Result<(u32, u32), Error> {
    let a = ctx.wait_for_event::<u32>("a").await?;
    let b = ctx.wait_for_event::<u32>("b").await?;
    Ok((a, b))
}

/// Work that comes in for an instance while its turn runs is read by that turn's own commit,
/// and the instance's next turn runs on it at once, without a read of its own. Here the turn
/// for "a" waits in its history read (nothing is cached, so each turn replays) while "b" is
/// raised; once it goes on, the instance finishes without its work being read again.
#[tokio::test(start_paused = true)]
async fn work_that_came_in_during_a_turn_is_read_by_that_turns_commit() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (store, counts) = Counted::wrap_gated(Arc::new(Memory::new()), "ab", gate.clone());
    let rt = TestRuntime::start(
        Runtime::builder()
            .register(wait_for_a_then_b)
            .instance_cache_capacity(0)
            .shared_store(store),
    )
    .await
    .unwrap();
    let client = rt.client();
    client
        .start(wait_for_a_then_b, ())
        .instance_id("ab")
        .await
        .unwrap();
    rt.idle().await;
    client.raise_event("ab", "a", 1u32).await.unwrap();
    // Every task is waiting again once the paused clock moves: the turn for "a" in its
    // history read, and whichever dispatcher took "b"'s wake-up found the instance busy.
    tokio::time::sleep(Duration::from_millis(10)).await;
    client.raise_event("ab", "b", 2u32).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (read, handed) = (counts.items(), counts.handed());
    gate.add_permits(100);
    let done = client.wait_for_completion("ab", WAIT).await.unwrap();
    assert_eq!(done.output::<(u32, u32)>().unwrap(), (1, 2));
    assert_eq!(
        counts.items() - read,
        0,
        "the work for \"b\" was read again on its own"
    );
    assert_eq!(counts.handed() - handed, 1, "read by the turn's own commit");
}
