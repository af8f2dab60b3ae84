//! **Function chaining**: run a fixed sequence of steps, one after the other.
//!
//! `hello_cities` calls the `say_hello` activity three times in a row. Each `.await` is a
//! checkpoint: the activity's result is written to the instance's history before the next call
//! is scheduled. If the host dies after the second greeting, the next host replays the
//! orchestrator, gets the first two greetings straight from history (without running the
//! activity again) and only schedules the third.
//!
//! ```text
//! hello_cities ──► say_hello("Tokyo") ──► say_hello("Seattle") ──► say_hello("London") ──► [3 greetings]
//! ```

use durable::RuntimeBuilder;
use durable::prelude::*;

/// The cities greeted, in order.
pub const CITIES: [&str; 3] = ["Tokyo", "Seattle", "London"];

/// Builds a greeting for one city. Stands in for any unit of real work: an HTTP call, a query,
/// a computation.
#[activity]
pub async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
    Ok(format!("Hello {city}!"))
}

/// Greets [`CITIES`] one at a time and returns the greetings in call order.
#[orchestrator]
pub async fn hello_cities(ctx: OrchestrationContext, _input: ()) -> Result<Vec<String>, Error> {
    let mut greetings = Vec::with_capacity(CITIES.len());
    for city in CITIES {
        let greeting = ctx.call_activity(say_hello, city.to_string()).await?;
        if !ctx.is_replaying() {
            // Logged once, when the step really happens, not again on every replay.
            tracing::info!(%greeting, "greeted a city");
        }
        greetings.push(greeting);
    }
    Ok(greetings)
}

/// Registers [`hello_cities`] and [`say_hello`].
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder.register(hello_cities).register(say_hello)
}
