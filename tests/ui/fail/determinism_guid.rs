use durable::prelude::*;

/// Stands in for the `uuid` crate: the check goes by path, not by crate.
mod uuid {
    pub struct Uuid;
    impl Uuid {
        pub fn new_v4() -> Self {
            Uuid
        }
    }
}

#[orchestrator]
async fn order(_ctx: OrchestrationContext) -> Result<(), Error> {
    let _id = uuid::Uuid::new_v4();
    Ok(())
}

fn main() {}
