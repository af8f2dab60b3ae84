//! W6–W10: workloads of long-lived state (transfers between locked accounts, events raised
//! one by one, timers, eternal orchestrations, long histories).

use std::time::{Duration, Instant};

use durable::prelude::*;

use super::super::funcs::{
    EternalState, ReplaySubject, eternal, event_sink, replay_subject, timer_once, timer_sequence,
};
use super::super::{BenchResult, Env, Options, median};
use super::{WAIT, in_flight, secs, size, sizes, wait_all, wait_status, warm_up};
use crate::bank;

pub(super) async fn w6(env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    let transfers = size(opts, 3000);
    let accounts = bank::account_names(opts.n.map_or(100, |n| n.clamp(2, 100)) as usize);
    let opening = 1000i64;
    let (store, _) = env.fresh("w6")?;
    let rt = opts.builder(store).start().await?;
    let client = rt.client();
    warm_up(env, &client).await?;
    for name in &accounts {
        client
            .signal_entity::<bank::Account>(name.clone())
            .deposit(opening)
            .await?;
    }
    rt.idle().await;
    let mix = bank::transfer_mix(&accounts, transfers as usize, 100);
    let (c, mix) = (&client, &mix);
    let t0 = Instant::now();
    let ids = in_flight(transfers, |i| async move {
        c.start(bank::transfer, mix[i as usize].clone())
            .instance_id(format!("t-{i}"))
            .await
    })
    .await?;
    let done = wait_all(env, c, "W6", &ids).await?;
    let seconds = secs(t0);
    rt.idle().await;
    let failed = done.iter().filter(|s| s.output::<bool>().is_err()).count();
    let moved = done
        .iter()
        .filter(|s| s.output::<bool>().ok() == Some(true))
        .count();
    let mut total = 0;
    let mut negative = 0;
    for name in &accounts {
        let balance = client
            .read_entity::<bank::Account>(name.clone())
            .await?
            .map_or(0, |a| a.balance);
        total += balance;
        negative += usize::from(balance < 0);
    }
    rt.shutdown().await;
    let expected = opening * accounts.len() as i64;
    Ok(vec![
        BenchResult::new(
            "W6",
            format!("transfers over {} accounts", accounts.len()),
            transfers,
            seconds,
        )
        .rate(transfers as f64, "transfers/s")
        .note(format!("{moved} moved money"))
        .check(failed == 0, || format!("{failed} transfers failed"))
        .check(total == expected && negative == 0, || {
            format!("total {total}, expected {expected}; {negative} negative balances")
        }),
    ])
}

pub(super) async fn w7(env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    let count = size(opts, 1000);
    let (store, _) = env.fresh("w7")?;
    let rt = opts.builder(store).start().await?;
    let client = rt.client();
    warm_up(env, &client).await?;
    let t0 = Instant::now();
    let id = client.start(event_sink, count).await?;
    for i in 1..=count {
        client.raise_event(id.as_str(), "e", i).await?;
        env.progress().update("W7 raising", i, count);
    }
    let status = client.wait_for_completion(id.as_str(), WAIT).await?;
    let seconds = secs(t0);
    rt.shutdown().await;
    let got = status.output::<u64>().ok();
    let expected = count * (count + 1) / 2;
    Ok(vec![
        BenchResult::new("W7", "sequential external events", count, seconds)
            .rate(count as f64, "events/s")
            .events(count as f64)
            .check(got == Some(expected), || {
                format!("sum {got:?}, expected {expected}")
            }),
    ])
}

