//! The entity scenarios: each reports on an entity's committed state (for the bank, on the
//! audit that checks it).

use std::time::{Duration, Instant};

use durable::Entity;
use durable::prelude::*;
use durable_examples::{aggregator, bank, entity_to_entity, reminders};

use super::{Subject, expect_eq, format_duration, output};

/// What an entity scenario hands back: the subject of its report, and its verdict.
pub(super) type Outcome = (Subject, Result<(), String>);

/// Twenty senders at once, twenty `record` signals each, to one page: its counts must grow by
/// exactly what was sent.
pub(super) async fn aggregator_scenario(
    client: &Client,
    timeout: Duration,
    notes: &mut Vec<String>,
) -> Result<Outcome, Error> {
    use aggregator::PageViews;
    const PAGE: &str = "/pricing";
    const SENDERS: u64 = 20;
    const SIGNALS_EACH: u64 = 20;

    // Start from whatever an earlier run left, so the scenario can run twice.
    let before = client
        .read_entity::<PageViews>(PAGE)
        .await?
        .unwrap_or_default();
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let client = client.clone();
        senders.push(tokio::spawn(async move {
            let mut views = 0;
            for n in 0..SIGNALS_EACH {
                let batch = 1 + (sender + n) % 4;
                client
                    .signal_entity::<PageViews>(PAGE)
                    .record(batch)
                    .await?;
                views += batch;
            }
            Ok::<u64, Error>(views)
        }));
    }
    let mut sent = 0;
    for sender in senders {
        sent += sender.await.map_err(|e| Error::msg(e.to_string()))??;
    }
    notes.push(format!(
        "signals   {} from {SENDERS} concurrent senders, {sent} views in all",
        SENDERS * SIGNALS_EACH
    ));
    let expected = PageViews {
        views: before.views + sent,
        reports: before.reports + SENDERS * SIGNALS_EACH,
    };
    let after = wait_for_entity::<PageViews>(client, PAGE, timeout, "every report", |p| {
        p.reports >= expected.reports
    })
    .await?;
    let verdict = expect_eq(after, expected);
    Ok((Subject::entity::<PageViews>(client, PAGE).await?, verdict))
}

/// A usage counter reset to zero, then fifteen concurrent `add(10)`: it crosses 100 once, so
/// the monitor gets exactly one new alert, at 100.
pub(super) async fn threshold_scenario(
    client: &Client,
    timeout: Duration,
    notes: &mut Vec<String>,
) -> Result<Outcome, Error> {
    use entity_to_entity::{MONITOR_KEY, ThresholdMonitor, UsageCounter};
    const CUSTOMER: &str = "acme";

    let alerts_before = client
        .read_entity::<ThresholdMonitor>(MONITOR_KEY)
        .await?
        .unwrap_or_default()
        .alerts_for(CUSTOMER);
    client
        .signal_entity::<UsageCounter>(CUSTOMER)
        .reset()
        .await?;
    let mut senders = Vec::new();
    for _ in 0..15 {
        let client = client.clone();
        senders.push(tokio::spawn(async move {
            client.signal_entity::<UsageCounter>(CUSTOMER).add(10).await
        }));
    }
    for sender in senders {
        sender.await.map_err(|e| Error::msg(e.to_string()))??;
    }
    let counter =
        wait_for_entity::<UsageCounter>(client, CUSTOMER, timeout, "150", |c| c.value == 150)
            .await?;
    let monitor =
        wait_for_entity::<ThresholdMonitor>(client, MONITOR_KEY, timeout, "an alert", |m| {
            m.alerts_for(CUSTOMER) > alerts_before
        })
        .await?;
    notes.push(format!("counter   {CUSTOMER} at {}", counter.value));
    let new_alerts: Vec<_> = monitor
        .alerts
        .iter()
        .filter(|a| a.counter == CUSTOMER)
        .skip(alerts_before)
        .map(|a| a.value)
        .collect();
    notes.push(format!("alerts    {} new for {CUSTOMER}", new_alerts.len()));
    let verdict = expect_eq(new_alerts, vec![100]);
    Ok((
        Subject::entity::<ThresholdMonitor>(client, MONITOR_KEY).await?,
        verdict,
    ))
}

