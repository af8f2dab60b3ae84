//! Owned work handed out by reading it: ready instances listed and read without a lease,
//! several at once, stale reads refused, work left for other hosts, commits that read the
//! work they give, and the messages coming due.

use std::sync::Arc;

use super::ownership::{claim, claimed, id_in, owned};
use super::support::*;
use crate::RuntimeStatus;
use crate::history::EventKind;
use crate::store::{Owned, PartitionLease, PartitionTable, Store, TurnCommit};

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

/// Several instances read in one call (`read_orchestrations`) come back as each would read
/// alone: with their visible messages and the fence given; an instance with nothing visible
/// yet, or none at all, has no item.
pub async fn read_orchestrations(store: Arc<dyn Store>) {
    let s = &*store;
    if !s.reads_owned_work() {
        return;
    }
    let a = claimed(s, claim("host-a", &[0, 1, 2, 3], &[], LONG_LEASE), "a").await;
    let [first, second, later] = ["first", "second", "later"].map(|tag| id_in(0, tag));
    let other = id_in(2, "other");
    for id in [&first, &second, &later, &other] {
        ok(s.create_instance(new_instance(id, t(0))).await, "create");
    }
    let item = ok(s.read_orchestration(&later, t(1), a.held[0]).await, "read").expect("a start");
    ok(
        s.commit_turn(&item, plain_commit(&item, RuntimeStatus::Running, t(1)))
            .await,
        "the start's turn",
    );
    ok(
        s.enqueue(timer(&later, &format!("{later}#exec-1"), 1, t(100)))
            .await,
        "a later timer",
    );
    ok(
        s.enqueue(timer(&second, &format!("{second}#exec-1"), 2, t(1)))
            .await,
        "a timer due now",
    );
    let wanted = vec![
        (first.clone(), a.held[0]),
        (second.clone(), a.held[0]),
        (later.clone(), a.held[0]),
        (other.clone(), a.held[2]),
        ("nobody".to_string(), a.held[0]),
    ];
    let mut items = ok(
        s.read_orchestrations(wanted, t(2)).await,
        "read_orchestrations",
    );
    items.sort_by(|x, y| x.instance_id.cmp(&y.instance_id));
    let mut expected = vec![first.clone(), other.clone(), second.clone()];
    expected.sort();
    assert_eq!(
        items
            .iter()
            .map(|i| i.instance_id.clone())
            .collect::<Vec<_>>(),
        expected,
        "the instances with visible work, and only those"
    );
    for item in &items {
        let alone = ok(
            s.read_orchestration(&item.instance_id, t(2), item.fence.expect("fenced"))
                .await,
            "read alone",
        )
        .expect("the same work");
        assert_eq!(
            seqs(item),
            seqs(&alone),
            "{}: as read alone",
            item.instance_id
        );
        assert_eq!(item.history_len, alone.history_len);
        assert_eq!(item.instance.runtime_status, alone.instance.runtime_status);
        assert!(item.lock.0.is_empty(), "no lease was taken");
    }
    let of = |id: &str| items.iter().find(|i| i.instance_id == id).expect("read");
    assert_eq!(
        of(&other).fence,
        Some(a.held[2]),
        "each under its own fence"
    );
    assert_eq!(of(&second).messages.len(), 2, "the start and the due timer");
}

/// The messages of the owned partitions that become visible after `now` and by `until` are
/// listed as their instance and time, earliest first, up to the limit; those of partitions
/// owned by no one given, those visible already and those beyond `until` are not. Checked on
/// a store that hands out owned work by reading it, whose hosts load these times when they
/// take partitions over (a store that leases work has no use for it).
pub async fn coming_due(store: Arc<dyn Store>) {
    let s = &*store;
    if !s.reads_owned_work() {
        return;
    }
    let a = claimed(s, claim("host-a", &[0, 1, 2, 3], &[], SHORT_LEASE), "a").await;
    let first = id_in(0, "due");
    let second = id_in(3, "due");
    for id in [&first, &second] {
        ok(s.create_instance(new_instance(id, t(0))).await, "create");
    }
    for (id, timer_id, at) in [(&first, 1, 100), (&second, 1, 50), (&first, 2, 900)] {
        ok(
            s.enqueue(timer(id, &format!("{id}#exec-1"), timer_id, t(at)))
                .await,
            "a timer",
        );
    }
    let all = ok(
        s.coming_due(t(1), t(500), &owned(&a), 10).await,
        "coming_due",
    );
    assert_eq!(
        all,
        vec![(second.clone(), t(50)), (first.clone(), t(100))],
        "earliest first, up to `until`; the starts, visible already, are not listed"
    );
    assert_eq!(
        ok(
            s.coming_due(t(50), t(900), &owned(&a), 10).await,
            "coming_due"
        ),
        vec![(first.clone(), t(100)), (first.clone(), t(900))],
        "after `now`, and `until` included"
    );
    assert_eq!(
        ok(
            s.coming_due(t(1), t(1000), &owned(&a), 1).await,
            "coming_due"
        ),
        vec![(second.clone(), t(50))],
        "at most the limit"
    );
    let only_first = Owned::Partitions {
        count: 4,
        leases: vec![a.held[0]],
        host: "conformance".into(),
    };
    assert_eq!(
        ok(
            s.coming_due(t(1), t(1000), &only_first, 10).await,
            "coming_due, one partition"
        ),
        vec![(first.clone(), t(100)), (first, t(900))],
        "only the owned partitions"
    );
}
