//! `name = "..."` registers a function under another name than its identifier, and the
//! handles still carry their types end to end.

use std::time::Duration;

use durable::prelude::*;
use durable::testing::TestRuntime;
use durable::{Activity, Orchestrator};

#[activity(name = "SayHello")]
async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
    Ok(format!("Hello {city}!"))
}

#[orchestrator(name = "HelloCities")]
async fn hello_cities(
    ctx: OrchestrationContext,
    cities: Vec<String>,
) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for city in cities {
        out.push(ctx.call_activity(say_hello, city).await?);
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    assert_eq!(<say_hello as Activity>::NAME, "SayHello");
    assert_eq!(<hello_cities as Orchestrator>::NAME, "HelloCities");

    let test = TestRuntime::start(
        Runtime::builder()
            .register(hello_cities)
            .register(say_hello),
    )
    .await?;
    let id = test
        .client()
        .start(hello_cities, vec!["Tokyo".to_string(), "Lima".to_string()])
        .await?;
    let status = test
        .client()
        .wait_for_completion(&id, Duration::from_secs(10))
        .await?;
    assert_eq!(status.runtime_status, RuntimeStatus::Completed);
    assert_eq!(
        status.output::<Vec<String>>()?,
        ["Hello Tokyo!", "Hello Lima!"]
    );
    Ok(())
}
