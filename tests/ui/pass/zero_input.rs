//! An orchestrator may take only its context: its input type is then `()`.

use durable::Orchestrator;
use durable::prelude::*;

#[orchestrator]
async fn answer(_ctx: OrchestrationContext) -> Result<u32, Error> {
    Ok(42)
}

#[activity]
async fn ping(_ctx: ActivityContext) -> Result<(), Error> {
    Ok(())
}

#[orchestrator]
async fn calls_ping(ctx: OrchestrationContext) -> Result<u32, Error> {
    ctx.call_activity(ping, ()).await?;
    ctx.call_sub_orchestrator(answer, ()).await
}

fn input_of<O: Orchestrator>(_: O) -> std::any::TypeId {
    std::any::TypeId::of::<O::Input>()
}

#[allow(dead_code)]
async fn start(client: Client) -> Result<InstanceId, Error> {
    client.start(answer, ()).await
}

fn main() {
    assert_eq!(input_of(answer), std::any::TypeId::of::<()>());
    let _ = Runtime::builder()
        .register(answer)
        .register(ping)
        .register(calls_ping);
}
