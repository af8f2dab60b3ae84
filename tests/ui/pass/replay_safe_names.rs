//! Names that only look like the ones the determinism check flags compile without complaint:
//! functions of the user's own, a variable named `var`, a `use` of the user's own module in
//! the body, ordered maps, and logging.

use std::collections::{BTreeMap, BTreeSet};

use durable::prelude::*;

mod names {
    pub fn random() -> String {
        "steady".to_string()
    }
}

fn random_name() -> String {
    "ada".to_string()
}

fn random() -> u32 {
    4
}

#[activity]
async fn greet(_ctx: ActivityContext, name: String) -> Result<String, Error> {
    Ok(format!("hello {name}"))
}

#[orchestrator]
async fn greet_all(
    ctx: OrchestrationContext,
    scores: BTreeMap<String, u32>,
) -> Result<String, Error> {
    // The body's own import says what `random` is, so it is not taken to be `rand::random`.
    use names::random;
    // Defined in the body, so it is the user's own.
    fn rng() -> u32 {
        7
    }
    let var = 3;
    let mut out = vec![random(), random_name(), self::random().to_string()];
    let unique: BTreeSet<u32> = scores.values().copied().collect();
    // Ordered maps and sets iterate the same way on every replay.
    for (name, score) in &scores {
        tracing::info!(var, score, "greeting {name}");
        println!("greeting {name}");
        out.push(ctx.call_activity(greet, name.clone()).await?);
    }
    eprintln!("{} unique scores, {}", unique.len(), var + rng());
    Ok(out.join(", "))
}

fn main() {
    let _ = Runtime::builder().register(greet).register(greet_all);
}
