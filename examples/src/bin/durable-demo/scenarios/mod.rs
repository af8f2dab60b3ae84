//! `durable-demo scenarios`: runs every example pattern, one after the other, and prints a short
//! report for each: the orchestration patterns report on an instance, the entity patterns on an
//! entity's committed state (or, for the bank, on the audit that checks it). Exits with 0 when
//! every scenario behaved as expected, 1 otherwise.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use durable::Entity;
use durable::prelude::*;
use durable_examples::{
    approval, chaining, eternal_counter, fan_out_fan_in, monitor, retries, sub_orchestrations,
};

mod entities;

/// The options of `durable-demo scenarios`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Exits with 0 when every scenario behaved as expected, 1 otherwise.")]
pub struct Args {
    /// Run only this scenario (repeat for several); see --list.
    #[arg(long, value_name = "SCENARIO", hide_possible_values = true)]
    only: Vec<Scenario>,

    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,

    /// How long each scenario may take, in seconds, before it counts as failed.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    timeout: u64,
}

/// One demonstration: a pattern run with one input, and what it must produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Chaining,
    FanOutFanIn,
    Monitor,
    MonitorExpiry,
    Approval,
    ApprovalTimeout,
    EternalCounter,
    SubOrchestrations,
    Retry,
    RetryExhausted,
    Aggregator,
    EntityToEntity,
    BankTransfers,
    ScheduledSignal,
}

impl Scenario {
    const ALL: [Scenario; 14] = [
        Scenario::Chaining,
        Scenario::FanOutFanIn,
        Scenario::Monitor,
        Scenario::MonitorExpiry,
        Scenario::Approval,
        Scenario::ApprovalTimeout,
        Scenario::EternalCounter,
        Scenario::SubOrchestrations,
        Scenario::Retry,
        Scenario::RetryExhausted,
        Scenario::Aggregator,
        Scenario::EntityToEntity,
        Scenario::BankTransfers,
        Scenario::ScheduledSignal,
    ];

    /// The name `--only` takes (the variant's name in kebab case).
    fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }

    fn about(self) -> &'static str {
        match self {
            Scenario::Chaining => "hello_cities: three activities, one after the other",
            Scenario::FanOutFanIn => "sum_of_squares(10): ten activities in parallel, summed",
            Scenario::Monitor => {
                "job_monitor: the job is done on the 3rd poll, before the deadline"
            }
            Scenario::MonitorExpiry => "job_monitor: the job outlasts a 1 s deadline",
            Scenario::Approval => "approval_workflow: approved by an ApprovalEvent",
            Scenario::ApprovalTimeout => "approval_workflow: nobody answers within 1 s",
            Scenario::EternalCounter => "eternal_counter: counts to 5 with continue_as_new",
            Scenario::SubOrchestrations => "deploy_all_regions: one child orchestration per region",
            Scenario::Retry => "upload_with_retry: fails twice, then succeeds",
            Scenario::RetryExhausted => "charge_with_retry: every attempt fails (expected to fail)",
            Scenario::Aggregator => "PageViews: 400 concurrent record signals, summed exactly",
            Scenario::EntityToEntity => {
                "UsageCounter: alerts the ThresholdMonitor once as it crosses 100"
            }
            Scenario::BankTransfers => {
                "transfer ×200 among 10 locked accounts; the audited total is conserved"
            }
            Scenario::ScheduledSignal => "Reminder: signals itself 1 s ahead and fires on time",
        }
    }
}

/// What one scenario did.
struct Report {
    subject: Subject,
    elapsed: Duration,
    /// Extra lines worth showing (child instances, history size, …).
    notes: Vec<String>,
    /// `Err` with the reason when the result is not what the pattern must produce.
    verdict: Result<(), String>,
}

/// Runs the scenarios `args` selects on the SQLite store in `data`, and reports on each.
pub async fn run_all(args: Args, data: &Path) -> ExitCode {
    durable_examples::init_logging();

    if args.list {
        for scenario in Scenario::ALL {
            println!("{:<20} {}", scenario.name(), scenario.about());
        }
        return ExitCode::SUCCESS;
    }
    let selected: Vec<Scenario> = if args.only.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.only
    };

    let (store, path) = match super::open_store(data) {
        Ok(opened) => opened,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "durable-demo: running {} pattern scenarios on the SQLite store {}\n",
        selected.len(),
        path.display()
    );

    let runtime = match durable_examples::register_all(Runtime::builder())
        .store(store)
        .start()
        .await
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: the runtime did not start: {err}");
            return ExitCode::FAILURE;
        }
    };
    let client = runtime.client();
    let timeout = Duration::from_secs(args.timeout);

    let total = Instant::now();
    let mut passed = 0;
    for (n, scenario) in selected.iter().enumerate() {
        println!(
            "[{:>2}/{}] {} — {}",
            n + 1,
            selected.len(),
            scenario.name(),
            scenario.about()
        );
        let ok = match run(*scenario, &client, timeout).await {
            Ok(report) => print_report(&report),
            Err(err) => {
                println!("        result    FAILED: {err}");
                false
            }
        };
        passed += usize::from(ok);
        println!();
    }

    runtime.shutdown().await;
    println!(
        "{passed} of {} scenarios behaved as expected, in {}",
        selected.len(),
        format_duration(total.elapsed())
    );
    if passed == selected.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What a report is about.
