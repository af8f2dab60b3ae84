//! The instances page: counts by status, filters, and one page of the list.
//!
//! The list is one store query per page (filters and paging done by the store, newest or
//! oldest first), so it stays fast however many instances the store holds. The orchestrator
//! name is not a store filter: with a name, the page reads further store pages until it has a
//! page of matches or has read [`NAME_SCAN_LIMIT`] instances, and says so.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::html::{self, Nav, badge, esc, query_string, time};
use super::{BASE, context, failure_page};
use crate::http::api::parse_time;
use crate::http::state::AppState;
use crate::model::{Error, InstanceQuery, InstanceStatus, RuntimeStatus};
use crate::store::StoreError;

/// Rows per page unless asked otherwise.
const PAGE_SIZE: usize = 50;

/// The most instances a name-filtered page reads before it shows what it found.
pub(super) const NAME_SCAN_LIMIT: usize = 5_000;

/// The filters of the list, as the form and the links carry them.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Filters {
    pub(super) status: Vec<RuntimeStatus>,
    pub(super) name: String,
    pub(super) prefix: String,
    pub(super) version: String,
    pub(super) from: String,
    pub(super) to: String,
    pub(super) oldest_first: bool,
    pub(super) size: usize,
    pub(super) page: String,
}

impl Filters {
    /// Reads the filters; what cannot be read is left out and described in the errors.
    pub(super) fn parse(params: &HashMap<String, String>) -> (Filters, Vec<String>) {
        let mut errors = Vec::new();
        let get = |k: &str| {
            params
                .get(k)
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let mut status = Vec::new();
        for name in get("status").split(',').filter(|s| !s.is_empty()) {
            match name.parse::<RuntimeStatus>() {
                Ok(s) => status.push(s),
                Err(e) => errors.push(e.message().to_string()),
            }
        }
        let size = match get("size").as_str() {
            "" => PAGE_SIZE,
            v => match v.parse::<usize>() {
                Ok(n @ 1..=500) => n,
                _ => {
                    errors.push(format!("`{v}` is not a page size from 1 to 500"));
                    PAGE_SIZE
                }
            },
        };
        let mut filters = Filters {
            status,
            name: get("name"),
            prefix: get("prefix"),
            version: get("version"),
            from: get("from"),
            to: get("to"),
            oldest_first: get("order") == "oldest",
            size,
            page: get("page"),
        };
        for (what, value) in [("from", &mut filters.from), ("to", &mut filters.to)] {
            if !value.is_empty() && parse_time(value).is_none() {
                errors.push(format!(
                    "`{value}` is not a time; use e.g. 2026-01-31T12:00 (UTC)"
                ));
                value.clear();
            }
            let _ = what;
        }
        (filters, errors)
    }

    /// The store query for one page.
    pub(super) fn query(&self) -> InstanceQuery {
        InstanceQuery {
            runtime_status: self.status.clone(),
            created_from: parse_time(&self.from),
            created_to: parse_time(&self.to),
            instance_id_prefix: (!self.prefix.is_empty()).then(|| self.prefix.clone()),
            version: (!self.version.is_empty()).then(|| self.version.clone()),
            page_size: Some(self.size),
            continuation_token: (!self.page.is_empty()).then(|| self.page.clone()),
        }
    }

    /// This list's URL with `page` as the page token.
    pub(super) fn url(&self, page: &str) -> String {
        let status: Vec<&str> = self.status.iter().map(|s| s.as_str()).collect();
        let size = if self.size == PAGE_SIZE {
            String::new()
        } else {
            self.size.to_string()
        };
        format!(
            "{BASE}/{}",
            query_string(&[
                ("status", &status.join(",")),
                ("name", &self.name),
                ("prefix", &self.prefix),
                ("version", &self.version),
                ("from", &self.from),
                ("to", &self.to),
                ("order", if self.oldest_first { "oldest" } else { "" }),
                ("size", &size),
                ("page", page),
            ])
        )
    }
}

/// One page of the list: the instances, the next page's token, and how many were read.
pub(super) struct ListPage {
    pub(super) instances: Vec<InstanceStatus>,
    pub(super) next: Option<String>,
    pub(super) scanned: usize,
}

/// Reads one page for `filters`.
pub(super) async fn read_page(state: &AppState, filters: &Filters) -> Result<ListPage, Error> {
    let store = state.client.store();
    let mut query = filters.query();
    let mut instances = Vec::new();
    let mut scanned = 0;
    loop {
        let page = if filters.oldest_first {
            store.query(&query).await
        } else {
            store.query_newest_first(&query).await
        }
        .map_err(StoreError::into_error)?;
        scanned += page.instances.len();
        instances.extend(
            page.instances
                .into_iter()
                .filter(|s| filters.name.is_empty() || s.name.eq_ignore_ascii_case(&filters.name)),
        );
        // Without a name filter a store page is the page; with one, read on (whole store
        // pages, so that the token stays the store's) until the page is full or the bound.
        if filters.name.is_empty()
            || instances.len() >= filters.size
            || scanned >= NAME_SCAN_LIMIT
            || page.continuation_token.is_none()
        {
            return Ok(ListPage {
                instances,
                next: page.continuation_token,
                scanned,
            });
        }
        query.continuation_token = page.continuation_token;
    }
}

/// `GET /durable/`: the instances.
pub(super) async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (filters, mut errors) = Filters::parse(&params);
    let counts = match state.client.store().count_by_status().await {
        Ok(counts) => counts,
        Err(e) => return failure_page(&state, e.into_error()),
    };
    let page = match read_page(&state, &filters).await {
        Ok(page) => page,
        // A token from an older page that no longer reads: start again.
        Err(e) if e.kind() == &crate::model::ErrorKind::InvalidArgument => {
            errors.push(e.message().to_string());
            ListPage {
                instances: Vec::new(),
                next: None,
                scanned: 0,
            }
        }
        Err(e) => return failure_page(&state, e),
    };
    let mut body = String::new();
    body.push_str("<div class=\"title-row\"><h1>Instances</h1><label class=\"live-toggle\"><input type=\"checkbox\" id=\"live\" checked> live</label></div>");
    body.push_str("<div data-live id=\"counts\">");
    body.push_str(&counts_bar(&counts, &filters));
    body.push_str("</div>");
    body.push_str(&filter_form(&filters));
    for error in &errors {
        let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", esc(error));
    }
    body.push_str("<div data-live id=\"instances\">");
    body.push_str(&table(&page.instances));
    body.push_str(&pager(&filters, &page));
    body.push_str("</div>");
    html::html_response(
        StatusCode::OK,
        html::page("Instances", Nav::Instances, &context(&state), &body),
    )
}