/// Ten accounts, 200 transfers started at once, an audit under lock before and after: every
/// transfer completes, no account goes negative, and the total does not change.
pub(super) async fn bank_scenario(
    client: &Client,
    timeout: Duration,
    notes: &mut Vec<String>,
) -> Result<Outcome, Error> {
    const TRANSFERS: usize = 200;
    let accounts = bank::account_names(10);
    for name in &accounts {
        client
            .signal_entity::<bank::Account>(name.as_str())
            .deposit(500)
            .await?;
    }
    let id = client.start(bank::audit, accounts.clone()).await?;
    let before: bank::AuditReport = client.wait_for_completion(&id, timeout).await?.output()?;

    let mut ids = Vec::new();
    for t in bank::transfer_mix(&accounts, TRANSFERS, 400) {
        ids.push(client.start(bank::transfer, t).await?);
    }
    let (mut moved, mut refused, mut failed) = (0, 0, 0);
    for id in &ids {
        let status = client.wait_for_completion(id, timeout).await?;
        match status.output::<bool>() {
            Ok(true) => moved += 1,
            Ok(false) => refused += 1,
            Err(_) => failed += 1,
        }
    }
    notes.push(format!(
        "transfers {TRANSFERS}: {moved} moved, {refused} refused for lack of funds, {failed} failed"
    ));

    let id = client.start(bank::audit, accounts).await?;
    let status = client.wait_for_completion(&id, timeout).await?;
    let verdict = output::<bank::AuditReport>(&status).and_then(|after| {
        let lowest = after.lowest().unwrap_or_default();
        notes.push(format!(
            "total     {} before, {} after; lowest balance {lowest}",
            before.total, after.total
        ));
        expect_eq(failed, 0)
            .and_then(|()| expect_eq(after.total, before.total))
            .and_then(|()| match lowest {
                0.. => Ok(()),
                _ => Err(format!("an account went negative: {lowest}")),
            })
    });
    Ok((Subject::Instance(Box::new(status)), verdict))
}

/// A reminder scheduled 1 s ahead: pending at first, fired no earlier than it was due.
pub(super) async fn reminder_scenario(
    client: &Client,
    timeout: Duration,
    notes: &mut Vec<String>,
) -> Result<Outcome, Error> {
    use reminders::{Reminder, ReminderRequest};
    const KEY: &str = "demo";
    const DELAY: Duration = Duration::from_secs(1);

    let before = client
        .read_entity::<Reminder>(KEY)
        .await?
        .unwrap_or_default();
    let sent = Instant::now();
    client
        .signal_entity::<Reminder>(KEY)
        .schedule(ReminderRequest::new("stretch your legs", DELAY))
        .await?;
    let scheduled = wait_for_entity::<Reminder>(client, KEY, timeout, "a pending reminder", |r| {
        r.generation > before.generation
    })
    .await?;
    let early = scheduled.fired.len() > before.fired.len();
    if let Some(pending) = &scheduled.pending {
        notes.push(format!(
            "pending   after {}, due {}",
            format_duration(sent.elapsed()),
            pending.due.format("%T%.3f")
        ));
    }
    let fired = wait_for_entity::<Reminder>(client, KEY, timeout, "a fired reminder", |r| {
        r.fired.len() > before.fired.len()
    })
    .await?;
    let waited = sent.elapsed();
    let verdict = match fired.fired.last() {
        _ if early => Err("it fired before it was due".to_string()),
        Some(last) => {
            notes.push(format!(
                "fired     at {}, {} after the signal was sent",
                last.fired_at.format("%T%.3f"),
                format_duration(waited)
            ));
            if last.fired_at < last.due || waited < DELAY {
                Err(format!(
                    "fired too early: due {}, fired {}",
                    last.due, last.fired_at
                ))
            } else {
                Ok(())
            }
        }
        None => Err("nothing fired".to_string()),
    };
    Ok((Subject::entity::<Reminder>(client, KEY).await?, verdict))
}

/// Polls the committed state of entity `E` (its default when it does not exist yet) until
/// `done` holds, and returns it. `what` says what is awaited, for the timeout's error.
async fn wait_for_entity<E: Entity>(
    client: &Client,
    key: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&E) -> bool,
) -> Result<E, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        let state = client.read_entity::<E>(key).await?.unwrap_or_default();
        if done(&state) {
            return Ok(state);
        }
        if Instant::now() >= deadline {
            return Err(Error::msg(format!(
                "entity `{}` did not reach {what} within {timeout:?}",
                EntityId::of::<E>(key)
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
