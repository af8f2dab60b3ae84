//! The entity examples of `durable-examples` (aggregator, entity to entity, bank, reminders),
//! checked for what their users would notice: exact totals, one alert per crossing, money that
//! is never created or lost, and reminders that fire at their time and not before.
//!
//! Time is the test kit's manual clock: scheduled signals are reached with
//! `TestRuntime::advance`, never with a real sleep. Scenarios that run an orchestration run
//! twice, with the instance cache and with `always_replay(true)`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::TimeDelta;
use durable::prelude::*;
use durable::testing::TestRuntime;
use durable::{Entity, Orchestrator};
use durable_examples::aggregator::{self, PageTotal, PageViews, rank_pages};
use durable_examples::bank::{self, Account, AuditReport, Transfer, audit, transfer};
use durable_examples::entity_to_entity::{
    self, MONITOR_KEY, THRESHOLD, ThresholdAlert, ThresholdMonitor, UsageCounter,
};
use durable_examples::reminders::{self, Reminder, ReminderRequest};
use durable_tests::{failure_message, finished, in_both_modes};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// The committed state of entity `E` once all due work has settled; its default when it does
/// not exist.
async fn settled<E: Entity>(rt: &TestRuntime, key: &str) -> Result<E, Error> {
    rt.idle().await;
    Ok(rt.client().read_entity::<E>(key).await?.unwrap_or_default())
}

/// Runs `f` on `input` to completion and returns its output.
async fn run<O: Orchestrator>(rt: &TestRuntime, f: O, input: O::Input) -> Result<O::Output, Error> {
    let id = rt.client().start(f, input).await?;
    finished(rt, &id).await.output()
}

// --- aggregator ---------------------------------------------------------------------------

#[tokio::test]
async fn aggregator_total_is_exact_with_many_concurrent_signals() {
    let rt = TestRuntime::start(aggregator::register(Runtime::builder()))
        .await
        .unwrap();
    // 40 senders at once, 25 reports each, of 1 to 7 views.
    let mut senders = Vec::new();
    for sender in 0..40u64 {
        let client = rt.client();
        senders.push(tokio::spawn(async move {
            let mut sent = 0;
            for n in 0..25u64 {
                let views = 1 + (sender * 3 + n) % 7;
                client
                    .signal_entity::<PageViews>("/home")
                    .record(views)
                    .await?;
                sent += views;
            }
            Ok::<u64, Error>(sent)
        }));
    }
    let mut sent = 0;
    for sender in senders {
        sent += sender.await.unwrap().unwrap();
    }
    let page = settled::<PageViews>(&rt, "/home").await.unwrap();
    assert_eq!(
        page,
        PageViews {
            views: sent,
            reports: 1000
        },
        "every report counts exactly once"
    );

    // A reset starts the page over; reports after it count from zero.
    let client = rt.client();
    client
        .signal_entity::<PageViews>("/home")
        .reset()
        .await
        .unwrap();
    client
        .signal_entity::<PageViews>("/home")
        .record(3)
        .await
        .unwrap();
    assert_eq!(
        settled::<PageViews>(&rt, "/home").await.unwrap(),
        PageViews {
            views: 3,
            reports: 1
        }
    );
}

#[tokio::test]
async fn rank_pages_reads_the_entities_and_ranks_them() {
    in_both_modes(aggregator::register, |rt| async move {
        let client = rt.client();
        for (page, views) in [("/a", 5), ("/b", 9), ("/c", 5), ("/b", 2)] {
            client
                .signal_entity::<PageViews>(page)
                .record(views)
                .await?;
        }
        rt.idle().await;
        let pages = ["/a", "/b", "/never", "/c"].map(String::from).to_vec();
        let ranked = run(&rt, rank_pages, pages).await?;
        let ranked: Vec<(String, u64)> = ranked
            .into_iter()
            .map(|PageTotal { page, views }| (page, views))
            .collect();
        assert_eq!(
            ranked,
            [
                ("/b".to_string(), 11),
                ("/a".to_string(), 5),
                ("/c".to_string(), 5),
                ("/never".to_string(), 0)
            ],
            "most viewed first, ties in the order given"
        );
        // Reading a page nobody reported on does not create it.
        assert_eq!(client.read_entity::<PageViews>("/never").await?, None);
        Ok(())
    })
    .await;
}