fn counts_bar(counts: &[(RuntimeStatus, u64)], filters: &Filters) -> String {
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let all = Filters {
        status: Vec::new(),
        page: String::new(),
        ..filters.clone()
    };
    let mut out = format!(
        "<ul class=\"counts\"><li><a href=\"{}\"{}><span class=\"n\">{total}</span> all</a></li>",
        esc(&all.url("")),
        if filters.status.is_empty() {
            " aria-current=\"true\""
        } else {
            ""
        }
    );
    for status in RuntimeStatus::ALL {
        let n = counts
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n);
        if n == 0 && !matches!(status, RuntimeStatus::Running | RuntimeStatus::Failed) {
            continue;
        }
        let only = Filters {
            status: vec![status],
            page: String::new(),
            ..filters.clone()
        };
        let current = if filters.status == [status] {
            " aria-current=\"true\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<li><a href=\"{}\" class=\"c-{}\" data-status=\"{}\"{current}><span class=\"n\">{n}</span> {}</a></li>",
            esc(&only.url("")),
            status.as_str().to_lowercase(),
            status.as_str(),
            status.as_str()
        );
    }
    out.push_str("</ul>");
    out
}

fn filter_form(filters: &Filters) -> String {
    let mut options = String::from("<option value=\"\">any status</option>");
    let chosen = filters.status.first().copied();
    for status in RuntimeStatus::ALL {
        let _ = write!(
            options,
            "<option value=\"{0}\"{1}>{0}</option>",
            status.as_str(),
            if chosen == Some(status) {
                " selected"
            } else {
                ""
            }
        );
    }
    let order = |oldest: bool, text: &str| {
        format!(
            "<option value=\"{}\"{}>{text}</option>",
            if oldest { "oldest" } else { "newest" },
            if filters.oldest_first == oldest {
                " selected"
            } else {
                ""
            }
        )
    };
    format!(
        "<form class=\"filters\" method=\"get\" action=\"{BASE}/\" id=\"filters\">\
         <label>Status <select name=\"status\" id=\"f-status\">{options}</select></label>\
         <label>Orchestrator <input name=\"name\" id=\"f-name\" value=\"{}\" placeholder=\"name\"></label>\
         <label>Id prefix <input name=\"prefix\" id=\"f-prefix\" value=\"{}\" placeholder=\"order-\"></label>\
         <label>Version <input name=\"version\" id=\"f-version\" value=\"{}\" placeholder=\"2.0\"></label>\
         <label>Created from <input name=\"from\" type=\"datetime-local\" step=\"1\" value=\"{}\"></label>\
         <label>to <input name=\"to\" type=\"datetime-local\" step=\"1\" value=\"{}\"></label>\
         <label>Order <select name=\"order\">{}{}</select></label>\
         <div class=\"buttons\"><button type=\"submit\" class=\"primary\" id=\"f-apply\">Filter</button>\
         <a href=\"{BASE}/\" class=\"button\">Clear</a></div></form>\
         <p class=\"muted small\">Times are UTC.</p>",
        esc(&filters.name),
        esc(&filters.prefix),
        esc(&filters.version),
        esc(&filters.from),
        esc(&filters.to),
        order(false, "newest first"),
        order(true, "oldest first"),
    )
}

