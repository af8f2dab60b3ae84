//! What needs attention, in one place: instances failed by nondeterminism (with the step and
//! the call site), parked poison messages, instances with no progress for longer than a
//! threshold, and entities locked for longer than a threshold.
//!
//! Each list reads at most [`SCAN_LIMIT`] instances or entities (the most recent failures,
//! the oldest running instances, entities in id order), so the page stays quick on a large
//! store; it says when it stopped there.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, TimeDelta, Utc};

use super::entities::locked_since;
use super::html::{self, Nav, duration, esc, instance_link, time};
use super::{context, failure_page};
use crate::http::state::AppState;
use crate::model::{
    EntityMetadata, EntityRecord, Error, InstanceQuery, InstanceStatus, RuntimeStatus,
};
use crate::store::StoreError;

/// The most instances (or entities) one list reads.
pub(super) const SCAN_LIMIT: usize = 5_000;

/// Default thresholds, in minutes.
const STUCK_MINUTES: i64 = 60;
const LOCKED_MINUTES: i64 = 10;

/// The step and call site a nondeterminism message names, when it names them.
pub(super) fn step_and_site(message: &str) -> (Option<i64>, Option<String>) {
    let step = message.match_indices("step ").find_map(|(at, _)| {
        let digits: String = message[at + 5..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    });
    // The call site is `file:line:column` after an " at ".
    let site = message.match_indices(" at ").find_map(|(at, _)| {
        let word = message[at + 4..].split_whitespace().next()?;
        let word = word.trim_end_matches(['.', ',', ')', ';']);
        let mut parts = word.rsplitn(3, ':');
        let column = parts.next()?;
        let line = parts.next()?;
        let file = parts.next()?;
        (!file.is_empty()
            && line.chars().all(|c| c.is_ascii_digit())
            && column.chars().all(|c| c.is_ascii_digit())
            && !line.is_empty()
            && !column.is_empty())
        .then(|| word.to_string())
    });
    (step, site)
}

/// The instances `query` matches, a page at a time (newest first when asked), up to
/// [`SCAN_LIMIT`]; and how many were read.
async fn read_bounded(
    state: &AppState,
    mut query: InstanceQuery,
    newest_first: bool,
) -> Result<(Vec<InstanceStatus>, usize), Error> {
    let store = state.client.store();
    query.page_size = Some(500);
    let mut read = Vec::new();
    loop {
        let page = if newest_first {
            store.query_newest_first(&query).await
        } else {
            store.query(&query).await
        }
        .map_err(StoreError::into_error)?;
        read.extend(page.instances);
        match page.continuation_token {
            Some(token) if read.len() < SCAN_LIMIT => query.continuation_token = Some(token),
            _ => {
                let scanned = read.len();
                return Ok((read, scanned));
            }
        }
    }
}

fn minutes(params: &HashMap<String, String>, name: &str, default: i64) -> i64 {
    params
        .get(name)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|m| *m >= 0)
        .unwrap_or(default)
}

/// `GET /durable/attention` (`stuck` and `locked`: thresholds in minutes).
pub(super) async fn show(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let stuck = minutes(&params, "stuck", STUCK_MINUTES);
    let locked = minutes(&params, "locked", LOCKED_MINUTES);
    match render(&state, state.client.now(), stuck, locked).await {
        Ok(body) => html::html_response(
            StatusCode::OK,
            html::page("Attention", Nav::Attention, &context(&state), &body),
        ),
        Err(e) => failure_page(&state, e),
    }
}

