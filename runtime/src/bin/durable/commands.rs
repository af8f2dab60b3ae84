//! What each command does, on either backend.

use std::future::Future;
use std::io::IsTerminal;
use std::time::Duration;

use durable::RuntimeStatus;
use durable::http::api::Status;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::backend::{Backend, Control, InstanceFilter, Page, PageRequest, entity_id};
use crate::error::{CliError, Exit};
use crate::output;
use crate::{
    Command, ControlArgs, EntityCommand, EntityListArgs, ListArgs, PurgeArgs, StartArgs, StatusArgs,
};

/// Page size when the CLI itself walks a listing (purge by filter).
const WALK_PAGE: usize = 500;

/// Runs one command.
pub async fn run(backend: &impl Backend, command: Command) -> Result<(), CliError> {
    match command {
        Command::List(args) => list(backend, args).await,
        Command::Status(args) => status(backend, args).await,
        Command::Start(args) => start(backend, args).await,
        Command::Raise(args) => {
            let data = args.data.unwrap_or(Value::Null);
            backend.raise_event(&args.id, &args.event, &data).await?;
            output::line(format!(
                "raised event `{}` on instance `{}`",
                args.event, args.id
            ));
            Ok(())
        }
        Command::Terminate(args) => control(backend, args, Control::Terminate).await,
        Command::Suspend(args) => control(backend, args, Control::Suspend).await,
        Command::Resume(args) => control(backend, args, Control::Resume).await,
        Command::Rewind(args) => control(backend, args, Control::Rewind).await,
        Command::Restart(args) => {
            output::line(backend.restart(&args.id, args.new_id).await?);
            Ok(())
        }
        Command::Purge(args) => purge(backend, args).await,
        Command::Entity(command) => entity(backend, command).await,
        Command::History(command) => crate::history::run(backend, command).await,
    }
}

async fn list(backend: &impl Backend, args: ListArgs) -> Result<(), CliError> {
    if args.prefix.as_deref().is_some_and(|p| p.starts_with('@')) {
        return Err(CliError::usage(
            "ids starting with `@` are entities; list them with `durable entity list`",
        ));
    }
    let filter = InstanceFilter {
        statuses: args.status,
        from: args.from,
        to: args.to,
        prefix: args.prefix,
        version: args.version,
    };
    let first = PageRequest {
        size: args.top.map(usize::from),
        continuation: args.continuation,
    };
    let filter = &filter;
    let (instances, more) = pages(args.all, first, |page| async move {
        backend.query(filter, &page).await
    })
    .await?;
    if args.json {
        output::json(&instances);
    } else if instances.is_empty() {
        output::line("no instances match");
    } else {
        output::emit(&output::instance_table(&instances));
    }
    if let Some(token) = more {
        eprintln!(
            "note: more instances follow; add --all to list them all, or --continuation {} \
             for the next page",
            shell_quote(&token)
        );
    }
    Ok(())
}

/// `text` quoted for a POSIX shell, so a printed token can be pasted back as it is.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Fetches the first page and, when `all` is set, every page after it. Returns the items and
/// the token of the next page when there is one left unread.
async fn pages<T, F, Fut>(
    all: bool,
    mut request: PageRequest,
    mut fetch: F,
) -> Result<(Vec<T>, Option<String>), CliError>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>, CliError>>,
{
    let mut items = Vec::new();
    loop {
        let page = fetch(request.clone()).await?;
        items.extend(page.items);
        match page.continuation {
            Some(token) if all => {
                if request.continuation.as_ref() == Some(&token) {
                    return Err(CliError::failed(
                        "the listing returned the same continuation token twice; stopping",
                    ));
                }
                request.continuation = Some(token);
            }
            next => return Ok((items, next)),
        }
    }
}

async fn status(backend: &impl Backend, args: StatusArgs) -> Result<(), CliError> {
    let status = backend.status(&args.id, args.history).await?;
    if args.json {
        output::json(&status);
    } else {
        output::emit(&output::status_summary(&status));
    }
    Ok(())
}

async fn start(backend: &impl Backend, args: StartArgs) -> Result<(), CliError> {
    let input = args.input.unwrap_or(Value::Null);
    let id = backend
        .start(
            &args.name,
            args.id.as_deref(),
            args.version.as_deref(),
            &input,
        )
        .await?;
    let Some(timeout) = args.wait else {
        if args.json {
            output::json(&json!({ "id": id }));
        } else {
            output::line(&id);
        }
        return Ok(());
    };
    if !args.json {
        output::line(&id);
    }
    let status = wait_until_finished(backend, &id, timeout).await?;
    if args.json {
        output::json(&status);
    } else {
        output::emit(&format!("\n{}", output::status_summary(&status)));
    }
    match status.runtime_status.as_str() {
        "Completed" => Ok(()),
        "Failed" => Err(CliError::failed(format!(
            "instance `{id}` failed: {}",
            status.output.as_str().unwrap_or("no details")
        ))),
        other => Err(CliError::failed(format!("instance `{id}` is {other}"))),
    }
}

