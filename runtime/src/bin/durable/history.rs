//! `durable history export` and `import`: instances' histories as JSON files in the exported
//! format (`durable::history::HistoryFile`), to reproduce a production case on a local store or
//! to replay in tests.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use durable::history::HistoryFile;

use crate::backend::{Backend, InstanceFilter, PageRequest};
use crate::error::CliError;
use crate::output;
use crate::{HistoryCommand, HistoryExportArgs, HistoryImportArgs};

/// Page size when walking the instances for `--orchestrator NAME --last N`.
const WALK_PAGE: usize = 500;

/// Runs `durable history ...`.
pub async fn run(backend: &impl Backend, command: HistoryCommand) -> Result<(), CliError> {
    match command {
        HistoryCommand::Export(args) => export(backend, args).await,
        HistoryCommand::Import(args) => import(backend, args).await,
    }
}

async fn export(backend: &impl Backend, args: HistoryExportArgs) -> Result<(), CliError> {
    if let Some(id) = &args.id {
        let file = backend.export(id).await?;
        return match &args.out {
            Some(path) => {
                write(path, &file)?;
                output::line(format!("exported `{id}` to {}", path.display()));
                Ok(())
            }
            None => {
                output::line(file.to_json_pretty());
                Ok(())
            }
        };
    }
    let (Some(name), Some(last), Some(dir)) = (&args.orchestrator, args.last, &args.dir) else {
        return Err(CliError::usage(
            "give an instance id, or --orchestrator NAME --last N --dir DIR",
        ));
    };
    let ids = newest(backend, name, last as usize).await?;
    if ids.is_empty() {
        return Err(CliError::not_found(format!(
            "no instances of orchestrator `{name}`"
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        CliError::failed(format!(
            "cannot create the directory {}: {e}",
            dir.display()
        ))
    })?;
    for id in &ids {
        let file = backend.export(id).await?;
        let path = dir.join(file_name(id));
        write(&path, &file)?;
        output::line(format!("exported `{id}` to {}", path.display()));
    }
    Ok(())
}

/// The ids of the `n` most recently created instances of orchestrator `name`, newest last.
async fn newest(backend: &impl Backend, name: &str, n: usize) -> Result<Vec<String>, CliError> {
    let filter = InstanceFilter::default();
    let mut page = PageRequest {
        size: Some(WALK_PAGE),
        continuation: None,
    };
    // Listings come oldest first: the last `n` seen are the newest.
    let mut kept = VecDeque::with_capacity(n);
    loop {
        let listed = backend.query(&filter, &page).await?;
        for status in listed.items.into_iter().filter(|s| s.name == name) {
            if kept.len() == n {
                kept.pop_front();
            }
            kept.push_back(status.instance_id);
        }
        match listed.continuation {
            Some(token) if page.continuation.as_ref() != Some(&token) => {
                page.continuation = Some(token);
            }
            _ => return Ok(kept.into()),
        }
    }
}

/// A file name for an instance id: characters other than letters, digits, `.`, `_` and `-`
/// become `_`.
fn file_name(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.json")
}

fn write(path: &Path, file: &HistoryFile) -> Result<(), CliError> {
    std::fs::write(path, file.to_json_pretty() + "\n")
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))
}

async fn import(backend: &impl Backend, args: HistoryImportArgs) -> Result<(), CliError> {
    // Every file is read and checked before anything is written.
    let mut files = Vec::new();
    for path in &args.files {
        files.push((path, read(path)?));
    }
    for (path, file) in files {
        let id = file.instance.instance_id.clone();
        backend
            .import(file, args.replace)
            .await
            .map_err(|e| CliError::new(e.exit, format!("{}: {e}", path.display())))?;
        output::line(format!("imported `{id}` from {}", path.display()));
    }
    Ok(())
}

fn read(path: &PathBuf) -> Result<HistoryFile, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::failed(format!("cannot read {}: {e}", path.display())))?;
    HistoryFile::from_json(&text).map_err(|e| CliError::failed(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn file_names_keep_safe_characters_only() {
        assert_eq!(file_name("order-17"), "order-17.json");
        assert_eq!(file_name("parent:0/../x"), "parent_0_.._x.json");
    }
}
