//! Plumbing shared by the PostgreSQL store's modules: errors, statements, timestamps and the
//! mapping between rows and the store's types.

use std::error::Error as StdError;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::model::FailureDetails;
use crate::model::history::HistoryEvent;
use crate::model::{InstanceStatus, RuntimeStatus};
use crate::store::StoreError;

/// What went wrong inside the store, before it is reported as a [`StoreError`] that names the
/// operation.
#[derive(Debug)]
pub(super) enum Fail {
    /// A store-level outcome (lease lost, not found, …), reported as it is.
    Store(StoreError),
    /// The database or the connection failed.
    Db(tokio_postgres::Error),
    /// No connection could be had from the pool.
    Pool(deadpool_postgres::PoolError),
    /// Any other failure, described in words (data that does not decode, a schema that is
    /// too new).
    Described(String),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<deadpool_postgres::PoolError> for Fail {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Fail::Pool(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl Fail {
    /// The error a caller sees: what the store was doing, on which database, and why it failed.
    pub(super) fn report(self, operation: &str, target: &str) -> StoreError {
        let why = match self {
            Fail::Store(e) => return e,
            Fail::Db(e) => describe_pg(&e),
            Fail::Pool(deadpool_postgres::PoolError::Backend(e)) => {
                format!("could not connect: {}", describe_pg(&e))
            }
            Fail::Pool(deadpool_postgres::PoolError::Timeout(kind)) => {
                format!("timed out waiting for a database connection ({kind:?})")
            }
            Fail::Pool(e) => format!("could not get a database connection: {e}"),
            Fail::Described(what) => what,
        };
        StoreError::Backend(format!("postgres {target}: {operation} failed: {why}"))
    }
}

/// An error and its causes on one line (`tokio_postgres::Error`'s own `Display` names only the
/// kind of failure).
pub(super) fn describe(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A PostgreSQL error: the server's own message and SQLSTATE when the server refused
/// something, otherwise the client-side failure and its causes.
pub(super) fn describe_pg(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!(
                "the server said: {} (SQLSTATE {})",
                db.message(),
                db.code().code()
            );
            if let Some(detail) = db.detail() {
                text.push_str(": ");
                text.push_str(detail);
            }
            text
        }
        None => describe(e),
    }
}

/// Whether an error means the connection itself is gone (closed, an I/O failure, or a
/// `FATAL` error such as the server shutting down or the session being terminated), as
/// opposed to a statement the server refused on a healthy connection.
pub(super) fn connection_broken(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        Some(db) => matches!(db.severity(), "FATAL" | "PANIC"),
        None => true,
    }
}

/// Text for a description column (parked messages and their errors): PostgreSQL's `text`
/// cannot hold NUL characters, and parking must not fail because an error message has one.
pub(super) fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}

/// Parameters of a statement.
pub(super) type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Ends `tx` without applying it, waiting until the server has, and returns `outcome`.
///
/// A transaction that is merely dropped only queues its `ROLLBACK` on the connection, which
/// goes back to the pool at once: until the server gets to it, the rows the transaction locked
/// stay locked, and the caller's next operation, on another pooled connection, can pass them
/// over (`SKIP LOCKED`) as if another host held them. Used where an operation refuses after
/// its transaction locked an instance's row.
pub(super) async fn roll_back<T>(
    tx: deadpool_postgres::Transaction<'_>,
    outcome: Result<T, Fail>,
) -> Result<T, Fail> {
    tx.rollback().await?;
    outcome
}

/// Runs a statement (prepared once per connection) and returns its rows.
pub(super) async fn rows<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>, Fail> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

/// Runs a statement that returns at most one row.
pub(super) async fn row<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &Params<'_>,
) -> Result<Option<Row>, Fail> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query_opt(&statement, params).await?)
}

/// Runs a statement and returns how many rows it changed.
pub(super) async fn execute<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &Params<'_>,
) -> Result<u64, Fail> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, params).await?)
}

