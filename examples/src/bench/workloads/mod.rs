//! W1–W10 (W11 lives in [`super::host`]): each starts a runtime on a fresh store, warms it up
//! where the spec says so, times its part, verifies the outcome and returns its result lines.

use std::future::Future;
use std::time::{Duration, Instant};

use durable::prelude::*;
use durable::{ErrorKind, InstanceStatus};
use futures::stream::{self, StreamExt, TryStreamExt};

use super::funcs::{
    BenchCounter, chain, entity_caller, fan_out, hello_expected, hello_sequence5, triangle,
};
use super::{BenchResult, Env, Options, host};
mod long_running;

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
        "W6" => long_running::w6(env, opts).await,
        "W7" => long_running::w7(env, opts).await,
        "W8" => long_running::w8(env, opts).await,
        "W9" => long_running::w9(env, opts).await,
        "W10" => long_running::w10(env, opts).await,
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
    let rt = opts.builder(store).start().await?;
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
        let rt = opts.builder(store).start().await?;
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
        let rt = opts.builder(store).start().await?;
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
        let rt = opts.builder(store).start().await?;
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
    let rt = opts.builder(store).start().await?;
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
    let rt = opts.builder(store).start().await?;
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
