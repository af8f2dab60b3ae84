//! Entities: a filtered, paged list, and one entity's state, lock and backlog, with the
//! signal and delete actions.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::html::{self, Nav, esc, instance_link, json_block, json_preview, query_string, time};
use super::{BASE, context, failure_page};
use crate::http::links::encode;
use crate::http::state::AppState;
use crate::model::history::{EntityCaller, EventKind};
use crate::model::{EntityId, EntityMetadata, EntityRecord, Error, InstanceQuery};

const PAGE_SIZE: usize = 50;

/// `GET /durable/entities`: `name` (exact, case-insensitive), `key` (a key prefix, with a
/// name), `locked` (only locked ones, on this page), `empty` (also those with no state).
pub(super) async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| {
        params
            .get(k)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let (name, key, page) = (get("name").to_lowercase(), get("key"), get("page"));
    let locked_only = get("locked") == "1";
    let with_empty = get("empty") == "1";
    let prefix = match (name.is_empty(), key.is_empty()) {
        (true, _) => "@".to_string(),
        (false, true) => format!("@{name}@"),
        (false, false) => format!("@{name}@{key}"),
    };
    let query = InstanceQuery {
        instance_id_prefix: Some(prefix),
        page_size: Some(PAGE_SIZE),
        continuation_token: (!page.is_empty()).then(|| page.clone()),
        ..Default::default()
    };
    let found = match state.client.query(&query).await {
        Ok(found) => found,
        Err(e) if e.kind() == &crate::model::ErrorKind::InvalidArgument => Default::default(),
        Err(e) => return failure_page(&state, e),
    };
    let mut entities = Vec::new();
    for status in &found.instances {
        match EntityMetadata::from_status(status, true) {
            Ok(Some(meta))
                if (with_empty || meta.has_state || meta.locked_by.is_some())
                    && (!locked_only || meta.locked_by.is_some()) =>
            {
                entities.push(meta)
            }
            Ok(_) => {}
            Err(e) => return failure_page(&state, e),
        }
    }
    let url = |page: &str| {
        format!(
            "{BASE}/entities{}",
            query_string(&[
                ("name", &name),
                ("key", &key),
                ("locked", if locked_only { "1" } else { "" }),
                ("empty", if with_empty { "1" } else { "" }),
                ("page", page),
            ])
        )
    };
    let checked = |on: bool| if on { " checked" } else { "" };
    let mut body = format!(
        "<div class=\"title-row\"><h1>Entities</h1></div>\
         <form class=\"filters\" method=\"get\" action=\"{BASE}/entities\">\
         <label>Name <input name=\"name\" id=\"e-name\" value=\"{}\" placeholder=\"counter\"></label>\
         <label>Key prefix <input name=\"key\" value=\"{}\"></label>\
         <label class=\"check\"><input type=\"checkbox\" name=\"locked\" value=\"1\"{}> locked only</label>\
         <label class=\"check\"><input type=\"checkbox\" name=\"empty\" value=\"1\"{}> include empty</label>\
         <div class=\"buttons\"><button type=\"submit\" class=\"primary\">Filter</button>\
         <a class=\"button\" href=\"{BASE}/entities\">Clear</a></div></form>",
        esc(&name),
        esc(&key),
        checked(locked_only),
        checked(with_empty),
    );
    if name.is_empty() && !key.is_empty() {
        body.push_str(
            "<p class=\"error\" role=\"alert\">A key prefix needs the entity's name too.</p>",
        );
    }
    if entities.is_empty() {
        body.push_str("<p class=\"empty\">No entities on this page match.</p>");
    } else {
        body.push_str(
            "<div class=\"table-wrap\"><table class=\"list\" id=\"entity-table\"><thead><tr><th>Entity</th>\
             <th>State</th><th>Locked by</th><th class=\"wide\">Last operation</th></tr></thead><tbody>",
        );
        for e in &entities {
            let _ = write!(
                body,
                "<tr><td><a class=\"id\" href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"wide\">{}</td></tr>",
                esc(&html::entity_url(e.id.name(), e.id.key())),
                esc(&e.id.to_string()),
                json_preview(e.state.as_deref(), 60),
                e.locked_by
                    .as_deref()
                    .map(instance_link)
                    .unwrap_or_default(),
                time(e.last_modified_at),
            );
        }
        body.push_str("</tbody></table></div>");
    }
    body.push_str("<nav class=\"pager\">");
    if !page.is_empty() {
        let _ = write!(
            body,
            "<a class=\"button\" href=\"{}\">First page</a>",
            esc(&url(""))
        );
    }
    if let Some(next) = &found.continuation_token {
        let _ = write!(
            body,
            "<a class=\"button\" href=\"{}\">Next page</a>",
            esc(&url(next))
        );
    }
    body.push_str("</nav>");
    html::html_response(
        StatusCode::OK,
        html::page("Entities", Nav::Entities, &context(&state), &body),
    )
}

