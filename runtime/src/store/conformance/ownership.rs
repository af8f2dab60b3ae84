//! Partition ownership and fencing: claims that take, renew and release partitions, epochs
//! that go up on every change of hands, fetches limited to the partitions owned, and commits
//! refused once their partition's epoch moved on. Reading owned work is in `reads.rs`.

use std::sync::Arc;
use std::time::Duration;

use super::support::*;
use crate::RuntimeStatus;
use crate::store::{
    ActivityTask, Fetched, InstanceVersion, Owned, PartitionClaim, PartitionLease, PartitionTable,
    ResultsCommit, Store, partition_of,
};

pub(super) fn claim(
    owner: &str,
    take: &[u32],
    keep: &[PartitionLease],
    lease: Duration,
) -> PartitionClaim {
    PartitionClaim {
        owner: owner.to_string(),
        count_if_new: 4,
        keep: keep.to_vec(),
        take: take.to_vec(),
        release: Vec::new(),
        lease,
        all_or_nothing: false,
    }
}

pub(super) async fn claimed(
    store: &dyn Store,
    claim: PartitionClaim,
    context: &str,
) -> PartitionTable {
    ok(store.claim_partitions(claim).await, context)
}

pub(super) fn owned(table: &PartitionTable) -> Owned {
    Owned::Partitions {
        count: table.count,
        leases: table.held.clone(),
        host: "conformance".into(),
    }
}

pub(super) fn partitions(table: &PartitionTable) -> Vec<u32> {
    table.held.iter().map(|l| l.partition).collect()
}

/// An id of partition `p` (of 4).
pub(super) fn id_in(p: u32, tag: &str) -> String {
    (0..)
        .map(|i| format!("{tag}-{i}"))
        .find(|id| partition_of(id, 4) == p)
        .expect("some id falls in every partition")
}

/// A hub's partitions are created by the first claim; a free partition is taken at epoch 1,
/// renewed at the same epoch, refused to a second host while the lease runs, and taken by it
/// (one epoch up) once released; both hosts' heartbeats are listed.
pub async fn claim_partitions(store: Arc<dyn Store>) {
    let s = &*store;
    let a = claimed(
        s,
        claim("host-a", &[0, 1, 2, 3], &[], LONG_LEASE),
        "a's first claim",
    )
    .await;
    assert_eq!(
        a.count, 4,
        "the hub was created with the claim's partition count"
    );
    assert_eq!(
        partitions(&a),
        vec![0, 1, 2, 3],
        "a free partition is taken"
    );
    assert!(
        a.held.iter().all(|l| l.epoch == 1),
        "a first owner holds epoch 1: {:?}",
        a.held
    );
    let renewed = claimed(s, claim("host-a", &[], &a.held, LONG_LEASE), "a's renewal").await;
    assert_eq!(renewed.held, a.held, "a renewal keeps the epochs");

    let b = claimed(s, claim("host-b", &[0, 1], &[], LONG_LEASE), "b's claim").await;
    assert!(
        b.held.is_empty(),
        "a partition under a live lease is not taken: {:?}",
        b.held
    );
    assert_eq!(b.hosts, vec!["host-a".to_string(), "host-b".to_string()]);
    assert_eq!(b.count, 4, "a later claim does not change the count");

    let released = PartitionClaim {
        release: a.held[..2].to_vec(),
        keep: a.held[2..].to_vec(),
        ..claim("host-a", &[], &[], LONG_LEASE)
    };
    let a2 = claimed(s, released, "a releases two").await;
    assert_eq!(partitions(&a2), vec![2, 3]);
    let b2 = claimed(s, claim("host-b", &[0, 1], &[], LONG_LEASE), "b takes them").await;
    assert_eq!(partitions(&b2), vec![0, 1]);
    assert!(
        b2.held.iter().all(|l| l.epoch == 2),
        "a partition changing hands goes one epoch up: {:?}",
        b2.held
    );
    // A host that leaves (lease zero) is no longer listed.
    let gone = PartitionClaim {
        release: b2.held.clone(),
        ..claim("host-b", &[], &[], Duration::ZERO)
    };
    let after = claimed(s, gone, "b leaves").await;
    assert_eq!(after.hosts, vec!["host-a".to_string()]);
}

/// A partition whose owner's lease ran out is taken by another host, one epoch up, and the
/// late renewal of the old owner finds it lost; a claim of everything or nothing takes
/// nothing while another host holds any partition.
pub async fn partition_lease_expiry(store: Arc<dyn Store>) {
    let s = &*store;
    let a = claimed(
        s,
        claim("host-a", &[0, 1, 2, 3], &[], SHORT_LEASE),
        "a takes all",
    )
    .await;
    let all_or_nothing = PartitionClaim {
        all_or_nothing: true,
        ..claim("host-b", &[0, 1, 2, 3], &[], LONG_LEASE)
    };
    let refused = claimed(s, all_or_nothing.clone(), "b claims all while a holds them").await;
    assert!(
        refused.held.is_empty(),
        "nothing is taken while another host holds any"
    );
    tokio::time::sleep(AFTER_SHORT_LEASE).await;
    let b = claimed(s, all_or_nothing, "b claims all after a's lease ran out").await;
    assert_eq!(partitions(&b), vec![0, 1, 2, 3]);
    assert!(b.held.iter().all(|l| l.epoch == 2), "{:?}", b.held);
    let late = claimed(
        s,
        claim("host-a", &[], &a.held, LONG_LEASE),
        "a's late renewal",
    )
    .await;
    assert!(
        late.held.is_empty(),
        "a renewal under an old epoch is lost: {:?}",
        late.held
    );
}

