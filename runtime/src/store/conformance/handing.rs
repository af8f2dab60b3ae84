//! Work a commit reads handed over, perhaps before the commit is durable: the writes of work
//! read in a commit that was not applied are refused.

use std::sync::{Arc, Mutex};

use super::ownership::{claim, claimed, id_in};
use super::support::*;
use crate::RuntimeStatus;
use crate::store::{CommitState, OrchestrationWorkItem, Store, StoreError, TurnCommit};

/// `commit_turn_handing` hands the work its commit read over exactly once, as
/// `commit_turn_reading` returns it. Once the commit returned, each item's commit (if it names
/// one) is settled applied, and the item's own commit is applied. The same work marked as read
/// in a commit that was not applied is refused by every write (commit, abandon,
/// release, park), which changes nothing: its messages are still there.
pub async fn commit_turn_handing(store: Arc<dyn Store>) {
    let s = &*store;
    if !s.reads_with_commit() || !s.reads_owned_work() {
        return;
    }
    let a = claimed(s, claim("host-a", &[0, 1, 2, 3], &[], LONG_LEASE), "a").await;
    let sender = id_in(0, "sender");
    let receiver = id_in(1, "receiver");
    for id in [&sender, &receiver] {
        ok(s.create_instance(new_instance(id, t(0))).await, "create");
    }
    let item = ok(s.read_orchestration(&sender, t(1), a.held[0]).await, "read")
        .expect("the sender has its start");
    let first = ok(
        s.read_orchestration(&receiver, t(1), a.held[1]).await,
        "read",
    )
    .expect("the receiver has its start");
    ok(
        s.commit_turn(&first, plain_commit(&first, RuntimeStatus::Running, t(1)))
            .await,
        "the receiver's first turn",
    );
    let commit = TurnCommit {
        messages: vec![event(&receiver, "sent", t(2))],
        ..plain_commit(&item, RuntimeStatus::Running, t(2))
    };
    let handed: Arc<Mutex<Vec<Vec<OrchestrationWorkItem>>>> = Arc::default();
    let sink = handed.clone();
    let held = ok(
        s.commit_turn_handing(
            &item,
            commit,
            Vec::new(),
            LONG_LEASE,
            vec![(receiver.clone(), a.held[1])],
            t(2),
            Box::new(move |items| sink.lock().unwrap().push(items)),
        )
        .await,
        "commit_turn_handing",
    );
    assert!(held.is_empty());
    let handed = std::mem::take(&mut *handed.lock().unwrap());
    assert_eq!(handed.len(), 1, "handed over once: {handed:?}");
    let [got] = &handed[0][..] else {
        panic!("the receiver's work, and nothing else: {handed:?}");
    };
    assert_eq!(got.instance_id, receiver);
    assert_eq!(got.messages.len(), 1, "the message sent: {got:?}");
    if let Some(state) = &got.read_in {
        assert_eq!(
            state.applied(),
            Some(true),
            "settled once the commit returned"
        );
    }

    // The same work, as if read in a commit that failed: no write of it goes through.
    let failed = CommitState::new();
    failed.settle(false);
    let lost = OrchestrationWorkItem {
        read_in: Some(failed),
        ..got.clone()
    };
    let refused = |what: &str, result: Result<(), StoreError>| {
        assert!(
            result.is_err(),
            "{what} of work read in a failed commit is refused"
        )
    };
    refused(
        "a commit",
        s.commit_turn(&lost, plain_commit(&lost, RuntimeStatus::Completed, t(3)))
            .await,
    );
    refused(
        "an abandon",
        s.abandon_orchestration(&lost, std::time::Duration::ZERO)
            .await,
    );
    refused(
        "a release",
        s.release_orchestration(&lost, std::time::Duration::ZERO, "host-a")
            .await,
    );
    refused("a park", s.park_orchestration(&lost, "parked", t(3)).await);
    let again = ok(
        s.read_orchestration(&receiver, t(3), a.held[1]).await,
        "read",
    )
    .expect("the message is still there");
    assert_eq!(seqs(&again), seqs(got), "nothing changed");
    assert_eq!(
        again.dequeue_count, got.dequeue_count,
        "no delivery was counted"
    );
    let status = ok(s.instance(&receiver).await, "status").expect("the receiver");
    assert_eq!(status.runtime_status, RuntimeStatus::Running);

    ok(
        s.commit_turn(got, plain_commit(got, RuntimeStatus::Running, t(3)))
            .await,
        "a commit of the work handed over",
    );
}
