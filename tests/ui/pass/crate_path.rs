//! `crate = "..."` points the generated code at a re-export of `durable`, for SDKs that wrap
//! it: `::durable` itself need not be reachable by that name where the macro is used. It
//! combines with `name = "..."` in either order, on all three macros and both entity styles.

use std::time::Duration;

/// A crate of the user's that re-exports `durable`, as an SDK would.
mod my_sdk {
    pub use ::durable;
}

// A renamed dependency works the same way: `crate = "::renamed"`.
extern crate durable as renamed;

mod app {
    use crate::my_sdk::durable::prelude::*;
    use serde::{Deserialize, Serialize};

    #[activity(crate = "crate::my_sdk::durable", name = "SayHello")]
    pub async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
        Ok(format!("Hello {city}!"))
    }

    #[orchestrator(name = "Greet", crate = "::renamed")]
    pub async fn greet(ctx: OrchestrationContext, city: String) -> Result<(String, i64), Error> {
        let greeting = ctx.call_activity(say_hello, city).await?;
        ctx.call_entity::<Counter>("greetings").add(1).await?;
        let count = ctx.call_entity::<Counter>("greetings").get().await?;
        Ok((greeting, count))
    }

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct Counter {
        pub value: i64,
    }

    #[entity(crate = "super::my_sdk::durable")]
    impl Counter {
        pub fn add(&mut self, amount: i64) {
            self.value += amount;
        }

        pub fn get(&self) -> i64 {
            self.value
        }
    }

    #[entity(crate = "crate::my_sdk::durable", name = "Tally")]
    pub async fn tally(ctx: EntityContext) -> Result<(), Error> {
        let value: i64 = ctx.state_or_default()?;
        ctx.set_state(value + 1)
    }
}

#[tokio::main]
async fn main() -> Result<(), durable::Error> {
    use durable::testing::TestRuntime;
    use durable::{Activity, Entity, EntityFunction, Orchestrator, RuntimeStatus};

    assert_eq!(<app::say_hello as Activity>::NAME, "SayHello");
    assert_eq!(<app::greet as Orchestrator>::NAME, "Greet");
    assert_eq!(<app::Counter as Entity>::NAME, "counter");
    assert_eq!(<app::tally as EntityFunction>::NAME, "tally");

    let test = TestRuntime::start(
        durable::Runtime::builder()
            .register(app::say_hello)
            .register(app::greet)
            .register(app::tally)
            .register_entity::<app::Counter>(),
    )
    .await?;
    let client = test.client();
    client
        .signal_entity::<app::Counter>("greetings")
        .add(10)
        .await?;
    let id = client.start(app::greet, "Lima".to_string()).await?;
    let status = client
        .wait_for_completion(&id, Duration::from_secs(10))
        .await?;
    assert_eq!(status.runtime_status, RuntimeStatus::Completed, "{status:?}");
    assert_eq!(
        status.output::<(String, i64)>()?,
        ("Hello Lima!".to_string(), 11)
    );
    Ok(())
}