/// Polls the instance's status (more slowly as time passes) until it has finished.
async fn wait_until_finished(
    backend: &impl Backend,
    id: &str,
    timeout: Duration,
) -> Result<Status, CliError> {
    let deadline = Instant::now() + timeout;
    let spinner = ProgressBar::with_draw_target(None, stderr_target());
    spinner.enable_steady_tick(Duration::from_millis(120));
    let mut pause = Duration::from_millis(25);
    let result = loop {
        let status = match backend.status(id, false).await {
            Ok(status) => status,
            Err(e) => break Err(e),
        };
        if is_finished(&status.runtime_status) {
            break Ok(status);
        }
        spinner.set_message(format!(
            "waiting for instance `{id}` ({})",
            status.runtime_status
        ));
        let now = Instant::now();
        if now >= deadline {
            break Err(CliError::failed(format!(
                "instance `{id}` did not finish within {timeout:?} (it is {}); check on it \
                 with `durable status {id}`",
                status.runtime_status
            )));
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    };
    spinner.finish_and_clear();
    result
}

/// Whether a status name from the API is a finished one.
fn is_finished(runtime_status: &str) -> bool {
    runtime_status
        .parse::<RuntimeStatus>()
        .is_ok_and(RuntimeStatus::is_terminal)
}

async fn control(
    backend: &impl Backend,
    args: ControlArgs,
    control: Control,
) -> Result<(), CliError> {
    backend.control(&args.id, control, &args.reason).await?;
    output::line(format!(
        "asked instance `{}` to {}",
        args.id,
        control.verb()
    ));
    Ok(())
}

async fn purge(backend: &impl Backend, args: PurgeArgs) -> Result<(), CliError> {
    let Some(from) = args.from else {
        let id = args.id.unwrap_or_default();
        backend.purge(&id).await?;
        output::line(format!("purged instance `{id}`"));
        return Ok(());
    };
    let statuses = if args.status.is_empty() {
        RuntimeStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect()
    } else {
        args.status
    };
    let filter = InstanceFilter {
        statuses,
        from: Some(from),
        to: args.to,
        prefix: None,
        version: None,
    };
    let first = PageRequest {
        size: Some(WALK_PAGE),
        continuation: None,
    };
    let filter = &filter;
    let (matching, _) = pages(true, first, |page| async move {
        backend.query(filter, &page).await
    })
    .await?;
    let ids: Vec<String> = matching
        .into_iter()
        .filter(|s| is_finished(&s.runtime_status))
        .map(|s| s.instance_id)
        .collect();
    if ids.is_empty() {
        output::line("no finished instances match; nothing purged");
        return Ok(());
    }
    if !args.yes && !confirm(ids.len())? {
        output::line("nothing purged");
        return Ok(());
    }
    purge_each(backend, &ids).await
}

/// Asks on the terminal whether to purge `count` instances.
fn confirm(count: usize) -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(format!(
            "{count} finished instances match; add --yes to purge them without a prompt"
        )));
    }
    eprint!("purge {count} finished instances? [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| CliError::failed(format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

/// Purges the instances one by one behind a progress bar; reports how many.
async fn purge_each(backend: &impl Backend, ids: &[String]) -> Result<(), CliError> {
    let total = ids.len();
    let bar = ProgressBar::with_draw_target(Some(total as u64), stderr_target());
    if let Ok(style) = ProgressStyle::with_template("purging [{bar:30}] {pos}/{len} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    let (mut purged, mut gone, mut failed) = (0usize, 0usize, 0usize);
    for id in ids {
        let result = tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => {
                bar.abandon();
                return Err(CliError::new(
                    Exit::Interrupted,
                    format!("interrupted after purging {purged} of {total} instances"),
                ));
            }
            result = backend.purge(id) => result,
        };
        match result {
            Ok(()) => purged += 1,
            // Purged meanwhile by someone else: nothing left to do.
            Err(e) if e.exit == Exit::NotFound => gone += 1,
            Err(e) => {
                failed += 1;
                bar.suspend(|| eprintln!("warning: instance `{id}` not purged: {e}"));
                if e.exit == Exit::Unreachable {
                    bar.abandon();
                    return Err(e);
                }
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut report = format!("purged {purged} of {total} instances");
    if gone > 0 {
        report.push_str(&format!(" ({gone} already gone)"));
    }
    output::line(report);
    if failed > 0 {
        return Err(CliError::failed(format!(
            "{failed} instances could not be purged (see the warnings above)"
        )));
    }
    Ok(())
}

/// Progress on stderr, hidden when stderr is not a terminal (pipes, logs, tests).
fn stderr_target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

async fn entity(backend: &impl Backend, command: EntityCommand) -> Result<(), CliError> {
    match command {
        EntityCommand::Get(args) => {
            let state = backend.entity_state(&args.name, &args.key).await?;
            if args.json {
                output::line(output::compact(&state));
            } else {
                output::json(&state);
            }
        }
        EntityCommand::Signal(args) => {
            let input = args.input.unwrap_or(Value::Null);
            backend
                .signal_entity(&args.name, &args.key, &args.op, &input)
                .await?;
            output::line(format!(
                "signalled `{}` to entity `{}`",
                args.op,
                entity_id(&args.name, &args.key)
            ));
        }
        EntityCommand::List(args) => entity_list(backend, args).await?,
    }
    Ok(())
}

async fn entity_list(backend: &impl Backend, args: EntityListArgs) -> Result<(), CliError> {
    let first = PageRequest {
        size: args.top.map(usize::from),
        continuation: None,
    };
    let name = args.name.as_deref();
    let (entities, more) = pages(args.all, first, |page| async move {
        backend.list_entities(name, args.state, &page).await
    })
    .await?;
    if args.json {
        output::json(&entities);
    } else if entities.is_empty() {
        output::line("no entities");
    } else {
        output::emit(&output::entity_table(&entities, args.state));
    }
    if more.is_some() {
        eprintln!("note: more entities follow; add --all to list them all");
    }
    Ok(())
}
