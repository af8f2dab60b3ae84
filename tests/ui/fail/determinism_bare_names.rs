use std::env::var;
use std::fs::read_to_string;

use durable::prelude::*;

/// Stands in for the `rand` crate: the check goes by name, not by crate.
mod rand {
    pub fn random<T: Default>() -> T {
        T::default()
    }
}
use rand::random;

/// Imported at module level, where the macro cannot see: the bare calls are flagged by name.
#[orchestrator]
async fn roll(_ctx: OrchestrationContext) -> Result<String, Error> {
    let die = random::<u32>() % 6;
    let region = var("REGION").unwrap_or_default();
    let motd = read_to_string("/etc/motd")?;
    Ok(format!("{die} {region} {motd}"))
}

fn main() {}