/// Instants the caller sees again (creation and update times, visibility times) are stored as
/// nanoseconds since the Unix epoch, so they round-trip exactly (a `timestamptz` keeps
/// microseconds). Instants outside 1677–2262 are clamped to that range.
pub(super) fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// The inverse of [`nanos`].
pub(super) fn instant(nanos: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(nanos)
}

/// A duration as whole microseconds for `interval` arithmetic in SQL, capped at 100 years.
pub(super) fn micros(d: Duration) -> i64 {
    const CAP: i64 = 100 * 366 * 24 * 3600 * 1_000_000;
    i64::try_from(d.as_micros()).unwrap_or(CAP).min(CAP)
}

/// Terminal statuses, as stored.
pub(super) const TERMINAL: [&str; 3] = ["Completed", "Failed", "Terminated"];

/// The columns of `durable_instances` that make up an [`InstanceStatus`], in the order
/// [`status_from_row`] reads them.
pub(super) const STATUS_COLUMNS: &str = "instance_id, name, execution_id, runtime_status, input, \
     output, custom_status, failure::text, created_at_ns, last_updated_at_ns, parent_instance_id, \
     version";

/// Reads an [`InstanceStatus`] from a row selected with [`STATUS_COLUMNS`] (from column 0).
pub(super) fn status_from_row(row: &Row) -> Result<InstanceStatus, Fail> {
    let instance_id: String = row.try_get(0)?;
    let runtime_status: String = row.try_get(3)?;
    let runtime_status = runtime_status.parse::<RuntimeStatus>().map_err(|_| {
        Fail::Described(format!(
            "instance `{instance_id}` has an unknown runtime status `{runtime_status}`"
        ))
    })?;
    let failure = row
        .try_get::<_, Option<String>>(7)?
        .map(|json| serde_json::from_str::<FailureDetails>(&json))
        .transpose()
        .map_err(|e| {
            Fail::Described(format!(
                "instance `{instance_id}` has an unreadable failure record: {e}"
            ))
        })?;
    Ok(InstanceStatus {
        name: row.try_get(1)?,
        execution_id: row.try_get(2)?,
        runtime_status,
        input: row.try_get(4)?,
        output: row.try_get(5)?,
        custom_status: row.try_get(6)?,
        failure,
        created_at: instant(row.try_get(8)?),
        last_updated_at: instant(row.try_get(9)?),
        parent_instance_id: row.try_get(10)?,
        version: row.try_get(11)?,
        history: None,
        instance_id,
    })
}

/// An event as stored (JSON text).
pub(super) fn event_json(event: &HistoryEvent) -> Result<String, Fail> {
    serde_json::to_string(event)
        .map_err(|e| Fail::Described(format!("a history event does not serialize: {e}")))
}

/// A turn's events as one history row: a JSON array.
pub(super) fn events_json(events: &[HistoryEvent]) -> Result<String, Fail> {
    serde_json::to_string(events)
        .map_err(|e| Fail::Described(format!("a history event does not serialize: {e}")))
}

/// The events of one history row: a JSON array of a turn's events (schema 5 on), or the
/// single event of a row written before.
pub(super) fn history_row_events(
    instance_id: &str,
    json: &str,
    into: &mut Vec<HistoryEvent>,
) -> Result<(), Fail> {
    if json.trim_start().starts_with('[') {
        let events: Vec<HistoryEvent> = serde_json::from_str(json).map_err(|e| {
            Fail::Described(format!(
                "a stored turn of instance `{instance_id}` does not decode: {e}"
            ))
        })?;
        into.extend(events);
    } else {
        into.push(event_from_json(instance_id, json)?);
    }
    Ok(())
}

/// An event read back.
pub(super) fn event_from_json(instance_id: &str, json: &str) -> Result<HistoryEvent, Fail> {
    serde_json::from_str(json).map_err(|e| {
        Fail::Described(format!(
            "a stored event of instance `{instance_id}` does not decode: {e}"
        ))
    })
}

/// A failure record as stored (JSON text).
pub(super) fn failure_json(failure: Option<&FailureDetails>) -> Result<Option<String>, Fail> {
    failure
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Fail::Described(format!("a failure record does not serialize: {e}")))
}
