//! Printing: aligned tables and summaries for people, JSON for programs.

use std::io::{ErrorKind, Write};

use durable::http::api::{EntityListItem, Status};
use serde::Serialize;
use serde_json::Value;

/// How wide a free-text cell (a result, a state) may grow before it is cut.
const DETAIL_WIDTH: usize = 60;

/// Writes `text` to stdout. When the reader has gone (`durable list | head`), exits quietly.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// Writes one line to stdout.
pub fn line(text: impl std::fmt::Display) {
    emit(&format!("{text}\n"));
}

/// Writes a value as pretty JSON.
pub fn json(value: &impl Serialize) {
    let text = serde_json::to_string_pretty(value).expect("API bodies serialize");
    line(text);
}

/// A table with a header row, columns aligned on the widest cell.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headings.
    pub fn new(headings: &[&str]) -> Self {
        Table {
            rows: vec![headings.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row; the last column is not padded.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut text = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 < row.len() {
                    text.push_str(&format!("{cell:<width$}  ", width = widths[c]));
                } else {
                    text.push_str(cell);
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `text` cut to `max` characters, ending in `…` when cut; line breaks become spaces.
pub fn truncate(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A JSON value on one line (`null` for nothing).
pub fn compact(value: &Value) -> String {
    value.to_string()
}

/// The instances as a table: id, orchestrator, status and times.
pub fn instance_table(instances: &[Status]) -> String {
    let mut table = Table::new(&["INSTANCE ID", "NAME", "STATUS", "CREATED", "UPDATED"]);
    for s in instances {
        table.row(vec![
            s.instance_id.clone(),
            s.name.clone(),
            s.runtime_status.clone(),
            s.created_time.clone(),
            s.last_updated_time.clone(),
        ]);
    }
    table.render()
}

/// The labels of a status summary, padded to one width so that every summary lines up alike.
const LABEL_WIDTH: usize = "Custom status:".len() + 1;

/// An instance's status as labelled lines, then its history as a table when it has one.
pub fn status_summary(status: &Status) -> String {
    let mut fields: Vec<(&str, String)> = vec![
        ("Instance ID", status.instance_id.clone()),
        ("Name", status.name.clone()),
        ("Status", status.runtime_status.clone()),
    ];
    if let Some(version) = &status.version {
        fields.push(("Version", version.clone()));
    }
    fields.extend([
        ("Created", status.created_time.clone()),
        ("Last updated", status.last_updated_time.clone()),
        ("Input", compact(&status.input)),
    ]);
    if !status.custom_status.is_null() {
        fields.push(("Custom status", compact(&status.custom_status)));
    }
    match &status.failure_details {
        Some(failure) => fields.push(("Failure", failure_text(failure))),
        None if !status.output.is_null() => fields.push(("Output", compact(&status.output))),
        None => {}
    }
    let mut out = String::new();
    for (label, value) in fields {
        let label = format!("{label}:");
        out.push_str(&format!("{label:<LABEL_WIDTH$}{value}\n"));
    }
    if let Some(history) = &status.history_events {
        out.push('\n');
        out.push_str(&history_table(history));
    }
    out
}

/// A failure's message and kind; a cause only when the message does not already tell it.
fn failure_text(failure: &Value) -> String {
    let text = |f: &Value, field: &str| {
        f.get(field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut out = format!(
        "{} ({})",
        text(failure, "message"),
        text(failure, "errorType")
    );
    let mut told = text(failure, "message");
    let mut next = failure.get("cause").filter(|c| c.is_object());
    while let Some(cause) = next {
        let message = text(cause, "message");
        if !told.contains(&message) {
            out.push_str(&format!(
                "; caused by: {message} ({})",
                text(cause, "errorType")
            ));
            told = message;
        }
        next = cause.get("cause").filter(|c| c.is_object());
    }
    out
}

/// The history as the API shows it, as a table: event, time, what it concerns, and its result
/// (cut to fit).
pub fn history_table(events: &[Value]) -> String {
    let mut table = Table::new(&["EVENT", "TIMESTAMP", "NAME", "RESULT"]);
    for event in events {
        let text = |field: &str| event.get(field).and_then(Value::as_str);
        let name = match (text("EntityId"), text("Operation")) {
            (Some(entity), Some(op)) => format!("{entity} {op}"),
            (Some(entity), None) => entity.to_string(),
            _ => text("FunctionName")
                .or(text("Name"))
                .unwrap_or_default()
                .to_string(),
        };
        let mut detail = Vec::new();
        if let Some(status) = text("OrchestrationStatus") {
            detail.push(status.to_string());
        }
        if let Some(result) = event.get("Result") {
            detail.push(compact(result));
        }
        if let Some(reason) = event.get("Reason").filter(|r| !r.is_null()) {
            detail.push(
                reason
                    .as_str()
                    .map_or_else(|| compact(reason), str::to_string),
            );
        }
        if let Some(at) = text("FireAt") {
            detail.push(format!("fires at {at}"));
        }
        if let Some(child) = text("InstanceId")
            && text("EntityId").is_none()
        {
            detail.push(format!("instance {child}"));
        }
        table.row(vec![
            text("EventType").unwrap_or("?").to_string(),
            text("Timestamp").unwrap_or_default().to_string(),
            name,
            truncate(&detail.join(" "), DETAIL_WIDTH),
        ]);
    }
    table.render()
}

/// The entities as a table; their state too when `state` is set.
pub fn entity_table(entities: &[EntityListItem], state: bool) -> String {
    let mut headings = vec!["NAME", "KEY", "LAST OPERATION"];
    if state {
        headings.push("STATE");
    }
    let mut table = Table::new(&headings);
    for e in entities {
        let mut row = vec![
            e.entity_id.name.clone(),
            e.entity_id.key.clone(),
            e.last_operation_time.clone(),
        ];
        if state {
            let value = e.state.as_ref().unwrap_or(&Value::Null);
            row.push(truncate(&compact(value), DETAIL_WIDTH));
        }
        table.row(row);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_leave_the_last_unpadded() {
        let mut table = Table::new(&["A", "LONG HEADING", "C"]);
        table.row(vec!["wide cell".into(), "x".into(), "end".into()]);
        assert_eq!(
            table.render(),
            "A          LONG HEADING  C\nwide cell  x             end\n"
        );
    }

    #[test]
    fn truncate_cuts_long_text_and_flattens_lines() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("a\nb", 10), "a b");
        assert_eq!(truncate("abcdefghijkl", 5), "abcd…");
    }

    #[test]
    fn failures_show_their_causes() {
        let failure = serde_json::json!({
            "errorType": "ActivityFailed",
            "message": "activity `charge` failed",
            "cause": {"errorType": "Application", "message": "card declined"}
        });
        assert_eq!(
            failure_text(&failure),
            "activity `charge` failed (ActivityFailed); caused by: card declined (Application)"
        );
        let told = serde_json::json!({
            "errorType": "ActivityFailed",
            "message": "activity `charge` failed: card declined",
            "cause": {"errorType": "Application", "message": "card declined"}
        });
        assert_eq!(
            failure_text(&told),
            "activity `charge` failed: card declined (ActivityFailed)"
        );
    }
}
