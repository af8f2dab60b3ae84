//! **Human interaction**: pause a workflow until a person decides, and do something sensible
//! when nobody does.
//!
//! `approval_workflow` sends an approval request (the `request_approval` activity), then waits
//! for the external event `ApprovalEvent`, whose payload is `true` (approve) or `false`
//! (reject). The wait races a durable timer: if the timeout passes first, the orchestrator
//! calls the `escalate` activity and ends `"escalated"`. Whichever side loses is withdrawn: a
//! late decision does not resume anything.
//!
//! A client delivers the decision with
//! `client.raise_event(&id, APPROVAL_EVENT, true)`; over the HTTP API it is a POST to the
//! instance's `raiseEvent/ApprovalEvent` URL. The wait can last days: nothing is held in memory
//! meanwhile.
//!
//! ```text
//! request_approval ──► wait for "ApprovalEvent" ─┬─ true ────► "approved"
//!                         (durable timeout)      ├─ false ───► "rejected"
//!                                                └─ timeout ─► escalate ──► "escalated"
//! ```

use std::time::Duration;

use durable::RuntimeBuilder;
use durable::prelude::*;

/// The name of the external event that carries the decision (a `bool`).
pub const APPROVAL_EVENT: &str = "ApprovalEvent";

/// Output when the approver said yes.
pub const APPROVED: &str = "approved";
/// Output when the approver said no.
pub const REJECTED: &str = "rejected";
/// Output when nobody answered in time.
pub const ESCALATED: &str = "escalated";

/// Asks for an approval (a real one would send an e-mail or a chat message with links that
/// raise the event). Returns a line describing what was sent.
#[activity]
pub async fn request_approval(ctx: ActivityContext, timeout_secs: u64) -> Result<String, Error> {
    Ok(format!(
        "approval requested for `{}`; answer within {timeout_secs} s",
        ctx.instance_id()
    ))
}

/// Escalates an unanswered request (a real one would page a manager). Returns a line
/// describing what was done.
#[activity]
pub async fn escalate(ctx: ActivityContext, waited_secs: u64) -> Result<String, Error> {
    Ok(format!(
        "no answer for `{}` after {waited_secs} s: escalated to a manager",
        ctx.instance_id()
    ))
}

/// Requests an approval and waits up to `timeout_secs` for [`APPROVAL_EVENT`]. Returns
/// [`APPROVED`], [`REJECTED`], or — after calling [`escalate`] — [`ESCALATED`].
#[orchestrator]
pub async fn approval_workflow(
    ctx: OrchestrationContext,
    timeout_secs: u64,
) -> Result<String, Error> {
    ctx.call_activity(request_approval, timeout_secs).await?;
    ctx.set_custom_status("waiting for approval");

    let decision = ctx
        .wait_for_event_with_timeout::<bool>(APPROVAL_EVENT, Duration::from_secs(timeout_secs))
        .await?;

    let outcome = match decision {
        Some(true) => APPROVED,
        Some(false) => REJECTED,
        None => {
            ctx.call_activity(escalate, timeout_secs).await?;
            ESCALATED
        }
    };
    ctx.set_custom_status(outcome);
    Ok(outcome.to_string())
}

/// Registers [`approval_workflow`], [`request_approval`] and [`escalate`].
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
        .register(approval_workflow)
        .register(request_approval)
        .register(escalate)
}
