//! Critical sections over entities: mutual exclusion, durable locks released on every ending,
//! the order in which waiting sections get a lock, and the five rules, each refused with an
//! error that names it.

use durable::prelude::*;
use durable::store::Memory;
use durable::testing::TestRuntime;
use durable::{EntityQuery, ErrorKind};
use durable_tests::{WAIT, failure_message, finished, in_both_modes};
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize, Debug)]
pub struct Account {
    balance: i64,
}

#[entity]
impl Account {
    pub fn deposit(&mut self, amount: i64) {
        self.balance += amount;
    }

    pub fn withdraw(&mut self, amount: i64) -> Result<(), Error> {
        if amount > self.balance {
            return Err(Error::msg("insufficient funds"));
        }
        self.balance -= amount;
        Ok(())
    }

    pub fn balance(&self) -> i64 {
        self.balance
    }
}

#[derive(Serialize, Deserialize)]
pub struct Transfer {
    from: String,
    to: String,
    amount: i64,
}

#[orchestrator]
async fn transfer(ctx: OrchestrationContext, t: Transfer) -> Result<bool, Error> {
    let _locks = ctx
        .lock_entities([
            EntityId::of::<Account>(t.from.clone()),
            EntityId::of::<Account>(t.to.clone()),
        ])
        .await?;
    let available = ctx.call_entity::<Account>(t.from.clone()).balance().await?;
    if available < t.amount {
        return Ok(false);
    }
    ctx.call_entity::<Account>(t.from.clone())
        .withdraw(t.amount)
        .await?;
    ctx.call_entity::<Account>(t.to.clone())
        .deposit(t.amount)
        .await?;
    Ok(true)
}

#[tokio::test]
async fn concurrent_transfers_conserve_the_total_and_never_deadlock() {
    in_both_modes(
        |b| b.register_entity::<Account>().register(transfer),
        |rt| async move {
            let client = rt.client();
            for a in 0..10 {
                client
                    .signal_entity::<Account>(format!("acct{a}"))
                    .deposit(100)
                    .await
                    .unwrap();
            }
            let mut ids = Vec::new();
            for i in 0..120i64 {
                let from = (i * 7) % 10;
                let to = (from + 1 + (i % 9)) % 10;
                let t = Transfer {
                    from: format!("acct{from}"),
                    to: format!("acct{to}"),
                    amount: 10 + (i * 13) % 90,
                };
                ids.push(client.start(transfer, t).await.unwrap());
            }
            for id in &ids {
                let status = client.wait_for_completion(id, WAIT).await.unwrap();
                assert_eq!(
                    status.runtime_status,
                    RuntimeStatus::Completed,
                    "{status:?}"
                );
            }
            rt.idle().await;
            let mut total = 0;
            for a in 0..10 {
                let acct = client
                    .read_entity::<Account>(format!("acct{a}"))
                    .await
                    .unwrap()
                    .unwrap();
                assert!(acct.balance >= 0, "acct{a} went negative: {}", acct.balance);
                total += acct.balance;
            }
            assert_eq!(total, 1000);
        },
    )
    .await;
}

#[orchestrator]
async fn hold(ctx: OrchestrationContext, key: String) -> Result<(), Error> {
    let guard = ctx
        .lock_entities([EntityId::of::<Account>(key.clone())])
        .await?;
    ctx.call_entity::<Account>(key.clone()).deposit(1).await?;
    let fail: bool = ctx.wait_for_event("Release").await?;
    if fail {
        return Err(Error::msg("failed while holding the lock"));
    }
    drop(guard);
    // After the release, other operations go first or after; the orchestration goes on.
    ctx.call_entity::<Account>(key).deposit(1000).await?;
    Ok(())
}

async fn balance(rt: &TestRuntime, key: &str) -> i64 {
    rt.client()
        .read_entity::<Account>(key)
        .await
        .unwrap()
        .map(|a| a.balance)
        .unwrap_or(0)
}

#[tokio::test]
async fn a_locked_entity_runs_only_its_holders_operations_until_released() {
    in_both_modes(
        |b| b.register_entity::<Account>().register(hold),
        |rt| async move {
            let client = rt.client();
            let id = client
                .start(hold, "x".to_string())
                .instance_id("holder")
                .await
                .unwrap();
            rt.idle().await;
            client
                .signal_entity::<Account>("x")
                .deposit(5)
                .await
                .unwrap();
            rt.idle().await;
            assert_eq!(balance(&rt, "x").await, 1, "the signal waits for the lock");
            let meta = client
                .entity_metadata(&EntityId::of::<Account>("x"), false)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(meta.locked_by.as_deref(), Some("holder"));
            assert_eq!(meta.backlog, 1);

            client.raise_event(&id, "Release", false).await.unwrap();
            finished(&rt, &id).await;
            rt.idle().await;
            assert_eq!(balance(&rt, "x").await, 1006);
        },
    )
    .await;
}

/// An entity that keeps, in order, who wrote to it.
#[derive(Default, Serialize, Deserialize, Debug)]
pub struct Log {
    entries: Vec<String>,
}

