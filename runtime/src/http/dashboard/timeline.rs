//! An instance's history as a timeline: one bar per step (activity, sub-orchestration,
//! timer, entity call, lock), from when it was scheduled to when it was answered, and a mark
//! for each event (raised, sent, signalled). Each row opens to show its input and result.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::html::{duration, esc, instance_link, json_block};
use crate::model::FailureDetails;
use crate::model::history::{EventKind, HistoryEvent};

/// What a row of the timeline is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Orchestration,
    Activity,
    SubOrchestration,
    Timer,
    Event,
    Entity,
}

impl Kind {
    fn class(self) -> &'static str {
        match self {
            Kind::Orchestration => "k-orch",
            Kind::Activity => "k-activity",
            Kind::SubOrchestration => "k-sub",
            Kind::Timer => "k-timer",
            Kind::Event => "k-event",
            Kind::Entity => "k-entity",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Orchestration => "orchestration",
            Kind::Activity => "activity",
            Kind::SubOrchestration => "sub-orchestration",
            Kind::Timer => "timer",
            Kind::Event => "event",
            Kind::Entity => "entity",
        }
    }
}

/// One row: a bar from `start` to `end` (`None`: still open), or a mark when `point`.
#[derive(Clone, Debug)]
pub(super) struct Row {
    pub(super) kind: Kind,
    pub(super) title: String,
    pub(super) start: DateTime<Utc>,
    pub(super) end: Option<DateTime<Utc>>,
    pub(super) point: bool,
    pub(super) input: Option<String>,
    pub(super) result: Option<String>,
    pub(super) failure: Option<FailureDetails>,
    /// An instance to link to (a child), or an entity.
    pub(super) link: Option<String>,
}

impl Row {
    fn new(kind: Kind, title: String, start: DateTime<Utc>) -> Row {
        Row {
            kind,
            title,
            start,
            end: None,
            point: false,
            input: None,
            result: None,
            failure: None,
            link: None,
        }
    }
}

/// The rows of a history, in the order the steps were taken.
pub(super) fn rows(history: &[HistoryEvent]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    // Scheduling step id -> row index.
    let mut steps: HashMap<i64, usize> = HashMap::new();
    let mut orchestration: Option<usize> = None;
    for event in history {
        let at = event.timestamp;
        if let Some(step) = event.kind.answered_step()
            && let Some(&i) = steps.get(&step)
        {
            let row = &mut rows[i];
            row.end = Some(at);
            match &event.kind {
                // A timer ends when it was due (the event may be stamped when it was queued).
                EventKind::TimerFired { fire_at, .. } => row.end = Some((*fire_at).max(row.start)),
                EventKind::TaskCompleted { result, .. }
                | EventKind::SubOrchestrationInstanceCompleted { result, .. }
                | EventKind::EntityOperationCompleted { result, .. } => {
                    row.result = Some(result.clone())
                }
                EventKind::TaskFailed { failure, .. }
                | EventKind::SubOrchestrationInstanceFailed { failure, .. }
                | EventKind::EntityOperationFailed { failure, .. } => {
                    row.failure = Some(failure.clone())
                }
                _ => {}
            }
            continue;
        }
        let mut step = |row: Row, rows: &mut Vec<Row>| {
            steps.insert(event.event_id, rows.len());
            rows.push(row);
        };
        match &event.kind {
            EventKind::ExecutionStarted { name, input, .. } => {
                let mut row = Row::new(Kind::Orchestration, name.clone(), at);
                row.input = Some(input.clone());
                orchestration = Some(rows.len());
                rows.push(row);
            }
            EventKind::ExecutionCompleted {
                result, failure, ..
            } => {
                if let Some(i) = orchestration {
                    rows[i].end = Some(at);
                    rows[i].result = result.clone();
                    rows[i].failure = failure.clone();
                }
            }
            EventKind::ContinueAsNew { input } => {
                if let Some(i) = orchestration {
                    rows[i].end = Some(at);
                    rows[i].result = Some(input.clone());
                }
            }
            EventKind::TaskScheduled { name, input } => {
                let mut row = Row::new(Kind::Activity, name.clone(), at);
                row.input = Some(input.clone());
                step(row, &mut rows);
            }
            EventKind::SubOrchestrationInstanceCreated {
                name,
                instance_id,
                input,
            } => {
                let mut row = Row::new(Kind::SubOrchestration, name.clone(), at);
                row.input = Some(input.clone());
                row.link = Some(instance_id.clone());
                step(row, &mut rows);
            }
            EventKind::TimerCreated { fire_at } => {
                let mut row = Row::new(
                    Kind::Timer,
                    format!("until {}", fire_at.format("%Y-%m-%d %H:%M:%S")),
                    at,
                );
                row.input = serde_json::to_string(fire_at).ok();
                step(row, &mut rows);
            }
            EventKind::EntityOperationCalled {
                entity_id,
                operation,
                input,
                ..
            } => {
                let mut row = Row::new(Kind::Entity, format!("{operation} on {entity_id}"), at);
                row.input = Some(input.clone());
                row.link = Some(entity_id.clone());
                step(row, &mut rows);
            }
            EventKind::EntityLockRequested { lock_set, .. } => {
                let mut row = Row::new(Kind::Entity, format!("lock {}", lock_set.join(", ")), at);
                row.input = serde_json::to_string(lock_set).ok();
                step(row, &mut rows);
            }
            EventKind::EntityOperationSignaled {
                entity_id,
                operation,
                input,
            } => {
                let mut row = Row::new(
                    Kind::Entity,
                    format!("signal {operation} to {entity_id}"),
                    at,
                );
                row.point = true;
                row.input = Some(input.clone());
                row.link = Some(entity_id.clone());
                steps.insert(event.event_id, rows.len());
                rows.push(row);
            }
            EventKind::EntityUnlockSent { lock_set, .. } => {
                let mut row = Row::new(Kind::Entity, format!("unlock {}", lock_set.join(", ")), at);
                row.point = true;
                rows.push(row);
            }
            EventKind::EventRaised { name, input } => {
                let mut row = Row::new(Kind::Event, format!("received {name}"), at);
                row.point = true;
                row.input = Some(input.clone());
                rows.push(row);
            }
            EventKind::EventSent {
                instance_id,
                name,
                input,
            } => {
                let mut row = Row::new(Kind::Event, format!("sent {name}"), at);
                row.point = true;
                row.input = Some(input.clone());
                row.link = Some(instance_id.clone());
                rows.push(row);
            }
            EventKind::ExecutionSuspended { reason }
            | EventKind::ExecutionResumed { reason }
            | EventKind::ExecutionTerminated { reason }
            | EventKind::ExecutionRewound { reason } => {
                let what = event
                    .kind
                    .name()
                    .trim_start_matches("Execution")
                    .to_lowercase();
                let mut row = Row::new(Kind::Event, what, at);
                row.point = true;
                row.input = reason.clone().map(|r| {
                    if serde_json::from_str::<serde_json::Value>(&r).is_ok() {
                        r
                    } else {
                        serde_json::Value::String(r).to_string()
                    }
                });
                rows.push(row);
            }
            _ => {}
        }
    }
    rows
}

