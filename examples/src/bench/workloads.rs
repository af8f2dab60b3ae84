//! W1–W10 (W11 lives in [`super::host`]): each starts a runtime on a fresh store, warms it up
//! where the spec says so, times its part, verifies the outcome and returns its result lines.

use std::future::Future;
use std::time::{Duration, Instant};

use durable::prelude::*;
use durable::{ErrorKind, InstanceStatus};
use futures::stream::{self, StreamExt, TryStreamExt};

use super::funcs::{
    BenchCounter, EternalState, ReplaySubject, chain, entity_caller, eternal, event_sink, fan_out,
    hello_expected, hello_sequence5, replay_subject, timer_once, timer_sequence, triangle,
};
use super::{BenchResult, Env, Options, builder, host};
use crate::bank;

/// How long any one instance may take before the run counts as broken.
pub const WAIT: Duration = Duration::from_secs(900);
/// How many client requests (starts, signals) are in flight at once.
pub const IN_FLIGHT: usize = 64;
/// Warm-up instances run before the timed part.
pub const WARM_UP: u64 = 20;

/// Runs workload `id` (`W1` … `W11`) once.
pub async fn run_one(id: &str, env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    match id {
        "W1" => w1(env, opts).await,
        "W2" => w2(env, opts).await,
        "W3" => w3(env, opts).await,
        "W4" => w4(env, opts).await,
        "W5" => w5(env, opts).await,
        "W6" => w6(env, opts).await,
        "W7" => w7(env, opts).await,
        "W8" => w8(env, opts).await,
        "W9" => w9(env, opts).await,
        "W10" => w10(env, opts).await,
        "W11" => host::w11(env, opts).await,
        other => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("unknown workload `{other}`"),
        )),
    }
}

/// The workload's main size: `--n` when given, else `default`.
pub fn size(opts: &Options, default: u64) -> u64 {
    opts.n.unwrap_or(default).max(1)
}

/// The workload's sizes: just `--n` when given, else `defaults`.
pub fn sizes(opts: &Options, defaults: &[u64]) -> Vec<u64> {
    match opts.n {
        Some(n) => vec![n.max(1)],
        None => defaults.to_vec(),
    }
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

/// Runs `count` requests produced by `f`, at most [`IN_FLIGHT`] at once, keeping their order.
pub async fn in_flight<T, F, Fut>(count: u64, f: F) -> Result<Vec<T>, Error>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    stream::iter(0..count)
        .map(f)
        .buffered(IN_FLIGHT)
        .try_collect()
        .await
}

/// Waits for every instance to finish, in order, updating the progress line.
pub async fn wait_all(
    env: &Env,
    client: &Client,
    label: &str,
    ids: &[InstanceId],
) -> Result<Vec<InstanceStatus>, Error> {
    let mut out = Vec::with_capacity(ids.len());
    for (k, id) in ids.iter().enumerate() {
        out.push(client.wait_for_completion(id.as_str(), WAIT).await?);
        env.progress().update(label, k as u64 + 1, ids.len() as u64);
    }
    Ok(out)
}

/// Runs [`WARM_UP`] HelloSequence5 instances and waits for them.
pub async fn warm_up(env: &Env, client: &Client) -> Result<(), Error> {
    let ids = in_flight(WARM_UP, |i| async move {
        client
            .start(hello_sequence5, i)
            .instance_id(format!("warm-{i}"))
            .await
    })
    .await?;
    let done = wait_all(env, client, "warm-up", &ids).await?;
    if let Some(bad) = done
        .iter()
        .find(|s| s.runtime_status != RuntimeStatus::Completed)
    {
        return Err(Error::msg(format!(
            "a warm-up instance did not complete: {bad:?}"
        )));
    }
    Ok(())
}

/// Checks that every HelloSequence5 instance `i` completed with [`hello_expected`]`(seed(i))`;
/// returns how many did not.
fn hello_failures(done: &[InstanceStatus], seed: impl Fn(u64) -> u64) -> usize {
    done.iter()
        .enumerate()
        .filter(|(i, s)| s.output::<u64>().ok() != Some(hello_expected(seed(*i as u64))))
        .count()
}

