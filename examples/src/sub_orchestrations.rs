//! **Sub-orchestrations**: compose workflows out of workflows.
//!
//! `deploy_all_regions` rolls a service out to several regions. The rollout of one region is a
//! workflow in its own right — provision servers, then put a load balancer in front of them —
//! so it lives in its own orchestrator, `deploy_region`, and the parent starts one child
//! instance per region with `ctx.call_sub_orchestrator`. The children run in parallel; the
//! parent waits for all of them with `when_all` and adds their reports up.
//!
//! Each child is a full instance with its own id (here `<parent id>:<region>`), history and
//! status, visible to clients while it runs. A child's failure comes back to the parent as an
//! `Err` naming the child, which the parent may handle or propagate.
//!
//! ```text
//!                       ┌─► deploy_region("eu-west")  : provision_servers ─► configure_load_balancer
//! deploy_all_regions ───┼─► deploy_region("us-east")  : …
//!                       └─► deploy_region("ap-south") : …
//!                                  └──────────────► DeploymentSummary
//! ```

use durable::RuntimeBuilder;
use durable::prelude::*;
use serde::{Deserialize, Serialize};

/// What to deploy in one region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionPlan {
    /// The region's name.
    pub region: String,
    /// How many servers to provision there.
    pub servers: u32,
}

impl RegionPlan {
    /// A plan for `servers` servers in `region`.
    pub fn new(region: impl Into<String>, servers: u32) -> Self {
        RegionPlan {
            region: region.into(),
            servers,
        }
    }
}

/// What one region's rollout produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionReport {
    /// The region's name.
    pub region: String,
    /// The servers provisioned, by host name.
    pub hosts: Vec<String>,
    /// The load balancer's address.
    pub endpoint: String,
}

/// What the whole rollout produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentSummary {
    /// One report per region, in the order of the input plans.
    pub regions: Vec<RegionReport>,
    /// The servers provisioned in all regions together.
    pub total_servers: usize,
}

/// Provisions a region's servers (simulated) and returns their host names.
#[activity]
pub async fn provision_servers(
    _ctx: ActivityContext,
    plan: RegionPlan,
) -> Result<Vec<String>, Error> {
    if plan.servers == 0 {
        return Err(Error::msg(format!(
            "region `{}` needs at least one server",
            plan.region
        )));
    }
    Ok((1..=plan.servers)
        .map(|i| format!("{}-vm-{i}", plan.region))
        .collect())
}

/// Puts a load balancer in front of a region's hosts (simulated) and returns its address.
#[activity]
pub async fn configure_load_balancer(
    _ctx: ActivityContext,
    (region, hosts): (String, Vec<String>),
) -> Result<String, Error> {
    if hosts.is_empty() {
        return Err(Error::msg(format!(
            "region `{region}` has no hosts to balance"
        )));
    }
    Ok(format!("https://{region}.example.test"))
}

/// The child: rolls out one region and reports what it built.
#[orchestrator]
pub async fn deploy_region(
    ctx: OrchestrationContext,
    plan: RegionPlan,
) -> Result<RegionReport, Error> {
    let hosts = ctx.call_activity(provision_servers, plan.clone()).await?;
    let endpoint = ctx
        .call_activity(
            configure_load_balancer,
            (plan.region.clone(), hosts.clone()),
        )
        .await?;
    Ok(RegionReport {
        region: plan.region,
        hosts,
        endpoint,
    })
}

/// The parent: runs one [`deploy_region`] child per plan, in parallel, and sums their reports.
#[orchestrator]
pub async fn deploy_all_regions(
    ctx: OrchestrationContext,
    plans: Vec<RegionPlan>,
) -> Result<DeploymentSummary, Error> {
    let parent = ctx.instance_id();
    let children = plans.into_iter().map(|plan| {
        let child_id = format!("{parent}:{}", plan.region);
        ctx.call_sub_orchestrator(deploy_region, plan)
            .instance_id(child_id)
    });
    let regions = ctx.when_all(children).await?;
    let total_servers = regions.iter().map(|r| r.hosts.len()).sum();
    Ok(DeploymentSummary {
        regions,
        total_servers,
    })
}

/// Registers [`deploy_all_regions`], [`deploy_region`] and their activities.
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
        .register(deploy_all_regions)
        .register(deploy_region)
        .register(provision_servers)
        .register(configure_load_balancer)
}