/// The most rows a timeline shows (a long history would make a page too heavy to read).
pub(super) const MAX_ROWS: usize = 500;

/// The timeline as HTML, its scale running from the first row to `now` (for open bars) or the
/// last time seen. Only the first [`MAX_ROWS`] rows are drawn; the page says how many more.
pub(super) fn render(rows: &[Row], now: DateTime<Utc>, open: bool) -> String {
    if rows.is_empty() {
        return "<p class=\"empty\">No history yet.</p>".to_string();
    }
    let hidden = rows.len().saturating_sub(MAX_ROWS);
    let rows = &rows[..rows.len().min(MAX_ROWS)];
    let start = rows.iter().map(|r| r.start).min().unwrap_or(now);
    let mut end = rows
        .iter()
        .map(|r| r.end.unwrap_or(r.start))
        .max()
        .unwrap_or(start);
    if open || rows.iter().any(|r| r.end.is_none() && !r.point) {
        end = end.max(now);
    }
    let span = (end - start).num_milliseconds().max(1) as f64;
    let pct =
        |t: DateTime<Utc>| ((t - start).num_milliseconds() as f64 / span * 100.0).clamp(0.0, 100.0);
    let mut out = format!(
        "<div class=\"timeline\" id=\"timeline\"><div class=\"tl-scale\"><span>{}</span><span>{}</span></div>",
        start.format("%H:%M:%S%.3f"),
        esc(&format!("+{}", duration(end - start)))
    );
    for (i, row) in rows.iter().enumerate() {
        let left = pct(row.start);
        let finish = row.end.unwrap_or(if row.point { row.start } else { end });
        let width = (pct(finish) - left).max(0.6);
        let state = if row.failure.is_some() {
            " failed"
        } else if row.end.is_none() && !row.point {
            " open"
        } else {
            ""
        };
        let took = if row.point {
            "·".to_string()
        } else {
            match row.end {
                Some(e) => duration(e - row.start),
                None => format!("{} so far", duration(end - row.start)),
            }
        };
        let _ = write!(
            out,
            "<details class=\"tl-row\" id=\"tl-{i}\" data-kind=\"{}\"><summary>\
             <span class=\"tl-label\"><span class=\"kind {}\">{}</span> {}</span>\
             <span class=\"tl-track\"><span class=\"tl-bar {}{}{}\" style=\"left:{left:.2}%;width:{width:.2}%\"></span></span>\
             <span class=\"tl-dur\">{}</span></summary><div class=\"tl-detail\">",
            row.kind.label(),
            row.kind.class(),
            row.kind.label(),
            esc(&row.title),
            row.kind.class(),
            if row.point { " point" } else { "" },
            state,
            esc(&took),
        );
        let _ = write!(
            out,
            "<p class=\"small muted\">started {}{}</p>",
            row.start.format("%Y-%m-%d %H:%M:%S%.3f"),
            row.end
                .map(|e| format!(", ended {}", e.format("%Y-%m-%d %H:%M:%S%.3f")))
                .unwrap_or_default()
        );
        if let Some(link) = &row.link {
            let _ = write!(out, "<p>{}</p>", instance_link(link));
        }
        let _ = write!(out, "<h4>Input</h4>{}", json_block(row.input.as_deref()));
        if let Some(failure) = &row.failure {
            let _ = write!(out, "<h4>Failure</h4>{}", failure_chain(failure));
        } else if !row.point {
            let _ = write!(out, "<h4>Result</h4>{}", json_block(row.result.as_deref()));
        }
        out.push_str("</div></details>");
    }
    if hidden > 0 {
        let _ = write!(
            out,
            "<p class=\"muted small\">{hidden} later steps and events are not drawn; the \
             history below lists every event.</p>"
        );
    }
    out.push_str("</div>");
    out
}