async fn render(
    state: &AppState,
    now: DateTime<Utc>,
    stuck: i64,
    locked: i64,
) -> Result<String, Error> {
    let mut out = format!(
        "<div class=\"title-row\"><h1>What needs attention</h1></div>\
         <form class=\"filters\" method=\"get\" action=\"{}/attention\">\
         <label>No progress for (min) <input name=\"stuck\" type=\"number\" min=\"0\" value=\"{stuck}\"></label>\
         <label>Locked for (min) <input name=\"locked\" type=\"number\" min=\"0\" value=\"{locked}\"></label>\
         <div class=\"buttons\"><button type=\"submit\" class=\"primary\">Apply</button></div></form>",
        super::BASE
    );
    out.push_str(&nondeterminism(state).await?);
    out.push_str(&parked(state).await?);
    out.push_str(&stalled(state, now, stuck).await?);
    out.push_str(&long_locks(state, now, locked).await?);
    Ok(out)
}

fn section(id: &str, title: &str, count: usize, explain: &str, table: String) -> String {
    format!(
        "<section class=\"card attention\" id=\"{id}\"><h2>{title} <span class=\"count{}\">{count}</span></h2>\
         <p class=\"muted small\">{explain}</p>{}</section>",
        if count > 0 { " hot" } else { "" },
        if count == 0 {
            "<p class=\"empty\">Nothing here.</p>".to_string()
        } else {
            table
        }
    )
}

fn scanned_note(scanned: usize) -> String {
    if scanned >= SCAN_LIMIT {
        format!(" Stopped after reading {SCAN_LIMIT}.")
    } else {
        String::new()
    }
}

async fn nondeterminism(state: &AppState) -> Result<String, Error> {
    let failed = InstanceQuery {
        runtime_status: vec![RuntimeStatus::Failed],
        ..Default::default()
    };
    let (mut found, scanned) = read_bounded(state, failed, true).await?;
    found.retain(|s| {
        s.failure
            .as_ref()
            .is_some_and(|f| f.error_type == "Nondeterminism" || f.error_type == "NonDurableWait")
    });
    let mut table = String::from(
        "<div class=\"table-wrap\"><table class=\"list\"><thead><tr><th>Instance</th><th>Orchestrator</th>\
         <th>Step</th><th>Call site</th><th class=\"wide\">Failed</th></tr></thead><tbody>",
    );
    for s in &found {
        let failure = s.failure.as_ref().expect("filtered on the failure");
        let (step, site) = step_and_site(&failure.message);
        let _ = write!(
            table,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td class=\"wide\">{}</td></tr>\
             <tr class=\"sub\"><td colspan=\"5\"><details><summary>{}</summary><p class=\"emsg\">{}</p></details></td></tr>",
            instance_link(&s.instance_id),
            esc(&s.name),
            step.map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
            esc(site.as_deref().unwrap_or("—")),
            time(s.last_updated_at),
            esc(&failure.error_type),
            esc(&failure.message),
        );
    }
    table.push_str("</tbody></table></div>");
    Ok(section(
        "nondeterminism",
        "Failed by nondeterminism",
        found.len(),
        &format!(
            "The code no longer matches the history these instances recorded. Most recent \
             failures first.{}",
            scanned_note(scanned)
        ),
        table,
    ))
}

async fn parked(state: &AppState) -> Result<String, Error> {
    let mut parked = state
        .client
        .store()
        .parked()
        .await
        .map_err(StoreError::into_error)?;
    parked.sort_by_key(|p| std::cmp::Reverse(p.parked_at));
    let mut table = String::from(
        "<div class=\"table-wrap\"><table class=\"list\"><thead><tr><th>Instance</th><th>Error</th>\
         <th class=\"wide\">Message</th><th>Parked</th></tr></thead><tbody>",
    );
    for p in parked.iter().take(200) {
        let _ = write!(
            table,
            "<tr><td>{}</td><td class=\"emsg\">{}</td><td class=\"wide\"><code>{}</code></td><td>{}</td></tr>",
            instance_link(&p.instance_id),
            esc(&p.error),
            esc(&p.message.chars().take(300).collect::<String>()),
            time(p.parked_at),
        );
    }
    table.push_str("</tbody></table></div>");
    Ok(section(
        "parked",
        "Parked poison messages",
        parked.len(),
        "Messages taken out of circulation because processing them kept failing, newest first.",
        table,
    ))
}

