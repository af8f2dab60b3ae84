use durable::prelude::*;

mod my_sdk {
    pub use ::durable;
}

#[activity(crate = my_sdk::durable)]
async fn unquoted(_ctx: ActivityContext) -> Result<(), Error> {
    Ok(())
}

#[activity(crate = 1)]
async fn number(_ctx: ActivityContext) -> Result<(), Error> {
    Ok(())
}

#[orchestrator(crate = "my sdk::durable")]
async fn not_a_path(_ctx: OrchestrationContext) -> Result<(), Error> {
    Ok(())
}

#[orchestrator(crate = "crate::my_sdk::durable", name = "Twice", crate = "::durable")]
async fn twice(_ctx: OrchestrationContext) -> Result<(), Error> {
    Ok(())
}

#[activity(crate = "")]
async fn empty(_ctx: ActivityContext) -> Result<(), Error> {
    Ok(())
}

#[activity(crate)]
async fn no_value(_ctx: ActivityContext) -> Result<(), Error> {
    Ok(())
}

fn main() {}