/// A failure and its causes, one level per item.
pub(super) fn failure_chain(failure: &FailureDetails) -> String {
    let mut out = String::from("<ol class=\"chain\">");
    let mut level = Some(failure);
    while let Some(f) = level {
        let _ = write!(
            out,
            "<li><span class=\"etype\">{}</span> <span class=\"emsg\">{}</span></li>",
            esc(&f.error_type),
            esc(&f.message)
        );
        level = f.cause.as_deref();
    }
    out.push_str("</ol>");
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    fn event(id: i64, ms: i64, kind: EventKind) -> HistoryEvent {
        HistoryEvent {
            event_id: id,
            timestamp: at(ms),
            kind,
        }
    }

    #[test]
    fn steps_become_bars_from_scheduled_to_answered() {
        let history = vec![
            event(
                -1,
                0,
                EventKind::ExecutionStarted {
                    name: "flow".into(),
                    input: "1".into(),
                    execution_id: "e".into(),
                    parent: None,
                    version: None,
                },
            ),
            event(
                0,
                10,
                EventKind::TaskScheduled {
                    name: "charge".into(),
                    input: "\"<card>\"".into(),
                },
            ),
            event(1, 20, EventKind::TimerCreated { fire_at: at(5000) }),
            event(2, 30, EventKind::TimerCreated { fire_at: at(900) }),
            event(
                -1,
                40,
                EventKind::TimerFired {
                    timer_id: 2,
                    fire_at: at(900),
                },
            ),
            event(
                -1,
                1500,
                EventKind::TaskFailed {
                    task_scheduled_id: 0,
                    failure: FailureDetails {
                        error_type: "Application".into(),
                        message: "declined".into(),
                        cause: Some(Box::new(FailureDetails {
                            error_type: "Source".into(),
                            message: "card <expired>".into(),
                            cause: None,
                        })),
                    },
                },
            ),
            event(
                -1,
                1600,
                EventKind::EventRaised {
                    name: "Approval".into(),
                    input: "true".into(),
                },
            ),
        ];
        let rows = rows(&history);
        let kinds: Vec<Kind> = rows.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Orchestration,
                Kind::Activity,
                Kind::Timer,
                Kind::Timer,
                Kind::Event
            ]
        );
        assert_eq!(rows[1].end, Some(at(1500)));
        assert_eq!(rows[1].failure.as_ref().unwrap().message, "declined");
        assert_eq!(rows[2].end, None, "the timer has not fired");
        assert_eq!(
            rows[3].end,
            Some(at(900)),
            "a fired timer ends when it was due"
        );
        assert!(rows[4].point);

        let html = render(&rows, at(2000), true);
        assert!(
            html.contains("<span class=\"tl-dur\">1.5 s</span>"),
            "{html}"
        );
        assert!(
            html.contains("&quot;&lt;card&gt;&quot;"),
            "inputs are escaped: {html}"
        );
        assert!(
            html.contains("card &lt;expired&gt;"),
            "the cause chain is shown"
        );
        assert!(
            html.contains("tl-bar k-timer open"),
            "an open timer is marked open"
        );
        assert!(!html.contains("<card>"));
    }

    #[test]
    fn a_long_history_draws_its_first_rows_and_says_how_many_more() {
        let history: Vec<HistoryEvent> = (0..MAX_ROWS as i64 + 20)
            .map(|i| {
                event(
                    -1,
                    i,
                    EventKind::EventRaised {
                        name: format!("e{i}"),
                        input: "null".into(),
                    },
                )
            })
            .collect();
        let html = render(&rows(&history), at(10_000), false);
        assert_eq!(html.matches("class=\"tl-row\"").count(), MAX_ROWS);
        assert!(
            html.contains("20 later steps and events are not drawn"),
            "{html}"
        );
    }
}
