//! What the PostgreSQL store's tests share: the database to test against (or a skip), fresh
//! task hubs and schemas, and small builders of instances and turns.
#![allow(dead_code)] // each test file uses a part

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeDelta, Utc};
use durable::prelude::*;
use durable::store::{
    Fetched, HistoryWrite, NewInstance, OrchestrationWorkItem, Postgres, Store, TurnCommit,
};
use tokio_postgres::NoTls;

pub const URL_VAR: &str = "DURABLE_POSTGRES_URL";

/// The database to test against, or `None` (after saying the tests are skipped).
pub fn database_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            // Straight to stderr, past the test harness's capture, so the skip is visible.
            let _ = writeln!(
                std::io::stderr(),
                "PostgreSQL tests skipped: set {URL_VAR} or run scripts/with-postgres"
            );
            None
        }
    }
}

macro_rules! url_or_skip {
    () => {
        match database_url() {
            Some(url) => url,
            None => return,
        }
    };
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos();
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `url` with extra connection parameters (URL or `key=value` form).
pub fn with_param(url: &str, key: &str, value: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let encoded: String = value
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{key}={encoded}")
    } else {
        format!("{url} {key}='{value}'")
    }
}

/// `url` with its search path set to `schema`: a store connected with it lives in that schema.
pub fn in_schema(url: &str, schema: &str) -> String {
    with_param(url, "options", &format!("-csearch_path={schema}"))
}

/// A plain connection for the tests' own SQL.
pub async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {URL_VAR} failed: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A store on `url`, scoped to a fresh task hub.
pub async fn store_in_fresh_hub(url: &str) -> Postgres {
    Postgres::connect(url)
        .await
        .expect("the store connects")
        .in_task_hub(&unique("hub"))
}

pub fn t(secs: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .expect("a valid instant")
        .with_timezone(&Utc)
        + TimeDelta::seconds(secs)
}

pub fn new_instance(id: &str) -> NewInstance {
    NewInstance {
        instance_id: id.to_string(),
        name: "Flow".into(),
        input: "null".into(),
        execution_id: format!("{id}-exec"),
        parent: None,
        created_at: t(0),
        start_at: None,
        replace_running: false,
        version: None,
    }
}

pub async fn fetch(store: &dyn Store, lease: Duration) -> Option<OrchestrationWorkItem> {
    match store
        .fetch_orchestration(t(0), lease, &durable::store::Owned::Everything)
        .await
        .expect("fetch_orchestration")
    {
        Fetched::Item(item) => Some(item),
        Fetched::Empty { .. } => None,
    }
}

/// A turn that starts the instance: consumes its messages, appends their events, Running.
pub fn first_turn(item: &OrchestrationWorkItem) -> TurnCommit {
    TurnCommit {
        consumed: item.messages.iter().map(|m| m.seq).collect(),
        history: HistoryWrite::Append(
            item.messages
                .iter()
                .map(|m| m.message.event.clone())
                .collect(),
        ),
        status: InstanceStatus {
            runtime_status: RuntimeStatus::Running,
            last_updated_at: t(1),
            ..item.instance.clone()
        },
        activities: Vec::new(),
        messages: Vec::new(),
        new_instances: Vec::new(),
    }
}