/// When `holder` was granted the lock on `entity`, from its history (`None` when its history
/// does not say).
pub(super) async fn locked_since(
    state: &AppState,
    entity: &str,
    holder: &EntityCaller,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Error> {
    let Some(status) = state
        .client
        .status_with_history(&holder.instance_id)
        .await?
    else {
        return Ok(None);
    };
    let history = status.history.unwrap_or_default();
    let step = holder.task_scheduled_id;
    let mut since = None;
    for e in &history {
        match &e.kind {
            EventKind::EntityLockRequested { lock_set, .. }
                if e.event_id == step && lock_set.iter().any(|id| id == entity) =>
            {
                since = Some(e.timestamp);
            }
            EventKind::EntityLockGranted { task_scheduled_id } if *task_scheduled_id == step => {
                since = Some(e.timestamp);
            }
            _ => {}
        }
    }
    Ok(since)
}

/// `GET /durable/entities/{name}/{key}`.
pub(super) async fn show(
    State(state): State<AppState>,
    Path((name, key)): Path<(String, String)>,
) -> Response {
    let id = EntityId::new(&name, key);
    let status = match state.client.status(&id.to_string()).await {
        Ok(Some(status)) => status,
        Ok(None) => {
            return html::message_page(
                StatusCode::NOT_FOUND,
                "No such entity",
                &format!("There is no entity `{id}`: it never ran an operation."),
                &context(&state),
            );
        }
        Err(e) => return failure_page(&state, e),
    };
    let record = match EntityRecord::from_status(&status) {
        Ok(record) => record,
        Err(e) => return failure_page(&state, e),
    };
    let mut body = format!(
        "<div class=\"title-row\"><h1 class=\"instance-id\">{}</h1>\
         <label class=\"live-toggle\"><input type=\"checkbox\" id=\"live\" checked> live</label></div>\
         <div data-live id=\"entity\"><dl class=\"facts\"><dt>Name</dt><dd>{}</dd><dt>Key</dt><dd>{}</dd>\
         <dt>Last operation</dt><dd>{}</dd>",
        esc(&id.to_string()),
        esc(id.name()),
        esc(id.key()),
        time(status.last_updated_at)
    );
    match &record.locked_by {
        Some(holder) => {
            let since = locked_since(&state, &id.to_string(), holder)
                .await
                .ok()
                .flatten();
            let _ = write!(
                body,
                "<dt>Locked by</dt><dd id=\"lock\">{}{}</dd>",
                instance_link(&holder.instance_id),
                since
                    .map(|t| format!(" since {}", time(t)))
                    .unwrap_or_default()
            );
        }
        None => body.push_str("<dt>Locked by</dt><dd id=\"lock\">nobody</dd>"),
    }
    let _ = write!(
        body,
        "<dt>Waiting operations</dt><dd>{}</dd></dl>",
        record.queue.len()
    );
    let _ = write!(
        body,
        "<section class=\"card\"><h2>State</h2><div id=\"state\">{}</div></section>",
        if record.state.is_some() {
            json_block(record.state.as_deref())
        } else {
            "<p class=\"muted\">No state (deleted, or never set).</p>".to_string()
        }
    );
    if !record.queue.is_empty() {
        body.push_str("<section class=\"card\"><h2>Waiting for the lock</h2><ul class=\"plain\">");
        for e in &record.queue {
            let what = match &e.event().kind {
                EventKind::EntityOperationCalled { operation, .. }
                | EventKind::EntityOperationSignaled { operation, .. } => operation.clone(),
                other => other.name().to_string(),
            };
            let _ = write!(
                body,
                "<li><code>{}</code> at {}</li>",
                esc(&what),
                time(e.event().timestamp)
            );
        }
        body.push_str("</ul></section>");
    }
    body.push_str("</div>");
    let action = |what: &str| {
        esc(&format!(
            "{BASE}/api/entities/{}/{}/{what}",
            encode(id.name()),
            encode(id.key())
        ))
    };
    let _ = write!(
        body,
        "<section class=\"card actions\"><h2>Actions</h2>\
         <form class=\"action stack\" data-action=\"{}\" data-confirm=\"{}\" id=\"signal-form\">\
         <label>Operation <input name=\"operation\" id=\"op-name\" required placeholder=\"add\"></label>\
         <label>Input (JSON) <textarea name=\"input\" id=\"op-input\" rows=\"2\" placeholder=\"5\"></textarea></label>\
         <button type=\"submit\" id=\"signal\">Signal</button></form>\
         <div class=\"buttons\"><button type=\"button\" class=\"act danger\" id=\"act-delete\" data-action=\"{}\" data-confirm=\"{}\">Delete</button></div>\
         </section>",
        action("signal"),
        esc(&format!("Signal this operation to {id}?")),
        action("delete"),
        esc(&format!("Delete {id}? Its state is removed.")),
    );
    html::html_response(
        StatusCode::OK,
        html::page(&id.to_string(), Nav::Entities, &context(&state), &body),
    )
}