// --- entity to entity ---------------------------------------------------------------------

async fn add(rt: &TestRuntime, customer: &str, amount: i64) {
    rt.client()
        .signal_entity::<UsageCounter>(customer)
        .add(amount)
        .await
        .unwrap();
}

async fn alerts(rt: &TestRuntime) -> Vec<ThresholdAlert> {
    settled::<ThresholdMonitor>(rt, MONITOR_KEY)
        .await
        .unwrap()
        .alerts
}

fn alert(counter: &str, value: i64) -> ThresholdAlert {
    ThresholdAlert {
        counter: counter.to_string(),
        value,
    }
}

#[tokio::test]
async fn the_monitor_is_alerted_once_when_a_counter_crosses_100() {
    let rt = TestRuntime::start(entity_to_entity::register(Runtime::builder()))
        .await
        .unwrap();
    assert_eq!(THRESHOLD, 100);

    // Up to 99: no alert, and the monitor does not even exist yet.
    for _ in 0..9 {
        add(&rt, "acme", 11).await;
    }
    assert_eq!(
        settled::<UsageCounter>(&rt, "acme").await.unwrap().value,
        99
    );
    assert_eq!(
        rt.client()
            .read_entity::<ThresholdMonitor>(MONITOR_KEY)
            .await
            .unwrap(),
        None,
        "no alert below the threshold"
    );

    // Reaching exactly 100 crosses it.
    add(&rt, "acme", 1).await;
    assert_eq!(alerts(&rt).await, [alert("acme", 100)]);

    // Further calls stay above it: no second alert.
    for _ in 0..5 {
        add(&rt, "acme", 20).await;
    }
    assert_eq!(
        settled::<UsageCounter>(&rt, "acme").await.unwrap().value,
        200
    );
    assert_eq!(alerts(&rt).await, [alert("acme", 100)], "not twice");

    // Another customer crossing alerts separately.
    add(&rt, "globex", 150).await;
    assert_eq!(
        alerts(&rt).await,
        [alert("acme", 100), alert("globex", 150)]
    );
}

#[tokio::test]
async fn concurrent_adds_cross_the_threshold_exactly_once() {
    let rt = TestRuntime::start(entity_to_entity::register(Runtime::builder()))
        .await
        .unwrap();
    let mut senders = Vec::new();
    for _ in 0..60 {
        let client = rt.client();
        senders.push(tokio::spawn(async move {
            client.signal_entity::<UsageCounter>("acme").add(7).await
        }));
    }
    for sender in senders {
        sender.await.unwrap().unwrap();
    }
    assert_eq!(
        settled::<UsageCounter>(&rt, "acme").await.unwrap().value,
        420
    );
    // 7 × 15 = 105 is the first sum at or above 100.
    assert_eq!(alerts(&rt).await, [alert("acme", 105)]);
}

#[tokio::test]
async fn dropping_below_and_climbing_again_is_a_new_crossing() {
    let rt = TestRuntime::start(entity_to_entity::register(Runtime::builder()))
        .await
        .unwrap();
    add(&rt, "acme", 120).await;
    // A correction down to 90, then back up: a second crossing.
    add(&rt, "acme", -30).await;
    add(&rt, "acme", 10).await;
    // A new period: reset, then up again: a third.
    rt.client()
        .signal_entity::<UsageCounter>("acme")
        .reset()
        .await
        .unwrap();
    add(&rt, "acme", 99).await;
    assert_eq!(
        alerts(&rt).await.len(),
        2,
        "99 after the reset is not a crossing"
    );
    add(&rt, "acme", 2).await;
    assert_eq!(
        alerts(&rt).await,
        [alert("acme", 120), alert("acme", 100), alert("acme", 101)]
    );
}

