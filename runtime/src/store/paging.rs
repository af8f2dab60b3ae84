//! Query paging shared by every store: pages are ordered by (creation time, instance id), and a
//! continuation token names the last instance of the previous page.

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::model::{InstanceQuery, InstanceStatus, QueryPage};

/// The page size a query asks for (100 when unset, at least 1).
pub(crate) fn page_size(query: &InstanceQuery) -> usize {
    query.page_size.unwrap_or(100).max(1)
}

/// The (creation time, id) a query's continuation token says to start after, if any.
pub(crate) fn start_after(
    query: &InstanceQuery,
) -> Result<Option<(DateTime<Utc>, String)>, StoreError> {
    query
        .continuation_token
        .as_deref()
        .map(decode_continuation)
        .transpose()
}

/// A page from up to `size + 1` matches in order: the extra one only says there are more.
pub(crate) fn page(mut matches: Vec<InstanceStatus>, size: usize) -> QueryPage {
    let more = matches.len() > size;
    matches.truncate(size);
    let continuation_token = match (more, matches.last()) {
        (true, Some(last)) => Some(encode_continuation(last)),
        _ => None,
    };
    QueryPage {
        instances: matches,
        continuation_token,
    }
}

/// `<created nanos>|<id>`.
fn encode_continuation(last: &InstanceStatus) -> String {
    format!(
        "{}|{}",
        last.created_at.timestamp_nanos_opt().unwrap_or(i64::MAX),
        last.instance_id
    )
}

fn decode_continuation(token: &str) -> Result<(DateTime<Utc>, String), StoreError> {
    let invalid = || StoreError::InvalidContinuation(token.to_string());
    let (nanos, id) = token.split_once('|').ok_or_else(invalid)?;
    let nanos: i64 = nanos.parse().map_err(|_| invalid())?;
    Ok((DateTime::from_timestamp_nanos(nanos), id.to_string()))
}
