//! An orchestrator that uses the context's replay-safe replacements, and names that merely
//! look like forbidden ones, compiles without complaint.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use durable::prelude::*;

#[activity]
async fn read_config(_ctx: ActivityContext, key: String) -> Result<String, Error> {
    // Activities may do anything.
    let _ = std::time::SystemTime::now();
    Ok(std::env::var(key).unwrap_or_default())
}

#[orchestrator]
async fn careful(ctx: OrchestrationContext) -> Result<String, Error> {
    let started = ctx.current_utc_datetime();
    ctx.sleep(Duration::from_secs(1)).await;
    let id = ctx.new_guid();
    let region = ctx.call_activity(read_config, "REGION".to_string()).await?;
    let sleep = 3;
    let spawn = sleep + 1;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 8080));
    let local = std::net::Ipv4Addr::new(127, 0, 0, 1);
    Ok(format!("{started} {id} {region} {spawn} {addr} {local}"))
}

fn main() {
    let _ = Runtime::builder().register(read_config).register(careful);
}