fn table(instances: &[InstanceStatus]) -> String {
    if instances.is_empty() {
        return "<p class=\"empty\">No instances match.</p>".to_string();
    }
    let mut out = String::from(
        "<div class=\"table-wrap\"><table class=\"list\" id=\"instance-table\"><thead><tr>\
         <th>Instance</th><th>Orchestrator</th><th>Status</th><th>Created</th>\
         <th class=\"wide\">Updated</th></tr></thead><tbody>",
    );
    for s in instances {
        let _ = write!(
            out,
            "<tr data-id=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"wide\">{}</td></tr>",
            esc(&s.instance_id),
            html::instance_link(&s.instance_id),
            esc(&s.name),
            badge(s.runtime_status),
            time(s.created_at),
            time(s.last_updated_at),
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

fn pager(filters: &Filters, page: &ListPage) -> String {
    let mut out = String::from("<nav class=\"pager\">");
    if !filters.page.is_empty() {
        let _ = write!(
            out,
            "<a href=\"{}\" class=\"button\">First page</a>",
            esc(&filters.url(""))
        );
    }
    if let Some(next) = &page.next {
        let _ = write!(
            out,
            "<a href=\"{}\" class=\"button\" id=\"next-page\">Next page</a>",
            esc(&filters.url(next))
        );
    }
    if !filters.name.is_empty() {
        let _ = write!(
            out,
            "<span class=\"muted small\">Filtered by name over {} instances read{}.</span>",
            page.scanned,
            if page.scanned >= NAME_SCAN_LIMIT && page.next.is_some() {
                " (the most one page reads; the next page reads on)"
            } else {
                ""
            }
        );
    }
    out.push_str("</nav>");
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn filters_round_trip_through_their_url() {
        let params: HashMap<String, String> = [
            ("status", "Running,failed"),
            ("name", "hello_cities"),
            ("prefix", "a b"),
            ("version", "2.0"),
            ("from", "2026-01-02T03:04"),
            ("order", "oldest"),
            ("size", "20"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (filters, errors) = Filters::parse(&params);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            filters.status,
            [RuntimeStatus::Running, RuntimeStatus::Failed]
        );
        let url = filters.url("tok|1");
        assert_eq!(
            url,
            "/durable/?status=Running%2CFailed&name=hello_cities&prefix=a%20b&version=2.0&\
             from=2026-01-02T03%3A04&order=oldest&size=20&page=tok%7C1"
        );
        let q = filters.query();
        assert_eq!(q.page_size, Some(20));
        assert_eq!(q.instance_id_prefix.as_deref(), Some("a b"));
        assert_eq!(q.version.as_deref(), Some("2.0"));
        assert!(q.created_from.is_some());
        assert_eq!(q.continuation_token, None);
    }

    #[test]
    fn unreadable_filters_are_named_and_left_out() {
        let params: HashMap<String, String> =
            [("status", "Bogus"), ("from", "yesterday"), ("size", "0")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let (filters, errors) = Filters::parse(&params);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(filters.status.is_empty() && filters.from.is_empty());
        assert_eq!(filters.size, PAGE_SIZE);
    }
}
