use durable::prelude::*;

/// Stands in for the `rand` crate: the check goes by path, not by crate.
mod rand {
    pub fn random<T: Default>() -> T {
        T::default()
    }
}

#[orchestrator]
async fn roll(_ctx: OrchestrationContext) -> Result<u32, Error> {
    Ok(rand::random::<u32>() % 6)
}

fn main() {}