async fn stalled(state: &AppState, now: DateTime<Utc>, minutes: i64) -> Result<String, Error> {
    let threshold = TimeDelta::minutes(minutes);
    let cutoff = now - threshold;
    let unfinished = InstanceQuery {
        runtime_status: vec![RuntimeStatus::Pending, RuntimeStatus::Running],
        // One that changed after the cutoff was created after it too.
        created_to: Some(cutoff),
        ..Default::default()
    };
    let (mut found, scanned) = read_bounded(state, unfinished, false).await?;
    found.retain(|s| s.last_updated_at <= cutoff);
    let mut table = String::from(
        "<div class=\"table-wrap\"><table class=\"list\"><thead><tr><th>Instance</th><th>Orchestrator</th>\
         <th>Status</th><th>No progress for</th></tr></thead><tbody>",
    );
    for s in &found {
        let _ = write!(
            table,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            instance_link(&s.instance_id),
            esc(&s.name),
            html::badge(s.runtime_status),
            duration(now - s.last_updated_at),
        );
    }
    table.push_str("</tbody></table></div>");
    Ok(section(
        "stalled",
        "No progress",
        found.len(),
        &format!(
            "Pending or running, and unchanged for more than {minutes} min (waiting for an event \
             or a long timer looks the same). Oldest first.{}",
            scanned_note(scanned)
        ),
        table,
    ))
}

async fn long_locks(state: &AppState, now: DateTime<Utc>, minutes: i64) -> Result<String, Error> {
    let threshold = TimeDelta::minutes(minutes);
    let entities = InstanceQuery {
        instance_id_prefix: Some("@".into()),
        ..Default::default()
    };
    let (statuses, scanned) = read_bounded(state, entities, false).await?;
    let mut found = Vec::new();
    for status in &statuses {
        let record = EntityRecord::from_status(status)?;
        let Some(holder) = record.locked_by else {
            continue;
        };
        let since = locked_since(state, &status.instance_id, &holder)
            .await?
            .unwrap_or(status.last_updated_at);
        if now - since >= threshold
            && let Some(meta) = EntityMetadata::from_status(status, false)?
        {
            found.push((meta, holder.instance_id, since));
        }
    }
    let mut table = String::from(
        "<div class=\"table-wrap\"><table class=\"list\"><thead><tr><th>Entity</th><th>Held by</th>\
         <th>Locked for</th></tr></thead><tbody>",
    );
    for (meta, holder, since) in &found {
        let _ = write!(
            table,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            instance_link(&meta.id.to_string()),
            instance_link(holder),
            duration(now - *since),
        );
    }
    table.push_str("</tbody></table></div>");
    Ok(section(
        "locks",
        "Locked too long",
        found.len(),
        &format!(
            "Entities whose lock has been held for more than {minutes} min.{}",
            scanned_note(scanned)
        ),
        table,
    ))
}

#[cfg(test)]
mod unit {
    use super::step_and_site;

    #[test]
    fn the_step_and_call_site_are_read_from_the_message() {
        let message = "nondeterministic orchestrator `checkout`: the history recorded a call to \
                       activity `charge` with input `1` as step 2, but the code now calls \
                       activity `charge` with input `2` at src/checkout.rs:41:18. Orchestrator \
                       code must make the same calls";
        assert_eq!(
            step_and_site(message),
            (Some(2), Some("src/checkout.rs:41:18".to_string()))
        );
        let waiting = "orchestrator `x` is waiting on something that is not durable ... Its last \
                       step was step 0, at examples/src/a.rs:7:3.";
        assert_eq!(
            step_and_site(waiting),
            (Some(0), Some("examples/src/a.rs:7:3".to_string()))
        );
        assert_eq!(step_and_site("nothing to see"), (None, None));
    }
}
