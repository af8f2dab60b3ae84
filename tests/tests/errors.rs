//! How durable functions fail: the errors they return, and what a client reads of them.

use std::fmt;

use durable::FailureDetails;
use durable::prelude::*;
use durable_tests::{failure_message, finished, in_both_modes};

#[activity]
async fn reserve(_ctx: ActivityContext, sku: String) -> Result<u32, Error> {
    if sku == "sold-out" {
        return Err("out of stock".into());
    }
    Ok(1)
}

#[orchestrator]
async fn order(ctx: OrchestrationContext, sku: String) -> Result<u32, Error> {
    ctx.call_activity(reserve, sku).await
}

#[tokio::test]
async fn an_activity_failing_with_a_str_fails_its_orchestration_with_that_message() {
    in_both_modes(
        |b| b.register(reserve).register(order),
        |rt| async move {
            let id = rt
                .client()
                .start(order, "sold-out".to_string())
                .await
                .unwrap();
            let status = finished(&rt, &id).await;
            assert_eq!(
                failure_message(&status),
                "activity `reserve` failed: out of stock"
            );
            let failure = status.failure.unwrap();
            let cause = failure.cause.as_deref().expect("the activity's failure");
            assert_eq!(cause.error_type, "Application");
            assert_eq!(cause.message, "out of stock");
        },
    )
    .await;
}

/// "warehouse unavailable", caused by an I/O error.
#[derive(Debug)]
struct Warehouse(std::io::Error);

impl fmt::Display for Warehouse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("warehouse unavailable")
    }
}

impl std::error::Error for Warehouse {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[activity]
async fn connect(_ctx: ActivityContext, _input: ()) -> Result<u32, Error> {
    let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
    Err(Warehouse(refused))?
}

#[orchestrator]
async fn stock(ctx: OrchestrationContext, _input: ()) -> Result<u32, Error> {
    ctx.call_activity(connect, ()).await
}

/// Each level of a failure's cause chain: (error type, message).
fn chain(failure: &FailureDetails) -> Vec<(String, String)> {
    let mut levels = Vec::new();
    let mut level = Some(failure);
    while let Some(f) = level {
        levels.push((f.error_type.clone(), f.message.clone()));
        level = f.cause.as_deref();
    }
    levels
}

#[tokio::test]
async fn a_source_chain_shows_in_the_failure_details_level_by_level() {
    in_both_modes(
        |b| b.register(connect).register(stock),
        |rt| async move {
            let id = rt.client().start(stock, ()).await.unwrap();
            let status = finished(&rt, &id).await;
            let failure = status.failure.as_ref().expect("a failed instance");
            let levels = chain(failure);
            let level = |t: &str, m: &str| (t.to_string(), m.to_string());
            assert_eq!(
                levels,
                [
                    level(
                        "ActivityFailed",
                        "activity `connect` failed: warehouse unavailable: connection refused"
                    ),
                    level("Application", "warehouse unavailable: connection refused"),
                    level(FailureDetails::SOURCE, "connection refused"),
                ]
            );
        },
    )
    .await;
}

mod with_anyhow {
    use anyhow::Context as _;

    use super::*;

    #[activity]
    async fn load(_ctx: ActivityContext, _input: ()) -> Result<u32, Error> {
        let parsed: anyhow::Result<u32> = "x".parse::<u32>().context("reading the stock level");
        Ok(parsed?)
    }

    #[orchestrator]
    async fn level(ctx: OrchestrationContext, _input: ()) -> Result<u32, Error> {
        ctx.call_activity(load, ()).await
    }

    #[tokio::test]
    async fn question_mark_on_anyhow_keeps_its_chain() {
        in_both_modes(
            |b| b.register(load).register(level),
            |rt| async move {
                let id = rt.client().start(level, ()).await.unwrap();
                let status = finished(&rt, &id).await;
                let levels = chain(status.failure.as_ref().unwrap());
                let messages: Vec<&str> = levels.iter().map(|(_, m)| m.as_str()).collect();
                assert_eq!(
                    messages,
                    [
                        "activity `load` failed: reading the stock level: invalid digit found in string",
                        "reading the stock level: invalid digit found in string",
                        "invalid digit found in string",
                    ]
                );
            },
        )
        .await;
    }

    #[tokio::test]
    async fn a_durable_error_converts_into_anyhow() {
        let rt =
            durable::testing::TestRuntime::start(Runtime::builder().register(load).register(level))
                .await
                .unwrap();
        async fn run(rt: &durable::testing::TestRuntime) -> anyhow::Result<String> {
            let id = rt.client().start(level, ()).await?;
            let status = finished(rt, &id).await;
            match status.failure {
                Some(failure) => Err(Error::from_failure(&failure))?,
                None => Ok(id.to_string()),
            }
        }
        let err = run(&rt).await.unwrap_err();
        let chain: Vec<String> = err.chain().map(ToString::to_string).collect();
        assert_eq!(
            chain.last().map(String::as_str),
            Some("invalid digit found in string"),
            "{chain:?}"
        );
    }
}
