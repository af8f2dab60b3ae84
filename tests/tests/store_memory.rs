//! The memory store against the store conformance suite: one test per check.

use std::sync::Arc;

use durable::store::{Memory, Store};

durable::store_conformance_tests!(|| async { Arc::new(Memory::new()) as Arc<dyn Store> });

/// The whole suite in one go, as `run_all` runs it (also on a non-default task hub, which
/// must behave like any other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_a_named_task_hub() {
    durable::store::conformance::run_all(&|| async { Memory::new().with_task_hub("conformance") })
        .await;
}

#[tokio::test]
async fn results_commit_with_their_turn_in_one_write() {
    durable_tests::one_write::results_commit_with_their_turn(&Memory::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_turns_arriving_together_each_get_their_own_answer() {
    durable_tests::together::result_turns_arriving_together_each_get_their_own_answer(Arc::new(
        Memory::new(),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arriving_together_each_get_their_own_answer() {
    durable_tests::together::messages_arriving_together_each_get_their_own_answer(Arc::new(
        Memory::new(),
    ))
    .await;
}
