//! Partition ownership and fencing: claims that take, renew and release partitions, epochs
//! that go up on every change of hands, fetches limited to the partitions owned, and commits
//! refused once their partition's epoch moved on; and commits that read the work they give.

use std::sync::Arc;
use std::time::Duration;

use super::support::*;
use crate::RuntimeStatus;
use crate::history::EventKind;
use crate::store::{
    ActivityTask, Fetched, InstanceVersion, Owned, PartitionClaim, PartitionLease, PartitionTable,
    ResultsCommit, Store, TurnCommit, partition_of,
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

fn owned(table: &PartitionTable) -> Owned {
    Owned::Partitions {
        count: table.count,
        leases: table.held.clone(),
        host: "conformance".into(),
    }
}

fn partitions(table: &PartitionTable) -> Vec<u32> {
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

/// On a store that hands out owned work by reading it (`reads_owned_work`; a store that leases
/// each instance passes trivially): the ready instances of the owned partitions are listed by
/// their oldest message; an instance's work is read without a lease (a second read sees it
/// too) and fenced by its partition; its commit is applied under the fence and refused once
/// the partition changed hands; an abandoned one is counted once more and hidden for the
/// retry delay.
pub async fn read_owned_work(store: Arc<dyn Store>) {
    let s = &*store;
    if !s.reads_owned_work() {
        return;
    }
    let a = claimed(s, claim("host-a", &[0, 1, 2, 3], &[], SHORT_LEASE), "a").await;
    let first = id_in(0, "read");
    let second = id_in(3, "read");
    ok(
        s.create_instance(new_instance(&first, t(0))).await,
        "create",
    );
    ok(
        s.create_instance(new_instance(&second, t(0))).await,
        "create",
    );
    ok(
        s.enqueue(timer(&first, &format!("{first}#exec-1"), 1, t(100)))
            .await,
        "a later timer",
    );
    let ready = ok(
        s.ready_instances(t(1), &owned(&a), 10).await,
        "ready_instances",
    );
    assert_eq!(ready.instance_ids, vec![first.clone(), second.clone()]);
    assert_eq!(ready.next_visible, Some(t(100)), "the timer is next");
    let only_mine = Owned::Partitions {
        count: 4,
        leases: vec![a.held[3]],
        host: "conformance".into(),
    };
    let ready = ok(
        s.ready_instances(t(1), &only_mine, 10).await,
        "ready, one partition",
    );
    assert_eq!(
        ready.instance_ids,
        vec![second.clone()],
        "only the owned partitions"
    );

    let fence = a.held[0];
    let read = |id: String, fence: PartitionLease| async move {
        ok(
            s.read_orchestration(&id, t(1), fence).await,
            "read_orchestration",
        )
        .expect("the instance has work")
    };
    let item = read(first.clone(), fence).await;
    assert!(
        item.lock.0.is_empty(),
        "no lease was taken: {:?}",
        item.lock
    );
    assert_eq!(item.fence, Some(fence));
    assert_eq!(item.messages.len(), 1, "only the visible message");
    let again = read(first.clone(), fence).await;
    assert_eq!(seqs(&again), seqs(&item), "a read takes nothing away");

    // Abandoned: counted once more, hidden for the retry delay.
    ok(s.abandon_orchestration(&item, RETRY_AFTER).await, "abandon");
    let hidden = ok(s.read_orchestration(&first, t(1), fence).await, "read");
    assert!(
        hidden.is_none(),
        "abandoned messages wait out the retry delay"
    );
    tokio::time::sleep(RETRY_AFTER + CLOCK_SLACK * 2).await;
    let item = read(first.clone(), fence).await;
    assert_eq!(item.dequeue_count, 2, "the abandon counted a delivery");

    ok(
        s.commit_turn(&item, plain_commit(&item, RuntimeStatus::Running, t(2)))
            .await,
        "a commit under the fence",
    );
    assert!(
        ok(s.read_orchestration(&first, t(2), fence).await, "read").is_none(),
        "the committed turn consumed the message"
    );
    let item = read(second.clone(), a.held[3]).await;
    tokio::time::sleep(AFTER_SHORT_LEASE).await;
    claimed(
        s,
        claim("host-b", &[3], &[], LONG_LEASE),
        "b takes partition 3",
    )
    .await;
    assert_lease_lost(
        s.commit_turn(&item, plain_commit(&item, RuntimeStatus::Running, t(2)))
            .await,
        "a commit after the partition changed hands",
    );
}

/// On a store that hands out owned work by reading it: a read's commit is refused once its
/// messages were consumed by another commit (a stale copy of the same read) or the instance
/// was replaced meanwhile, and nothing of it is applied. Where several hosts share a hub, work
/// left in a partition is leased by a host outside it ([`Store::fetch_left_orchestration`]),
/// never handed back to the host that left it while it waits, and, while that lease lives,
/// neither listed for the partition's owner nor committed by it.
pub async fn reads_give_way(store: Arc<dyn Store>) {
    let s = &*store;
    if !s.reads_owned_work() {
        return;
    }
    let a = claimed(s, claim("host-a", &[0, 1], &[], LONG_LEASE), "a").await;
    let c = claimed(s, claim("host-c", &[2, 3], &[], LONG_LEASE), "c").await;
    let owned_by = |table: &PartitionTable, host: &str| Owned::Partitions {
        count: table.count,
        leases: table.held.clone(),
        host: host.into(),
    };
    let (mine_a, mine_c) = (owned_by(&a, "host-a"), owned_by(&c, "host-c"));
    let read = |id: String, fence: PartitionLease| async move {
        ok(
            s.read_orchestration(&id, t(1), fence).await,
            "read_orchestration",
        )
        .expect("the instance has work")
    };

    // Two copies of one read: the first commit consumes the messages, the second is stale.
    let twice = id_in(0, "twice");
    ok(
        s.create_instance(new_instance(&twice, t(0))).await,
        "create",
    );
    let first = read(twice.clone(), a.held[0]).await;
    let copy = read(twice.clone(), a.held[0]).await;
    ok(
        s.commit_turn(&first, plain_commit(&first, RuntimeStatus::Running, t(2)))
            .await,
        "the first commit",
    );
    assert_lease_lost(
        s.commit_turn(&copy, plain_commit(&copy, RuntimeStatus::Completed, t(3)))
            .await,
        "a second commit of the same read",
    );
    let status = status_of(s, &twice, "after the stale commit").await;
    assert_eq!(status.runtime_status, RuntimeStatus::Running, "not applied");

    // Replaced while its turn ran: the turn must not land on the new instance.
    let replaced = id_in(1, "replaced");
    ok(
        s.create_instance(new_instance(&replaced, t(0))).await,
        "create",
    );
    let old = read(replaced.clone(), a.held[1]).await;
    let mut again = new_instance(&replaced, t(5));
    again.replace_running = true;
    again.execution_id = format!("{replaced}#exec-2");
    ok(
        s.create_instance(again).await,
        "replace the running instance",
    );
    assert_lease_lost(
        s.commit_turn(&old, plain_commit(&old, RuntimeStatus::Completed, t(6)))
            .await,
        "a read's commit after the instance was replaced",
    );
    let status = status_of(s, &replaced, "after the replace").await;
    assert_eq!(status.execution_id, format!("{replaced}#exec-2"));
    assert_eq!(status.runtime_status, RuntimeStatus::Pending, "untouched");

    if s.single_owner() {
        // One host owns the hub: no other host takes left work.
        return;
    }
    // c leaves `left` (its own partition) and waits; a, outside the partition, takes it.
    let left = id_in(2, "left");
    ok(s.create_instance(new_instance(&left, t(0))).await, "create");
    let item = read(left.clone(), c.held[0]).await;
    ok(
        s.release_orchestration(&item, LONG_LEASE, "host-c").await,
        "c leaves the work",
    );
    tokio::time::sleep(crate::store::LEFT_PAUSE + CLOCK_SLACK * 2).await;
    let ready = ok(s.ready_instances(t(1), &mine_c, 10).await, "ready for c");
    assert!(
        !ready.instance_ids.contains(&left),
        "work c left is not listed for c while it waits: {:?}",
        ready.instance_ids
    );
    assert!(
        ok(
            s.fetch_left_orchestration(t(1), LONG_LEASE, &mine_c).await,
            "c looks for left work"
        )
        .is_none(),
        "c does not get back what it left (and its own partitions are read, not leased)"
    );
    let taken = ok(
        s.fetch_left_orchestration(t(1), LONG_LEASE, &mine_a).await,
        "a looks for left work",
    )
    .expect("a takes the work c left");
    assert_eq!(taken.instance_id, left);
    assert!(!taken.lock.0.is_empty(), "left work is leased");
    assert!(
        ok(
            s.fetch_left_orchestration(t(1), LONG_LEASE, &mine_a).await,
            "again"
        )
        .is_none(),
        "leased once"
    );
    ok(
        s.commit_turn(&taken, plain_commit(&taken, RuntimeStatus::Running, t(2)))
            .await,
        "a commits the left work under its lease",
    );

    // Left by a third host: c may read it again, but once a leases it, c's commit is refused.
    let shared = id_in(3, "shared");
    ok(
        s.create_instance(new_instance(&shared, t(0))).await,
        "create",
    );
    let item = read(shared.clone(), c.held[1]).await;
    ok(
        s.release_orchestration(&item, LONG_LEASE, "host-z").await,
        "z leaves the work",
    );
    tokio::time::sleep(crate::store::LEFT_PAUSE + CLOCK_SLACK * 2).await;
    let late = read(shared.clone(), c.held[1]).await;
    let leased = ok(
        s.fetch_left_orchestration(t(1), LONG_LEASE, &mine_a).await,
        "a looks for left work",
    )
    .expect("a takes the work z left");
    assert_eq!(leased.instance_id, shared);
    let ready = ok(s.ready_instances(t(1), &mine_c, 10).await, "ready for c");
    assert!(
        !ready.instance_ids.contains(&shared),
        "leased work is not listed for the owner: {:?}",
        ready.instance_ids
    );
    assert!(
        ok(s.read_orchestration(&shared, t(1), c.held[1]).await, "read").is_none(),
        "nor read by it"
    );
    assert_lease_lost(
        s.commit_turn(&late, plain_commit(&late, RuntimeStatus::Completed, t(3)))
            .await,
        "the owner's commit while another host holds the instance",
    );
    ok(
        s.commit_turn(&leased, plain_commit(&leased, RuntimeStatus::Running, t(3)))
            .await,
        "the lessee's commit",
    );
    assert_eq!(
        status_of(s, &shared, "after both").await.runtime_status,
        RuntimeStatus::Running
    );
}

/// A commit that reads the work it gives (when the store says it does) returns each named
/// instance's visible work, its own messages included and under the fence given, as a read
/// right after the commit would; an instance without visible work has no item. The instances
/// read are left out of the ready instances the signal tells of; the others stay in it.
pub async fn commit_turn_reading(store: Arc<dyn Store>) {
    let s = &*store;
    if !s.reads_with_commit() || !s.reads_owned_work() {
        return;
    }
    let a = claimed(s, claim("host-a", &[0, 1, 2, 3], &[], LONG_LEASE), "a").await;
    let sender = id_in(0, "sender");
    let [to_read, not_read, idle] = ["to-read", "not-read", "idle"].map(|tag| id_in(1, tag));
    for id in [&sender, &to_read, &not_read, &idle] {
        ok(s.create_instance(new_instance(id, t(0))).await, "create");
    }
    let fence = a.held[0];
    let item = ok(s.read_orchestration(&sender, t(1), fence).await, "read")
        .expect("the sender has its start");
    // Started already, so each has one message before the commit's.
    for id in [&to_read, &not_read, &idle] {
        let first = ok(s.read_orchestration(id, t(1), a.held[1]).await, "read").expect("a start");
        ok(
            s.commit_turn(&first, plain_commit(&first, RuntimeStatus::Running, t(1)))
                .await,
            "the first turn",
        );
    }
    ok(s.enqueue(event(&to_read, "before", t(1))).await, "an event");
    s.signal().take_ready();
    let commit = TurnCommit {
        messages: vec![
            event(&to_read, "sent", t(2)),
            event(&not_read, "sent", t(2)),
        ],
        ..plain_commit(&item, RuntimeStatus::Running, t(2))
    };
    let read = vec![(to_read.clone(), a.held[1]), (idle.clone(), a.held[1])];
    let (held, items) = ok(
        s.commit_turn_reading(&item, commit, Vec::new(), LONG_LEASE, read, t(2))
            .await,
        "commit_turn_reading",
    );
    assert!(held.is_empty());
    assert_eq!(
        items.len(),
        1,
        "no item for an instance without work: {items:?}"
    );
    let got = &items[0];
    assert_eq!(got.instance_id, to_read);
    assert_eq!(got.fence, Some(a.held[1]));
    assert!(got.lock.0.is_empty(), "no lease is taken");
    let names: Vec<String> = got
        .messages
        .iter()
        .map(|m| match &m.message.event.kind {
            EventKind::EventRaised { name, .. } => name.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["before", "sent"], "everything visible, in order");
    let again = ok(
        s.read_orchestration(&to_read, t(2), a.held[1]).await,
        "read",
    )
    .expect("still there");
    assert_eq!(seqs(&again), seqs(got), "the same work a read finds");
    assert_eq!(
        s.signal().take_ready(),
        vec![not_read.clone()],
        "only the instance not read is told of"
    );
    ok(
        s.commit_turn(got, plain_commit(got, RuntimeStatus::Running, t(3)))
            .await,
        "a commit of the work read",
    );
}