// --- bank ---------------------------------------------------------------------------------

/// Opens `accounts` with `balance` each.
async fn open(rt: &TestRuntime, accounts: &[String], balance: i64) -> Result<(), Error> {
    for name in accounts {
        rt.client()
            .signal_entity::<Account>(name.as_str())
            .deposit(balance)
            .await?;
    }
    rt.idle().await;
    Ok(())
}

/// Every account's committed balance.
async fn balances(rt: &TestRuntime, accounts: &[String]) -> Result<BTreeMap<String, i64>, Error> {
    let mut out = BTreeMap::new();
    for name in accounts {
        let account = settled::<Account>(rt, name).await?;
        out.insert(name.clone(), account.balance);
    }
    Ok(out)
}

#[tokio::test]
async fn concurrent_transfers_conserve_the_total_and_all_complete() {
    in_both_modes(bank::register, |rt| async move {
        let client = rt.client();
        let accounts = bank::account_names(10);
        open(&rt, &accounts, 100).await?;

        // 200 transfers at once, crossing each other in both directions, with an audit
        // started half-way through them.
        let transfers = bank::transfer_mix(&accounts, 200, 60);
        let mut ids = Vec::new();
        let mut audit_id = None;
        for (n, t) in transfers.iter().enumerate() {
            ids.push(client.start(transfer, t.clone()).await?);
            if n == 100 {
                audit_id = Some(client.start(audit, accounts.clone()).await?);
            }
        }

        // Nothing deadlocks: every transfer finishes, and says whether it moved the money.
        let mut expected: BTreeMap<String, i64> =
            accounts.iter().map(|a| (a.clone(), 100)).collect();
        let mut moved = 0;
        for (id, t) in ids.iter().zip(&transfers) {
            let status = finished(&rt, id).await;
            assert_eq!(
                status.runtime_status,
                RuntimeStatus::Completed,
                "{status:?}"
            );
            if status.output::<bool>()? {
                moved += 1;
                *expected.get_mut(&t.from).unwrap() -= t.amount;
                *expected.get_mut(&t.to).unwrap() += t.amount;
            }
        }
        assert!(moved > 0, "some transfers move money");

        // The balances are exactly what the transfers that said `true` add up to.
        let actual = balances(&rt, &accounts).await?;
        assert_eq!(actual, expected);
        assert!(
            actual.values().all(|b| *b >= 0),
            "no account goes negative: {actual:?}"
        );
        assert_eq!(actual.values().sum::<i64>(), 1000);

        // The audit taken while transfers were in flight saw no money in transit.
        let during: AuditReport = finished(&rt, &audit_id.unwrap()).await.output()?;
        assert_eq!(during.total, 1000);
        assert_eq!(during.balances.len(), 10);
        let after = run(&rt, audit, accounts.clone()).await?;
        assert_eq!(after.balances, actual);
        assert_eq!(after.total, 1000);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn opposite_transfers_between_two_accounts_never_deadlock() {
    in_both_modes(bank::register, |rt| async move {
        let client = rt.client();
        let pair = ["alice".to_string(), "bob".to_string()];
        open(&rt, &pair, 50).await?;
        let mut ids = Vec::new();
        for n in 0..40 {
            let (from, to) = if n % 2 == 0 {
                ("alice", "bob")
            } else {
                ("bob", "alice")
            };
            ids.push(client.start(transfer, Transfer::new(from, to, 5)).await?);
        }
        for id in &ids {
            let status = finished(&rt, id).await;
            assert_eq!(status.runtime_status, RuntimeStatus::Completed);
        }
        let after = balances(&rt, &pair).await?;
        assert_eq!(after.values().sum::<i64>(), 100);
        assert!(after.values().all(|b| *b >= 0), "{after:?}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn an_overdraft_transfer_returns_false_and_changes_nothing() {
    in_both_modes(bank::register, |rt| async move {
        let pair = ["alice".to_string(), "bob".to_string()];
        rt.client()
            .signal_entity::<Account>("alice")
            .deposit(50)
            .await?;
        rt.client()
            .signal_entity::<Account>("bob")
            .deposit(10)
            .await?;
        rt.idle().await;
        let before = balances(&rt, &pair).await?;

        let moved = run(&rt, transfer, Transfer::new("alice", "bob", 51)).await?;
        assert!(!moved, "51 is more than alice has");
        assert_eq!(balances(&rt, &pair).await?, before, "nothing changed");

        // Exactly the balance is enough.
        let moved = run(&rt, transfer, Transfer::new("alice", "bob", 50)).await?;
        assert!(moved);
        let after = balances(&rt, &pair).await?;
        assert_eq!((after["alice"], after["bob"]), (0, 60));

        // An account nobody opened has nothing to give.
        let moved = run(&rt, transfer, Transfer::new("carol", "bob", 1)).await?;
        assert!(!moved);
        assert_eq!(balances(&rt, &pair).await?, after);
        Ok(())
    })
    .await;
}

/// Withdraws from an account by calling the entity, and reports the outcome as text.
#[orchestrator]
async fn try_withdraw(
    ctx: OrchestrationContext,
    (key, amount): (String, i64),
) -> Result<String, Error> {
    Ok(
        match ctx.call_entity::<Account>(key).withdraw(amount).await {
            Ok(balance) => format!("left {balance}"),
            Err(e) => e.to_string(),
        },
    )
}

#[tokio::test]
async fn an_account_refuses_an_overdraft_with_an_error_and_keeps_its_balance() {
    in_both_modes(
        |b| bank::register(b).register(try_withdraw),
        |rt| async move {
            rt.client()
                .signal_entity::<Account>("alice")
                .deposit(30)
                .await?;
            rt.idle().await;
            let refused = run(&rt, try_withdraw, ("alice".to_string(), 31)).await?;
            assert!(
                refused.contains("insufficient funds: the balance is 30, the withdrawal 31"),
                "{refused}"
            );
            assert_eq!(settled::<Account>(&rt, "alice").await?.balance, 30);

            // A signalled overdraft fails the same way: there is no caller to tell, and the
            // balance stays.
            rt.client()
                .signal_entity::<Account>("alice")
                .withdraw(1_000)
                .await?;
            assert_eq!(settled::<Account>(&rt, "alice").await?.balance, 30);

            let ok = run(&rt, try_withdraw, ("alice".to_string(), 30)).await?;
            assert_eq!(ok, "left 0");
            let negative = run(&rt, try_withdraw, ("alice".to_string(), -5)).await?;
            assert!(negative.contains("must be positive"), "{negative}");
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn malformed_transfers_fail_with_a_clear_message() {
    in_both_modes(bank::register, |rt| async move {
        open(&rt, &["alice".to_string()], 100).await?;
        for (t, expected) in [
            (
                Transfer::new("alice", "alice", 10),
                "a transfer needs two different accounts, got `alice` twice",
            ),
            (
                Transfer::new("alice", "bob", 0),
                "a transfer must move a positive amount, not 0",
            ),
        ] {
            let id = rt.client().start(transfer, t).await?;
            assert_eq!(failure_message(&finished(&rt, &id).await), expected);
        }
        assert_eq!(settled::<Account>(&rt, "alice").await?.balance, 100);
        Ok(())
    })
    .await;
}

// --- reminders ----------------------------------------------------------------------------

async fn schedule(rt: &TestRuntime, key: &str, message: &str, after: Duration) {
    rt.client()
        .signal_entity::<Reminder>(key)
        .schedule(ReminderRequest::new(message, after))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_reminder_fires_at_its_time_and_not_before() {
    let rt = TestRuntime::start(reminders::register(Runtime::builder()))
        .await
        .unwrap();
    let start = rt.clock().now();
    schedule(&rt, "alice", "stand-up", HOUR).await;

    let reminder = settled::<Reminder>(&rt, "alice").await.unwrap();
    let pending = reminder.pending.expect("scheduled");
    assert_eq!(pending.message, "stand-up");
    assert_eq!(pending.due, start + TimeDelta::hours(1));
    assert!(reminder.fired.is_empty());

    // One second before it is due: still pending.
    rt.advance(HOUR - Duration::from_secs(1)).await;
    let reminder = settled::<Reminder>(&rt, "alice").await.unwrap();
    assert!(reminder.fired.is_empty(), "fired early: {reminder:?}");
    assert!(reminder.pending.is_some());

    // At its time: fired, once, and nothing is pending any more.
    rt.advance(Duration::from_secs(1)).await;
    let reminder = settled::<Reminder>(&rt, "alice").await.unwrap();
    assert_eq!(reminder.pending, None);
    assert_eq!(reminder.fired.len(), 1);
    let fired = &reminder.fired[0];
    assert_eq!(fired.message, "stand-up");
    assert_eq!(fired.due, start + TimeDelta::hours(1));
    assert_eq!(fired.fired_at, fired.due);

    rt.advance(HOUR).await;
    assert_eq!(
        settled::<Reminder>(&rt, "alice").await.unwrap().fired.len(),
        1
    );
}

#[tokio::test]
async fn a_cancelled_or_replaced_reminder_does_not_fire() {
    let rt = TestRuntime::start(reminders::register(Runtime::builder()))
        .await
        .unwrap();
    let start = rt.clock().now();
    let client = rt.client();

    // bob cancels; carol replaces her 10-minute reminder with a 30-minute one.
    schedule(&rt, "bob", "water the plants", 10 * MINUTE).await;
    client
        .signal_entity::<Reminder>("bob")
        .cancel()
        .await
        .unwrap();
    schedule(&rt, "carol", "first", 10 * MINUTE).await;
    rt.idle().await;
    schedule(&rt, "carol", "second", 30 * MINUTE).await;

    // Past the first due time: the outdated signals arrive and are ignored.
    rt.advance(20 * MINUTE).await;
    let bob = settled::<Reminder>(&rt, "bob").await.unwrap();
    assert_eq!((bob.pending, bob.fired.len()), (None, 0));
    let carol = settled::<Reminder>(&rt, "carol").await.unwrap();
    assert!(carol.fired.is_empty(), "{carol:?}");
    assert_eq!(
        carol.pending.as_ref().map(|p| p.message.as_str()),
        Some("second")
    );

    rt.advance(10 * MINUTE).await;
    let carol = settled::<Reminder>(&rt, "carol").await.unwrap();
    let fired: Vec<_> = carol
        .fired
        .iter()
        .map(|f| (f.message.as_str(), f.fired_at))
        .collect();
    assert_eq!(fired, [("second", start + TimeDelta::minutes(30))]);
    assert_eq!(
        settled::<Reminder>(&rt, "bob").await.unwrap().fired.len(),
        0
    );
}

#[tokio::test]
async fn a_client_scheduled_signal_arrives_at_its_time() {
    let rt = TestRuntime::start(reminders::register(Runtime::builder()))
        .await
        .unwrap();
    let start = rt.clock().now();
    // The client decides now that, in two hours, dave gets a reminder for one hour later.
    rt.client()
        .signal_entity_at::<Reminder>("dave", start + TimeDelta::hours(2))
        .schedule(ReminderRequest::new("leave for the airport", HOUR))
        .await
        .unwrap();
    rt.advance(HOUR).await;
    rt.idle().await;
    assert_eq!(
        rt.client().read_entity::<Reminder>("dave").await.unwrap(),
        None,
        "the signal is not delivered before its time"
    );

    rt.advance(HOUR).await;
    let dave = settled::<Reminder>(&rt, "dave").await.unwrap();
    assert_eq!(
        dave.pending.map(|p| p.due),
        Some(start + TimeDelta::hours(3))
    );
    assert!(dave.fired.is_empty());

    rt.advance(HOUR).await;
    let dave = settled::<Reminder>(&rt, "dave").await.unwrap();
    assert_eq!(dave.fired.len(), 1);
    assert_eq!(dave.fired[0].fired_at, start + TimeDelta::hours(3));
}