/// A fetch takes work only from the partitions owned, and the work item carries the
/// partition's lease as its fence.
pub async fn fetch_owned_partitions(store: Arc<dyn Store>) {
    let s = &*store;
    let a = claimed(s, claim("host-a", &[0, 1], &[], LONG_LEASE), "a").await;
    let b = claimed(s, claim("host-b", &[2, 3], &[], LONG_LEASE), "b").await;
    let for_a = id_in(1, "owned");
    let for_b = id_in(3, "owned");
    ok(
        s.create_instance(new_instance(&for_b, t(0))).await,
        "create b's",
    );
    ok(
        s.create_instance(new_instance(&for_a, t(0))).await,
        "create a's",
    );
    let item = match ok(
        s.fetch_orchestration(t(1), LONG_LEASE, &owned(&a)).await,
        "a fetches",
    ) {
        Fetched::Item(item) => item,
        Fetched::Empty { .. } => panic!("a found no work in its partitions"),
    };
    assert_eq!(
        item.instance_id, for_a,
        "a fetched only from its own partitions"
    );
    assert_eq!(
        item.fence,
        Some(a.held[1]),
        "the work item is fenced by its partition's lease"
    );
    assert!(
        matches!(
            ok(
                s.fetch_orchestration(t(1), LONG_LEASE, &owned(&a)).await,
                "a again"
            ),
            Fetched::Empty { .. }
        ),
        "b's instance is not a's to fetch"
    );
    let item = match ok(
        s.fetch_orchestration(t(1), LONG_LEASE, &owned(&b)).await,
        "b fetches",
    ) {
        Fetched::Item(item) => item,
        Fetched::Empty { .. } => panic!("b found no work in its partitions"),
    };
    assert_eq!(item.instance_id, for_b);
    let none = Owned::Partitions {
        count: 4,
        leases: Vec::new(),
        host: "conformance".into(),
    };
    ok(
        s.create_instance(new_instance("nobody's", t(0))).await,
        "create",
    );
    assert!(
        matches!(
            ok(
                s.fetch_orchestration(t(1), LONG_LEASE, &none).await,
                "fetch owning none"
            ),
            Fetched::Empty { .. }
        ),
        "a host owning no partition fetches nothing"
    );
}

/// A turn fetched under a partition lease is refused (`LeaseLost`, nothing applied) once the
/// partition changed hands, and so is the turn a finished activity's result would commit:
/// its results are queued instead.
pub async fn stale_epoch_refused(store: Arc<dyn Store>) {
    let s = &*store;
    let id = id_in(2, "fenced");
    let a = claimed(s, claim("host-a", &[2], &[], SHORT_LEASE), "a").await;
    ok(s.create_instance(new_instance(&id, t(0))).await, "create");
    let item = match ok(
        s.fetch_orchestration(t(1), LONG_LEASE, &owned(&a)).await,
        "a fetches",
    ) {
        Fetched::Item(item) => item,
        Fetched::Empty { .. } => panic!("a found no work"),
    };
    tokio::time::sleep(AFTER_SHORT_LEASE).await;
    let b = claimed(s, claim("host-b", &[2], &[], LONG_LEASE), "b takes over").await;
    assert_eq!(b.held[0].epoch, a.held[0].epoch + 1);
    assert_lease_lost(
        s.commit_turn(&item, plain_commit(&item, RuntimeStatus::Completed, t(2)))
            .await,
        "a commit under an old epoch",
    );
    let status = status_of(s, &id, "after the refused commit").await;
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Pending,
        "nothing of a refused commit is applied"
    );

    // The results path: a held activity's result with a turn fenced by the old epoch.
    let other = id_in(2, "fenced-results");
    ok(
        s.create_instance(new_instance(&other, t(0))).await,
        "create",
    );
    let item = match ok(
        s.fetch_orchestration(t(1), LONG_LEASE, &owned(&b)).await,
        "b fetches",
    ) {
        Fetched::Item(item) => item,
        Fetched::Empty { .. } => panic!("b found no work"),
    };
    assert_eq!(item.instance_id, other);
    assert_eq!(item.fence, Some(b.held[0]));
    let task = ActivityTask {
        instance_id: other.clone(),
        execution_id: item.instance.execution_id.clone(),
        task_id: 0,
        name: "Step".into(),
        input: "1".into(),
    };
    let held = ok(
        s.commit_turn_holding(
            &item,
            plain_commit(&item, RuntimeStatus::Running, t(1)),
            vec![task.clone()],
            LONG_LEASE,
        )
        .await,
        "b's first turn, holding an activity",
    );
    let before = status_of(s, &other, "before the results").await;
    let stale = InstanceVersion {
        instance_id: other.clone(),
        execution_id: before.execution_id.clone(),
        history_len: history_of(s, &other).await.len(),
        last_updated_at: before.last_updated_at,
        fence: Some(a.held[0]),
    };
    let result = task_completed(&task, "1", t(3));
    let done = ok(
        s.complete_activities_and_commit(
            vec![(held[0].clone(), result)],
            stale,
            plain_commit(&item, RuntimeStatus::Completed, t(3)),
            Vec::new(),
            LONG_LEASE,
        )
        .await,
        "results with a stale fence",
    );
    assert!(
        matches!(done, ResultsCommit::Queued),
        "a turn fenced by an old epoch is not applied; its results are queued: {done:?}"
    );
    let after = status_of(s, &other, "after the stale results").await;
    assert_eq!(
        after.runtime_status,
        RuntimeStatus::Running,
        "nothing of the turn applied"
    );
}