enum Subject {
    /// An orchestration instance, as it ended.
    Instance(Box<InstanceStatus>),
    /// An entity and its committed state as JSON (`None`: it does not exist).
    Entity { id: EntityId, state: Option<String> },
}

impl Subject {
    /// The entity `E` with this key, in its committed state.
    async fn entity<E: Entity>(client: &Client, key: &str) -> Result<Subject, Error> {
        let id = EntityId::of::<E>(key);
        let state: Option<serde_json::Value> = client.read_entity_state(&id).await?;
        Ok(Subject::Entity {
            id,
            state: state.map(|s| s.to_string()),
        })
    }
}

/// Prints a report; returns whether the scenario behaved as expected.
fn print_report(report: &Report) -> bool {
    match &report.subject {
        Subject::Instance(status) => {
            println!("        instance  {}", status.instance_id);
            println!("        status    {}", status.runtime_status);
            match (&status.output, &status.failure) {
                (_, Some(failure)) => println!("        failure   {}", failure.message),
                (Some(output), None) => println!("        output    {}", shorten(output, 110)),
                (None, None) => {}
            }
        }
        Subject::Entity { id, state } => {
            println!("        entity    {id}");
            let state = state.as_deref().unwrap_or("(none)");
            println!("        state     {}", shorten(state, 110));
        }
    }
    for note in &report.notes {
        println!("        {note}");
    }
    println!("        elapsed   {}", format_duration(report.elapsed));
    match &report.verdict {
        Ok(()) => {
            println!("        result    ok");
            true
        }
        Err(why) => {
            println!("        result    FAILED: {why}");
            false
        }
    }
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// `Ok` when `actual == expected`, otherwise the reason.
fn expect_eq<T: PartialEq + std::fmt::Debug>(actual: T, expected: T) -> Result<(), String> {
    if actual == expected {
        Ok(())
    } else {
        Err(format!("expected {expected:?}, got {actual:?}"))
    }
}

/// The output as a `T`, or the reason it is not one.
fn output<T: serde::de::DeserializeOwned>(status: &InstanceStatus) -> Result<T, String> {
    status.output::<T>().map_err(|e| e.to_string())
}

/// Runs one scenario to completion and checks its result.
async fn run(scenario: Scenario, client: &Client, timeout: Duration) -> Result<Report, Error> {
    let started = Instant::now();
    let mut notes = Vec::new();
    let (subject, verdict) = match scenario {
        Scenario::Chaining => {
            let id = client.start(chaining::hello_cities, ()).await?;
            let status = client.wait_for_completion(&id, timeout).await?;
            let verdict = output::<Vec<String>>(&status).and_then(|greetings| {
                expect_eq(
                    greetings,
                    chaining::CITIES.map(|c| format!("Hello {c}!")).to_vec(),
                )
            });
            (Subject::Instance(Box::new(status)), verdict)
        }
        Scenario::FanOutFanIn => {
            let id = client.start(fan_out_fan_in::sum_of_squares, 10).await?;
            let status = client.wait_for_completion(&id, timeout).await?;
            let verdict = output::<u64>(&status)
                .and_then(|sum| expect_eq(sum, fan_out_fan_in::expected_sum(10)));
            (Subject::Instance(Box::new(status)), verdict)
        }
        Scenario::Monitor | Scenario::MonitorExpiry => {
            let (done_on_poll, expires_after_ms, expected) = match scenario {
                Scenario::Monitor => (3, 5_000, monitor::COMPLETED),
                _ => (1_000, 1_000, monitor::EXPIRED),
            };
            let input = monitor::MonitorInput {
                job_id: "nightly-export".into(),
                done_on_poll,
                poll_every_ms: 200,
                expires_after_ms,
            };
            let id = client.start(monitor::job_monitor, input).await?;
            let status = client.wait_for_completion(&id, timeout).await?;
            if let Ok(Some(progress)) = status.custom_status::<monitor::MonitorProgress>() {
                notes.push(format!("polls     {}", progress.polls));
            }
            let verdict = output::<String>(&status).and_then(|o| expect_eq(o.as_str(), expected));
            (Subject::Instance(Box::new(status)), verdict)
        }
        Scenario::Approval => {
            let id = client.start(approval::approval_workflow, 30).await?;
            // Answer once the request has gone out, as a person clicking "approve" would.
            wait_for_custom_status(client, &id, "waiting for approval", timeout).await?;
            client
                .raise_event(&id, approval::APPROVAL_EVENT, true)
                .await?;
            notes.push(format!("raised    {}: true", approval::APPROVAL_EVENT));
            let status = client.wait_for_completion(&id, timeout).await?;
            let verdict =
                output::<String>(&status).and_then(|o| expect_eq(o.as_str(), approval::APPROVED));
            (Subject::Instance(Box::new(status)), verdict)
        }
        Scenario::ApprovalTimeout => {
            let id = client.start(approval::approval_workflow, 1).await?;
            let status = client.wait_for_completion(&id, timeout).await?;
            let verdict =
                output::<String>(&status).and_then(|o| expect_eq(o.as_str(), approval::ESCALATED));
            (Subject::Instance(Box::new(status)), verdict)
        }
        Scenario::EternalCounter => {
            let input = eternal_counter::CounterState::new(5, 100);
            let id = client
                .start(eternal_counter::eternal_counter, input)
                .await?;
            let status = client.wait_for_completion(&id, timeout).await?;
            let history = history_len(client, &id).await?;
            notes.push(format!(
                "history   {history} events (the last execution only)"
            ));
            let verdict = output::<u64>(&status)
                .and_then(|count| expect_eq(count, 5))
                .and_then(|()| {
                    if history <= 6 {
                        Ok(())
                    } else {
                        Err(format!(
                            "the history should stay short, it has {history} events"
                        ))
                    }
                });
            (Subject::Instance(Box::new(status)), verdict)
        }
        Scenario::SubOrchestrations => {
            use sub_orchestrations::{DeploymentSummary, RegionPlan};
            let plans = vec![
                RegionPlan::new("eu-west", 2),
                RegionPlan::new("us-east", 3),
                RegionPlan::new("ap-south", 1),
            ];
            let id = client
                .start(sub_orchestrations::deploy_all_regions, plans.clone())
                .await?;
            let status = client.wait_for_completion(&id, timeout).await?;
            for plan in &plans {
                let child = format!("{id}:{}", plan.region);
                let child_status = client
                    .status(&child)
                    .await?
                    .map_or("missing".to_string(), |s| s.runtime_status.to_string());
                notes.push(format!("child     {child} ({child_status})"));
            }
            let verdict = output::<DeploymentSummary>(&status).and_then(|summary| {
                notes.push(format!(
                    "servers   {} in {} regions",
                    summary.total_servers,
                    summary.regions.len()
                ));
                expect_eq(summary.total_servers, 6)
            });
            (Subject::Instance(Box::new(status)), verdict)
        }
        Scenario::Retry => {
            let id = client
                .start(retries::upload_with_retry, "q3-report.pdf".to_string())
                .await?;
            let status = client.wait_for_completion(&id, timeout).await?;
            let verdict = output::<String>(&status)
                .and_then(|o| expect_eq(o.as_str(), "uploaded q3-report.pdf on attempt 3"));
            (Subject::Instance(Box::new(status)), verdict)
        }
        Scenario::RetryExhausted => {
            let id = client.start(retries::charge_with_retry, 4_200).await?;
            let status = client.wait_for_completion(&id, timeout).await?;
            let message = status.failure.as_ref().map(|f| f.message.as_str());
            let verdict =
                expect_eq(status.runtime_status, RuntimeStatus::Failed).and_then(
                    |()| match message {
                        Some(m) if m.contains("activity `charge_card` failed") => Ok(()),
                        other => Err(format!("the failure should name `charge_card`: {other:?}")),
                    },
                );
            (Subject::Instance(Box::new(status)), verdict)
        }
        Scenario::Aggregator => entities::aggregator_scenario(client, timeout, &mut notes).await?,
        Scenario::EntityToEntity => {
            entities::threshold_scenario(client, timeout, &mut notes).await?
        }
        Scenario::BankTransfers => entities::bank_scenario(client, timeout, &mut notes).await?,
        Scenario::ScheduledSignal => {
            entities::reminder_scenario(client, timeout, &mut notes).await?
        }
    };
    Ok(Report {
        subject,
        elapsed: started.elapsed(),
        notes,
        verdict,
    })
}

/// Waits until the instance's custom status is `expected` (a JSON string).
async fn wait_for_custom_status(
    client: &Client,
    id: &str,
    expected: &str,
    timeout: Duration,
) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = client.status(id).await?;
        if let Some(status) = &status
            && status.custom_status::<String>()?.as_deref() == Some(expected)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::msg(format!(
                "instance `{id}` did not report \"{expected}\" within {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The number of events in the instance's (current execution's) history.
async fn history_len(client: &Client, id: &str) -> Result<usize, Error> {
    Ok(client
        .status_with_history(id)
        .await?
        .and_then(|s| s.history)
        .map_or(0, |h| h.len()))
}