/// Waits (without polling the hot path) until `pred` holds for the instance's status.
pub async fn wait_status(
    client: &Client,
    id: &str,
    pred: impl Fn(&InstanceStatus) -> bool,
) -> Result<InstanceStatus, Error> {
    let store = client.store().clone();
    let deadline = Instant::now() + WAIT;
    let poll = store
        .poll_interval()
        .unwrap_or(Duration::from_millis(50))
        .min(Duration::from_millis(50));
    loop {
        let notified = store.signal().instances.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let status = client
            .status(id)
            .await?
            .ok_or_else(|| Error::msg(format!("instance {id} vanished")))?;
        if pred(&status) {
            return Ok(status);
        }
        if status.runtime_status.is_terminal() {
            return Err(Error::msg(format!(
                "instance {id} ended ({}) before reaching the awaited state: {:?}",
                status.runtime_status, status.failure
            )));
        }
        if Instant::now() > deadline {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("instance {id} timed out"),
            ));
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

async fn w1(env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    let runs = size(opts, 200);
    let (store, _) = env.fresh("w1")?;
    let rt = builder(store).start().await?;
    let client = rt.client();
    warm_up(env, &client).await?;
    let mut latencies = Vec::with_capacity(runs as usize);
    let mut wrong = 0;
    let t0 = Instant::now();
    for i in 0..runs {
        let t = Instant::now();
        let id = client.start(hello_sequence5, i).await?;
        let status = client.wait_for_completion(id.as_str(), WAIT).await?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        if status.output::<u64>().ok() != Some(hello_expected(i)) {
            wrong += 1;
        }
        env.progress().update("W1", i + 1, runs);
    }
    let seconds = secs(t0);
    rt.shutdown().await;
    Ok(vec![
        BenchResult::new("W1", "hello-sequence5 serial", runs, seconds)
            .rate(runs as f64, "orchestrations/s")
            .events(10.0 * runs as f64)
            .latencies(&mut latencies)
            .check(wrong == 0, || {
                format!("{wrong} instances had a wrong output")
            }),
    ])
}

async fn w2(env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    let mut out = Vec::new();
    for len in sizes(opts, &[100, 1000]) {
        let (store, _) = env.fresh("w2")?;
        let rt = builder(store).start().await?;
        let client = rt.client();
        warm_up(env, &client).await?;
        env.progress().message(&format!("W2 chain of {len}…"));
        let t0 = Instant::now();
        let id = client.start(chain, len).await?;
        let status = client.wait_for_completion(id.as_str(), WAIT).await?;
        let seconds = secs(t0);
        rt.shutdown().await;
        let got = status.output::<u64>().ok();
        out.push(
            BenchResult::new("W2", format!("chain of {len}"), len, seconds)
                .rate(len as f64, "steps/s")
                .events(2.0 * len as f64)
                .with("ms_per_step", seconds * 1e3 / len as f64)
                .check(got == Some(triangle(len)), || {
                    format!("output {got:?}, expected {}", triangle(len))
                }),
        );
    }
    Ok(out)
}

/// Starts `count` HelloSequence5 instances at once and waits for all; returns the seconds from
/// the first start to the last completion and how many were wrong.
async fn hello_burst(
    env: &Env,
    client: &Client,
    label: &str,
    count: u64,
) -> Result<(f64, usize), Error> {
    let t0 = Instant::now();
    let ids = in_flight(count, |i| async move {
        client
            .start(hello_sequence5, i)
            .instance_id(format!("h-{i}"))
            .await
    })
    .await?;
    let done = wait_all(env, client, label, &ids).await?;
    let seconds = secs(t0);
    Ok((seconds, hello_failures(&done, |i| i)))
}

async fn w3(env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    let mut out = Vec::new();
    for count in sizes(opts, &[1000, 10_000]) {
        let (store, _) = env.fresh("w3")?;
        let rt = builder(store).start().await?;
        let client = rt.client();
        warm_up(env, &client).await?;
        let (seconds, wrong) = hello_burst(env, &client, "W3", count).await?;
        rt.shutdown().await;
        out.push(
            BenchResult::new(
                "W3",
                format!("{count} concurrent hello-seq5"),
                count,
                seconds,
            )
            .rate(count as f64, "orchestrations/s")
            .events(10.0 * count as f64)
            .check(wrong == 0, || {
                format!("{wrong} instances had a wrong output")
            }),
        );
    }
    Ok(out)
}

async fn w4(env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    let mut out = Vec::new();
    let mut shapes: Vec<(u64, u64)> = sizes(opts, &[100, 1000, 5000])
        .into_iter()
        .map(|w| (1, w))
        .collect();
    let grid = opts.n.unwrap_or(100).max(1);
    shapes.push((grid, grid));
    for (instances, width) in shapes {
        let (store, _) = env.fresh("w4")?;
        let rt = builder(store).start().await?;
        let client = rt.client();
        warm_up(env, &client).await?;
        let client = &client;
        let t0 = Instant::now();
        let ids = in_flight(instances, |i| async move {
            client
                .start(fan_out, width)
                .instance_id(format!("f-{i}"))
                .await
        })
        .await?;
        let done = wait_all(env, client, "W4", &ids).await?;
        let seconds = secs(t0);
        rt.shutdown().await;
        let wrong = done
            .iter()
            .filter(|s| s.output::<u64>().ok() != Some(triangle(width)))
            .count();
        let total = instances * width;
        let variant = if instances == 1 {
            format!("fan-out {width}")
        } else {
            format!("{instances} x fan-out {width}")
        };
        out.push(
            BenchResult::new("W4", variant, total, seconds)
                .rate(total as f64, "activities/s")
                .events(2.0 * total as f64)
                .check(wrong == 0, || {
                    format!("{wrong} instances had a wrong output")
                }),
        );
    }
    Ok(out)
}

async fn w5(env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    let mut out = Vec::new();

    // 10,000 signals to one counter.
    let signals = size(opts, 10_000);
    let (store, _) = env.fresh("w5")?;
    let rt = builder(store).start().await?;
    let client = rt.client();
    warm_up(env, &client).await?;
    let c = &client;
    env.progress().message("W5 signals to one counter…");
    let t0 = Instant::now();
    in_flight(signals, |_| async move {
        c.signal_entity::<BenchCounter>("one").add(1).await
    })
    .await?;
    rt.idle().await;
    let seconds = secs(t0);
    let state = client.read_entity::<BenchCounter>("one").await?;
    let (value, ops) = state.map_or((0, 0), |s| (s.value, s.ops));
    out.push(
        BenchResult::new("W5", "signals to one entity", signals, seconds)
            .rate(signals as f64, "signals/s")
            .events(signals as f64)
            .check(value == signals && ops == signals, || {
                format!("counter at {value} after {ops} ops, expected {signals}")
            }),
    );
    rt.shutdown().await;

    // 1,000 entities × 10 signals.
    let entities = size(opts, 1000);
    let per = 10;
    let (store, _) = env.fresh("w5")?;
    let rt = builder(store).start().await?;
    let client = rt.client();
    warm_up(env, &client).await?;
    let c = &client;
    env.progress().message("W5 signals to many counters…");
    let t0 = Instant::now();
    in_flight(entities * per, |k| async move {
        c.signal_entity::<BenchCounter>(format!("e{}", k % entities))
            .add(1)
            .await
    })
    .await?;
    rt.idle().await;
    let seconds = secs(t0);
    let reads = in_flight(entities, |e| async move {
        c.read_entity::<BenchCounter>(format!("e{e}")).await
    })
    .await?;
    let wrong = reads
        .iter()
        .filter(|s| s.as_ref().is_none_or(|s| s.value != per || s.ops != per))
        .count();
    out.push(
        BenchResult::new(
            "W5",
            format!("{entities} entities x {per} signals"),
            entities * per,
            seconds,
        )
        .rate((entities * per) as f64, "signals/s")
        .events((entities * per) as f64)
        .check(wrong == 0, || format!("{wrong} entities had a wrong count")),
    );

    // Two-way calls from an orchestrator.
    let calls = size(opts, 1000);
    env.progress().message("W5 calls from an orchestrator…");
    let t0 = Instant::now();
    let id = client
        .start(entity_caller, ("called".to_string(), calls))
        .await?;
    let status = client.wait_for_completion(id.as_str(), WAIT).await?;
    let seconds = secs(t0);
    rt.shutdown().await;
    let got = status.output::<u64>().ok();
    out.push(
        BenchResult::new("W5", "calls from an orchestrator", calls, seconds)
            .rate(calls as f64, "calls/s")
            .with("ms_per_call", seconds * 1e3 / calls as f64)
            .check(got == Some(calls), || {
                format!("the counter read {got:?}, expected {calls}")
            }),
    );
    Ok(out)
}

async fn w6(env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    let transfers = size(opts, 3000);
    let accounts = bank::account_names(opts.n.map_or(100, |n| n.clamp(2, 100)) as usize);
    let opening = 1000i64;
    let (store, _) = env.fresh("w6")?;
    let rt = builder(store).start().await?;
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

async fn w7(env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    let count = size(opts, 1000);
    let (store, _) = env.fresh("w7")?;
    let rt = builder(store).start().await?;
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

async fn w8(env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    let mut out = Vec::new();
    let (store, _) = env.fresh("w8")?;
    let rt = builder(store).start().await?;
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

async fn w9(env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    let iterations = size(opts, 10_000);
    let every = 10;
    let (store, _) = env.fresh("w9")?;
    let rt = builder(store).start().await?;
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

async fn w10(env: &Env, opts: &Options) -> Result<Vec<BenchResult>, Error> {
    const PROBES: u64 = 20;
    let mut out = Vec::new();
    let mut first_cached: Option<f64> = None;
    for events in sizes(opts, &[100, 1000, 10_000, 50_000]) {
        let (store, _) = env.fresh("w10")?;
        let rt = builder(store.clone()).start().await?;
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
        let rt = builder(store).instance_cache_capacity(0).start().await?;
        let client = rt.client();
        let t0 = Instant::now();
        let evicted = probe_steps(&client, &id, PROBES + 1, PROBES).await?;
        let seconds = secs(t0);
        let status = client.wait_for_completion(&id, WAIT).await?;
        rt.shutdown().await;
        let cached_ms = super::median(cached);
        let evicted_ms = super::median(evicted);
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
