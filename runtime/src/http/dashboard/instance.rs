//! One instance: what it was given and gave back, how it failed, its timeline, its family,
//! and the actions it accepts now.

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::html::{self, Nav, badge, esc, instance_link, json_block, time};
use super::timeline;
use super::{context, failure_page};
use crate::http::links::encode;
use crate::http::state::AppState;
use crate::model::history::EventKind;
use crate::model::{InstanceStatus, RuntimeStatus};

/// `GET /durable/instances/{id}`.
pub(super) async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let status = match state.client.status_with_history(&id).await {
        Ok(Some(status)) => status,
        Ok(None) => {
            return html::message_page(
                StatusCode::NOT_FOUND,
                "No such instance",
                &format!("There is no instance `{id}` (it may have been purged)."),
                &context(&state),
            );
        }
        Err(e) => return failure_page(&state, e),
    };
    let body = render(&status, state.client.now());
    html::html_response(
        StatusCode::OK,
        html::page(
            &format!("Instance {id}"),
            Nav::Instances,
            &context(&state),
            &body,
        ),
    )
}

/// The page's body.
pub(super) fn render(status: &InstanceStatus, now: chrono::DateTime<chrono::Utc>) -> String {
    let history = status.history.as_deref().unwrap_or(&[]);
    let mut out = String::new();
    let _ = write!(
        out,
        "<div class=\"title-row\"><h1 class=\"instance-id\">{}</h1>\
         <label class=\"live-toggle\"><input type=\"checkbox\" id=\"live\" checked> live</label></div>",
        esc(&status.instance_id)
    );
    out.push_str("<div data-live id=\"summary\">");
    let _ = write!(
        out,
        "<dl class=\"facts\"><dt>Status</dt><dd id=\"status\" data-status=\"{}\">{}</dd>\
         <dt>Orchestrator</dt><dd>{}</dd><dt>Created</dt><dd>{}</dd>\
         <dt>Updated</dt><dd>{}</dd><dt>Execution</dt><dd><code>{}</code></dd>",
        status.runtime_status.as_str(),
        badge(status.runtime_status),
        esc(&status.name),
        time(status.created_at),
        time(status.last_updated_at),
        esc(&status.execution_id),
    );
    if let Some(version) = &status.version {
        let _ = write!(
            out,
            "<dt>Version</dt><dd id=\"version\">{}</dd>",
            esc(version)
        );
    }
    if let Some(parent) = &status.parent_instance_id {
        let _ = write!(out, "<dt>Parent</dt><dd>{}</dd>", instance_link(parent));
    }
    let children: Vec<&str> = history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SubOrchestrationInstanceCreated { instance_id, .. } => {
                Some(instance_id.as_str())
            }
            _ => None,
        })
        .collect();
    if !children.is_empty() {
        out.push_str("<dt>Children</dt><dd><ul class=\"plain\">");
        for child in children {
            let _ = write!(out, "<li>{}</li>", instance_link(child));
        }
        out.push_str("</ul></dd>");
    }
    out.push_str("</dl>");

    out.push_str("<div class=\"grid\">");
    let _ = write!(
        out,
        "<section class=\"card\"><h2>Input</h2>{}</section>",
        json_block(status.input.as_deref())
    );
    let output_title = match status.runtime_status {
        RuntimeStatus::Terminated => "Reason",
        _ => "Output",
    };
    if status.runtime_status != RuntimeStatus::Failed {
        let _ = write!(
            out,
            "<section class=\"card\" id=\"output\"><h2>{output_title}</h2>{}</section>",
            json_block(status.output.as_deref())
        );
    }
    if status.custom_status.is_some() {
        let _ = write!(
            out,
            "<section class=\"card\" id=\"custom-status\"><h2>Custom status</h2>{}</section>",
            json_block(status.custom_status.as_deref())
        );
    }
    out.push_str("</div>");
    if let Some(failure) = &status.failure {
        let _ = write!(
            out,
            "<section class=\"card failure\" id=\"failure\"><h2>Failure</h2>{}</section>",
            timeline::failure_chain(failure)
        );
    }
    out.push_str("</div>");
    out.push_str(&actions(status));
    out.push_str("<h2>Timeline</h2><div data-live id=\"history\">");
    let rows = timeline::rows(history);
    out.push_str(&timeline::render(
        &rows,
        now,
        !status.runtime_status.is_terminal(),
    ));
    out.push_str(&history_table(status));
    out.push_str("</div>");
    out
}

/// The actions the instance accepts in its status, each confirmed before it is sent.
fn actions(status: &InstanceStatus) -> String {
    let s = status.runtime_status;
    let url = |action: &str| {
        esc(&format!(
            "{}/api/instances/{}/{action}",
            super::BASE,
            encode(&status.instance_id)
        ))
    };
    let id = esc(&status.instance_id);
    let mut out = String::from(
        "<section class=\"card actions\" id=\"actions\" data-after-action><h2>Actions</h2>",
    );
    if !s.is_terminal() {
        let _ = write!(
            out,
            "<form class=\"action stack\" data-action=\"{}\" data-confirm=\"Raise this event on {id}?\" id=\"raise-form\">\
             <label>Event name <input name=\"name\" id=\"event-name\" required></label>\
             <label>Body (JSON) <textarea name=\"body\" id=\"event-body\" rows=\"2\" placeholder=\"true\"></textarea></label>\
             <button type=\"submit\" id=\"raise\">Raise event</button></form>",
            url("raise-event")
        );
    }
    out.push_str("<div class=\"buttons\">");
    let button = |action: &str, text: &str, confirm: &str, danger: bool| {
        format!(
            "<button type=\"button\" class=\"act{}\" id=\"act-{action}\" data-action=\"{}\" data-confirm=\"{}\">{text}</button>",
            if danger { " danger" } else { "" },
            url(action),
            esc(confirm)
        )
    };
    let who = &status.instance_id;
    if !s.is_terminal() {
        out.push_str(&button(
            "terminate",
            "Terminate",
            &format!("Terminate {who}? It stops for good."),
            true,
        ));
        if s == RuntimeStatus::Suspended {
            out.push_str(&button(
                "resume",
                "Resume",
                &format!("Resume {who}?"),
                false,
            ));
        } else {
            out.push_str(&button(
                "suspend",
                "Suspend",
                &format!("Suspend {who}? Events are kept until it resumes."),
                false,
            ));
        }
    }
    if s == RuntimeStatus::Failed {
        out.push_str(&button(
            "rewind",
            "Rewind",
            &format!("Rewind {who}? It runs again from where it failed."),
            false,
        ));
    }
    out.push_str(&button(
        "restart",
        "Restart",
        &format!("Restart {who} with its original input, under the same id?"),
        false,
    ));
    if s.is_terminal() {
        out.push_str(&button(
            "purge",
            "Purge",
            &format!("Purge {who}? Its history and status are deleted for good."),
            true,
        ));
    }
    out.push_str("</div></section>");
    out
}

fn history_table(status: &InstanceStatus) -> String {
    let history = status.history.as_deref().unwrap_or(&[]);
    let mut out = format!(
        "<details class=\"card\"><summary>History events ({})</summary><div class=\"table-wrap\"><table class=\"list\"><thead><tr><th>#</th><th>Event</th><th>Time</th></tr></thead><tbody>",
        history.len()
    );
    for e in history {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.event_id,
            e.kind.name(),
            time(e.timestamp)
        );
    }
    out.push_str("</tbody></table></div></details>");
    out
}