#[entity]
impl Log {
    pub fn add(&mut self, entry: String) {
        self.entries.push(entry);
    }
}

/// Locks the logs `keys` (in the global order, as every section does) and writes `name` to
/// each.
#[orchestrator]
async fn write_locked(
    ctx: OrchestrationContext,
    (keys, name): (Vec<String>, String),
) -> Result<(), Error> {
    let _section = ctx
        .lock_entities(keys.iter().map(|k| EntityId::of::<Log>(k.clone())))
        .await?;
    for key in keys {
        ctx.call_entity::<Log>(key).add(name.clone()).await?;
    }
    Ok(())
}

/// Locks log `key`, writes to it, and keeps it locked until told to let go.
#[orchestrator]
async fn hold_log(ctx: OrchestrationContext, key: String) -> Result<(), Error> {
    let _section = ctx
        .lock_entities([EntityId::of::<Log>(key.clone())])
        .await?;
    ctx.call_entity::<Log>(key)
        .add("holder".to_string())
        .await?;
    ctx.wait_for_event::<()>("Release").await?;
    Ok(())
}

/// Log `b` is locked; first a section over `b` alone asks for it, then `pairs` sections over
/// `aN` and `b` (each locks its `aN` first, then waits for `b` with it held). Once `b` is
/// released, returns who wrote to `b`, in order.
async fn grants_after_release(rt: &TestRuntime, pairs: usize) -> Vec<String> {
    let client = rt.client();
    let holder = client
        .start(hold_log, "b".to_string())
        .instance_id("holder")
        .await
        .unwrap();
    rt.idle().await;
    let mut ids = Vec::new();
    let alone = (vec!["b".to_string()], "alone".to_string());
    ids.push(client.start(write_locked, alone).await.unwrap());
    rt.idle().await;
    for n in 0..pairs {
        let keys = vec![format!("a{n}"), "b".to_string()];
        ids.push(
            client
                .start(write_locked, (keys, format!("pair{n}")))
                .await
                .unwrap(),
        );
        rt.idle().await;
    }
    let meta = client
        .entity_metadata(&EntityId::of::<Log>("b"), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(meta.locked_by.as_deref(), Some("holder"));
    assert_eq!(meta.backlog, pairs + 1, "every section waits for `b`");

    client.raise_event(&holder, "Release", ()).await.unwrap();
    for id in ids.iter().chain([&holder]) {
        let status = finished(rt, id).await;
        assert_eq!(
            status.runtime_status,
            RuntimeStatus::Completed,
            "{status:?}"
        );
    }
    for n in 0..pairs {
        let log = client.read_entity::<Log>(format!("a{n}")).await.unwrap();
        assert_eq!(log.unwrap().entries, [format!("pair{n}")]);
    }
    client
        .read_entity::<Log>("b")
        .await
        .unwrap()
        .unwrap()
        .entries
}

#[tokio::test]
async fn a_released_lock_goes_first_to_a_section_already_holding_other_locks() {
    in_both_modes(
        |b| {
            b.register_entity::<Log>()
                .register(write_locked)
                .register(hold_log)
        },
        |rt| async move {
            // The pair asked last, but it keeps `a0` locked while it waits: it goes first.
            assert_eq!(
                grants_after_release(&rt, 1).await,
                ["holder", "pair0", "alone"]
            );
        },
    )
    .await;
}

#[tokio::test]
async fn a_waiting_section_is_passed_over_at_most_eight_times_in_a_row() {
    in_both_modes(
        |b| {
            b.register_entity::<Log>()
                .register(write_locked)
                .register(hold_log)
        },
        |rt| async move {
            let mut expected = vec!["holder".to_string()];
            expected.extend((0..8).map(|n| format!("pair{n}")));
            expected.push("alone".to_string());
            expected.extend((8..10).map(|n| format!("pair{n}")));
            assert_eq!(grants_after_release(&rt, 10).await, expected);
        },
    )
    .await;
}

#[tokio::test]
async fn locks_are_released_when_the_orchestration_fails_or_is_terminated() {
    in_both_modes(
        |b| b.register_entity::<Account>().register(hold),
        |rt| async move {
            let client = rt.client();
            let failing = client.start(hold, "f".to_string()).await.unwrap();
            let terminated = client.start(hold, "t".to_string()).await.unwrap();
            rt.idle().await;
            client.raise_event(&failing, "Release", true).await.unwrap();
            client.terminate(&terminated, "stop").await.unwrap();
            assert_eq!(
                failure_message(&finished(&rt, &failing).await),
                "failed while holding the lock"
            );
            finished(&rt, &terminated).await;
            for key in ["f", "t"] {
                client
                    .signal_entity::<Account>(key)
                    .deposit(10)
                    .await
                    .unwrap();
            }
            rt.idle().await;
            assert_eq!(balance(&rt, "f").await, 11);
            assert_eq!(balance(&rt, "t").await, 11);
        },
    )
    .await;
}

#[tokio::test]
async fn locks_are_durable_across_a_host_restart() {
    let store = Memory::new();
    let first = TestRuntime::start(
        Runtime::builder()
            .store(store.clone())
            .register_entity::<Account>()
            .register(hold),
    )
    .await
    .unwrap();
    let id = first.client().start(hold, "d".to_string()).await.unwrap();
    first.idle().await;
    first.shutdown().await;
    drop(first);

    let second = TestRuntime::start(
        Runtime::builder()
            .store(store.clone())
            .register_entity::<Account>()
            .register(hold),
    )
    .await
    .unwrap();
    let client = second.client();
    client
        .signal_entity::<Account>("d")
        .deposit(5)
        .await
        .unwrap();
    second.idle().await;
    assert_eq!(
        balance(&second, "d").await,
        1,
        "still locked after the restart"
    );
    client.raise_event(&id, "Release", false).await.unwrap();
    finished(&second, &id).await;
    second.idle().await;
    assert_eq!(balance(&second, "d").await, 1006);
}

#[orchestrator]
async fn quick(_ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    Ok(())
}

#[tokio::test]
async fn cleaning_releases_locks_of_orchestrations_that_no_longer_run() {
    let rt = TestRuntime::start(
        Runtime::builder()
            .register_entity::<Account>()
            .register(hold)
            .register(quick),
    )
    .await
    .unwrap();
    let client = rt.client();
    client
        .start(hold, "o".to_string())
        .instance_id("owner")
        .await
        .unwrap();
    rt.idle().await;
    // Replace the holder with another execution: its lock is orphaned.
    client
        .start(quick, ())
        .instance_id("owner")
        .replace_existing()
        .await
        .unwrap();
    finished(&rt, "owner").await;
    client
        .signal_entity::<Account>("o")
        .deposit(5)
        .await
        .unwrap();
    rt.idle().await;
    assert_eq!(balance(&rt, "o").await, 1);
    let cleaned = client.clean_entity_storage(false, true).await.unwrap();
    assert_eq!(cleaned.orphaned_locks_released, 1);
    rt.idle().await;
    assert_eq!(balance(&rt, "o").await, 6);
    let listed = client.list_entities(&EntityQuery::default()).await.unwrap();
    assert!(listed.entities.iter().all(|e| e.locked_by.is_none()));
}

#[orchestrator]
async fn break_rule(ctx: OrchestrationContext, rule: u8) -> Result<String, Error> {
    let a = EntityId::of::<Account>("a");
    let b = EntityId::of::<Account>("b");
    let _guard = ctx.lock_entities([a.clone(), b]).await?;
    let err = match rule {
        1 => ctx.lock_entities([a]).await.map(|_| ()).unwrap_err(),
        2 => ctx
            .call_sub_orchestrator(quick, ())
            .await
            .map(|_| ())
            .unwrap_err(),
        3 => ctx
            .call_entity::<Account>("elsewhere")
            .deposit(1)
            .await
            .unwrap_err(),
        4 => {
            let first = ctx.call_entity::<Account>("a").deposit(1);
            let second = ctx
                .call_entity::<Account>("a")
                .deposit(1)
                .await
                .unwrap_err();
            first.await?;
            second
        }
        _ => {
            ctx.signal_entity::<Account>("b").deposit(1);
            return Ok("signalled".into());
        }
    };
    assert_eq!(err.kind(), &ErrorKind::CriticalSection);
    Ok(err.to_string())
}

#[tokio::test]
async fn each_critical_section_rule_is_enforced_with_an_error_naming_it() {
    in_both_modes(
        |b| {
            b.register_entity::<Account>()
                .register(break_rule)
                .register(quick)
        },
        |rt| async move {
            let client = rt.client();
            let expected = [
                "critical section rule \"no nesting\"",
                "critical section rule \"no sub-orchestrations inside\"",
                "critical section rule \"call only locked entities\": inside a critical section \
                 only locked entities can be called: `@account@elsewhere` is not one of",
                "critical section rule \"no parallel calls to one entity\"",
            ];
            for (rule, text) in (1u8..=4).zip(expected) {
                let id = client.start(break_rule, rule).await.unwrap();
                let out: String = finished(&rt, &id).await.output().unwrap();
                assert!(out.contains(text), "rule {rule}: {out}");
            }
            // Signalling a locked entity cannot return an error (signals return `()`), so it
            // fails the orchestration, naming the rule and the call site.
            let id = client.start(break_rule, 5).await.unwrap();
            let message = failure_message(&finished(&rt, &id).await);
            assert!(
                message
                    .contains("critical section rule \"signal only entities that are not locked\"")
                    && message.contains("tests/tests/critical_sections.rs:"),
                "{message}"
            );
            // Every section above ended, so nothing stays locked.
            client
                .signal_entity::<Account>("a")
                .deposit(1)
                .await
                .unwrap();
            rt.idle().await;
            let a = client
                .entity_metadata(&EntityId::of::<Account>("a"), false)
                .await
                .unwrap()
                .unwrap();
            assert!(a.locked_by.is_none());
        },
    )
    .await;
}