pub(super) async fn w8(env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    let mut out = Vec::new();
    let (store, _) = env.fresh("w8")?;
    let rt = opts.builder(store).start().await?;
    let client = rt.client();
    warm_up(env, &client).await?;

    // Many timers due at one moment.
    let timers = size(opts, 1000);
    let delay = if opts.n.is_some() {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    let due = chrono::Utc::now() + delay;
    let due_ms = due.timestamp_millis();
    let c = &client;
    let t0 = Instant::now();
    let ids = in_flight(timers, |i| async move {
        c.start(timer_once, due_ms)
            .instance_id(format!("timer-{i}"))
            .await
    })
    .await?;
    let started_late = chrono::Utc::now() > due;
    let done = wait_all(env, c, "W8", &ids).await?;
    let seconds = secs(t0);
    let mut lateness: Vec<f64> = done
        .iter()
        .filter_map(|s| s.output::<i64>().ok())
        .map(|us| us as f64 / 1e3)
        .collect();
    let early = lateness.iter().filter(|&&ms| ms < 0.0).count();
    let missing = done.len() - lateness.len();
    out.push(
        BenchResult::new(
            "W8",
            format!("{timers} timers due in {}s", delay.as_secs()),
            timers,
            seconds,
        )
        .latencies(&mut lateness)
        .check(missing == 0, || {
            format!("{missing} timers did not complete")
        })
        .check(early == 0, || format!("{early} timers fired early"))
        .check(!started_late, || {
            "starting the instances took longer than the delay".to_string()
        }),
    );

    // Sequential short timers.
    let count = size(opts, 100).min(100);
    let t0 = Instant::now();
    let id = client.start(timer_sequence, (count, 10)).await?;
    let status = client.wait_for_completion(id.as_str(), WAIT).await?;
    let seconds = secs(t0);
    rt.shutdown().await;
    let got = status.output::<Vec<i64>>().unwrap_or_default();
    let mut lateness: Vec<f64> = got.iter().map(|&us| us as f64 / 1e3).collect();
    let early = lateness.iter().filter(|&&ms| ms < 0.0).count();
    out.push(
        BenchResult::new(
            "W8",
            format!("{count} sequential 10ms timers"),
            count,
            seconds,
        )
        .rate(count as f64, "timers/s")
        .events(count as f64)
        .latencies(&mut lateness)
        .check(got.len() as u64 == count, || {
            format!("{} of {count} timers reported", got.len())
        })
        .check(early == 0, || format!("{early} timers fired early")),
    );
    Ok(out)
}

pub(super) async fn w9(env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    let iterations = size(opts, 10_000);
    let every = 10;
    let (store, _) = env.fresh("w9")?;
    let rt = opts.builder(store).start().await?;
    let client = rt.client();
    warm_up(env, &client).await?;
    let t0 = Instant::now();
    let id = client
        .start(
            eternal,
            EternalState {
                done: 0,
                limit: iterations,
                every,
            },
        )
        .await?;
    // Sample the history length while it runs (a cheap read every 100 ms).
    let mut longest = 0usize;
    let status = loop {
        let waited = tokio::time::timeout(
            Duration::from_millis(100),
            client.wait_for_completion(id.as_str(), WAIT),
        )
        .await;
        if let Some(s) = client.status_with_history(id.as_str()).await? {
            longest = longest.max(s.history.as_ref().map_or(0, Vec::len));
        }
        if let Ok(done) = waited {
            break done?;
        }
    };
    let seconds = secs(t0);
    rt.shutdown().await;
    let got = status.output::<u64>().ok();
    // One execution: start events, `every` activity calls (2 each), turn markers, the end.
    let bound = (8 * every + 16) as usize;
    Ok(vec![
        BenchResult::new(
            "W9",
            format!("eternal, continue-as-new every {every}"),
            iterations,
            seconds,
        )
        .rate(iterations as f64, "iterations/s")
        .events(2.0 * iterations as f64)
        .with("max_history_events", longest as f64)
        .check(got == Some(iterations), || {
            format!("output {got:?}, expected {iterations}")
        })
        .check(longest <= bound, || {
            format!("history reached {longest} events (bound {bound})")
        }),
    ])
}

pub(super) async fn w10(env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    const PROBES: u64 = 20;
    let mut out = Vec::new();
    let mut first_cached: Option<f64> = None;
    for events in sizes(opts, &[100, 1000, 10_000, 50_000]) {
        let (store, _) = env.fresh("w10")?;
        let rt = opts.builder(store.clone()).start().await?;
        let client = rt.client();
        warm_up(env, &client).await?;
        env.progress()
            .message(&format!("W10 building a history of {events} events…"));
        let calls = (events / 2).max(1);
        let id = client
            .start(
                replay_subject,
                ReplaySubject {
                    calls,
                    probes: 2 * PROBES,
                },
            )
            .await?;
        let id = id.as_str().to_string();
        wait_status(&client, &id, |s| {
            s.custom_status::<u64>().ok().flatten() == Some(0)
        })
        .await?;
        let history_len = client
            .status_with_history(&id)
            .await?
            .and_then(|s| s.history)
            .map_or(0, |h| h.len()) as f64;
        let cached = probe_steps(&client, &id, 1, PROBES).await?;
        rt.shutdown().await;
        drop(rt);

        // A fresh host that caches nothing: every turn replays the whole history.
        let rt = opts
            .builder(store)
            .instance_cache_capacity(0)
            .start()
            .await?;
        let client = rt.client();
        let t0 = Instant::now();
        let evicted = probe_steps(&client, &id, PROBES + 1, PROBES).await?;
        let seconds = secs(t0);
        let status = client.wait_for_completion(&id, WAIT).await?;
        rt.shutdown().await;
        let cached_ms = median(cached);
        let evicted_ms = median(evicted);
        let us_per_event = ((evicted_ms - cached_ms) * 1e3 / history_len.max(1.0)).max(0.0);
        let growth = first_cached.map(|base| cached_ms / base.max(1e-9));
        first_cached.get_or_insert(cached_ms);
        let got = status.output::<u64>().ok();
        let mut r = BenchResult::new(
            "W10",
            format!("resume with {events} events"),
            history_len as u64,
            seconds,
        )
        .with("us_per_event", us_per_event)
        .with("cached_ms_per_step", cached_ms)
        .with("evicted_ms_per_step", evicted_ms)
        .check(got == Some(calls), || {
            format!("output {got:?}, expected {calls}")
        });
        r.throughput = Some(us_per_event);
        r.unit = "us/replayed event".to_string();
        if let Some(g) = growth {
            r = r.with("cached_step_vs_smallest", g);
        }
        out.push(r);
    }
    Ok(out)
}

/// Raises `count` `step` events one at a time (numbered from `first`), each after the previous
/// one's turn committed; returns each step's milliseconds.
async fn probe_steps(client: &Client, id: &str, first: u64, count: u64) -> Result<Vec<f64>, Error> {
    let mut times = Vec::with_capacity(count as usize);
    for step in first..first + count {
        let t = Instant::now();
        client.raise_event(id, "step", step).await?;
        wait_status(client, id, |s| {
            s.custom_status::<u64>().ok().flatten() >= Some(step)
        })
        .await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(times)
}
