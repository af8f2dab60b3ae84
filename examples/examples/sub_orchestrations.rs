//! Sub-orchestrations: a parent rolls a service out to three regions, one child each.
//!
//! ```sh
//! cargo run -p durable-examples --example sub_orchestrations
//! ```

use std::time::Duration;

use durable::prelude::*;
use durable_examples::sub_orchestrations::{
    self, DeploymentSummary, RegionPlan, RegionReport, deploy_all_regions,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    durable_examples::init_logging();
    let runtime = sub_orchestrations::register(Runtime::builder())
        .store(durable::store::Memory::new())
        .start()
        .await?;
    let client = runtime.client();

    let plans = vec![
        RegionPlan::new("eu-west", 2),
        RegionPlan::new("us-east", 3),
        RegionPlan::new("ap-south", 1),
    ];
    let id = client
        .start(deploy_all_regions, plans.clone())
        .instance_id("rollout-2024-06")
        .await?;
    println!("started deploy_all_regions as {id}");

    let status = client
        .wait_for_completion(&id, Duration::from_secs(10))
        .await?;
    let summary: DeploymentSummary = status.output()?;
    println!(
        "{}: {} servers in all",
        status.runtime_status, summary.total_servers
    );

    // Each child is an instance of its own, which clients can look up.
    for plan in &plans {
        let child_id = format!("{id}:{}", plan.region);
        let child = client
            .wait_for_completion(&child_id, Duration::from_secs(1))
            .await?;
        let report: RegionReport = child.output()?;
        println!(
            "  child {child_id} ({}): {} -> {}",
            child.runtime_status,
            report.hosts.join(", "),
            report.endpoint
        );
    }

    runtime.shutdown().await;
    Ok(())
}
