//! The `durable` command-line tool's history export and import, and starting and listing by
//! version: the real binary against a host started in this process, and on its store.

#[path = "support/cli_host.rs"]
mod cli_host;

use cli_host::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_export_writes_replayable_files_and_import_loads_them_into_a_store() {
    use durable::history::HistoryFile;

    let host = Host::start().await;
    for (id, name) in [("h-1", "Oslo"), ("h-2", "Rome"), ("h-3", "Bern")] {
        host.hello_done(id, name).await;
    }
    host.cli(&["start", "approval", "--id", "h-4"]).await.ok();
    host.started("h-4").await;
    host.runtime.idle().await;
    let out = tempfile::tempdir().unwrap();
    let path = |name: &str| out.path().join(name).to_str().unwrap().to_string();

    // One instance to stdout, and to a file: the same document, and it replays.
    let printed = host.cli(&["history", "export", "h-1"]).await;
    let file = HistoryFile::from_json(printed.ok()).unwrap();
    assert_eq!((file.format.as_str(), file.version), ("durable-history", 1));
    assert_eq!(file.instance.instance_id, "h-1");
    assert_eq!(file.instance.runtime_status, RuntimeStatus::Completed);
    assert_eq!(durable::testing::replay_check(hello, &file), Ok(()));
    let h1 = path("h-1.json");
    assert_eq!(
        host.cli(&["history", "export", "h-1", "--out", &h1])
            .await
            .ok(),
        format!("exported `h-1` to {h1}\n")
    );
    let written = HistoryFile::from_json(&std::fs::read_to_string(&h1).unwrap()).unwrap();
    assert_eq!(written, file);

    // The latest instances of one orchestrator, one file each.
    let dir = path("latest");
    let run = host
        .cli(&[
            "history",
            "export",
            "--orchestrator",
            "hello",
            "--last",
            "2",
            "--dir",
            &dir,
        ])
        .await;
    assert_eq!(run.ok().lines().count(), 2, "{run:#?}");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["h-2.json", "h-3.json"]);
    host.cli(&["history", "export", "nope"])
        .await
        .fails(3, "no instance with id `nope`");
    host.cli(&[
        "history",
        "export",
        "--orchestrator",
        "nothing",
        "--last",
        "1",
        "--dir",
        &dir,
    ])
    .await
    .fails(3, "no instances of orchestrator `nothing`");
    host.cli(&["history", "export", "h-1", "--last", "2"])
        .await
        .fails(2, "--last");
    host.cli(&["history", "import", &h1])
        .await
        .fails(2, "writes into a store; give --store");
    let h4 = path("h-4.json");
    host.cli(&["history", "export", "h-4", "--out", &h4])
        .await
        .ok();
    host.runtime.shutdown().await;

    // On the store the host left: the same document.
    let on_store = host.cli_on_store(&["history", "export", "h-1"]).await;
    assert_eq!(HistoryFile::from_json(on_store.ok()).unwrap(), file);

    // Into another store.
    let other = out.path().join("local.db");
    drop(Sqlite::open(&other).unwrap());
    let other = other.to_str().unwrap().to_string();
    let local = |args: &[&str]| {
        let mut all = vec!["--store".to_string(), other.clone()];
        all.extend(args.iter().map(|a| a.to_string()));
        async move {
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            durable(&all, &[]).await
        }
    };
    let h2 = format!("{dir}/h-2.json");
    assert_eq!(
        local(&["history", "import", &h1, &h2, &h4]).await.ok(),
        format!("imported `h-1` from {h1}\nimported `h-2` from {h2}\nimported `h-4` from {h4}\n")
    );
    let status: Status = local(&["status", "h-1", "--json"]).await.json();
    assert_eq!(status.runtime_status, "Completed");
    assert_eq!(status.output, json!("Hello Oslo!"));
    let back = local(&["history", "export", "h-1"]).await;
    assert_eq!(HistoryFile::from_json(back.ok()).unwrap(), file);
    local(&["history", "import", &h1]).await.fails(
        1,
        "instance `h-1` already exists in this store; add --replace",
    );
    local(&["history", "import", "--replace", &h1]).await.ok();

    // Bad files: nothing of the batch is imported, and the message names the file.
    let bad = |name: &str, text: &str| {
        let p = path(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let h3 = format!("{dir}/h-3.json");
    let text = std::fs::read_to_string(&h3).unwrap();
    let cases = [
        (bad("text.json", "hello"), "not a JSON document"),
        (
            bad("cut.json", &text[..text.len() / 2]),
            "not a JSON document",
        ),
        (
            bad("other.json", r#"{"format":"something-else","version":1}"#),
            "`format` is \"something-else\", expected \"durable-history\"",
        ),
        (
            bad(
                "newer.json",
                &text.replacen("\"version\": 1", "\"version\": 9", 1),
            ),
            "version 9 is not supported",
        ),
        (path("missing.json"), "cannot read"),
    ];
    for (file, words) in &cases {
        let run = local(&["history", "import", &h3, file]).await;
        run.fails(1, words);
        assert!(run.stderr.contains(file.as_str()), "{run:#?}");
    }
    local(&["status", "h-3"])
        .await
        .fails(3, "no instance with id `h-3`");

    // An imported running instance carries on where production left it.
    let runtime = Runtime::builder()
        .store(Sqlite::open(&other).unwrap())
        .register(approval)
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    client.raise_event("h-4", "Approval", true).await.unwrap();
    let done = client.wait_for_completion("h-4", WAIT).await.unwrap();
    assert!(done.output::<bool>().unwrap(), "{done:?}");
    runtime.shutdown().await;
}

/// `start --version` starts under a version; `list --version` finds instances by it, over the
/// API and straight on the store. This host has no version, so it leaves them (they stay
/// pending) for a host that may run them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_list_by_version() {
    let host = Host::start().await;
    host.cli(&["start", "approval", "--id", "ver-1", "--version", "0.9"])
        .await
        .ok();
    host.cli(&["start", "approval", "--id", "plain-1"])
        .await
        .ok();
    host.started("plain-1").await;
    let status: Status = host.cli(&["status", "ver-1", "--json"]).await.json();
    assert_eq!(status.version.as_deref(), Some("0.9"));
    assert_eq!(status.runtime_status, "Pending");
    let summary = host.cli(&["status", "ver-1"]).await;
    assert!(
        summary.ok().contains("Version:       0.9\n"),
        "{summary:#?}"
    );
    let listed: Vec<Status> = host
        .cli(&["list", "--version", "0.9", "--json"])
        .await
        .json();
    let ids: Vec<&str> = listed.iter().map(|s| s.instance_id.as_str()).collect();
    assert_eq!(ids, ["ver-1"]);
    host.cli(&["start", "approval", "--version", " 0.9"])
        .await
        .fails(1, "white space");
    host.runtime.shutdown().await;

    host.cli_on_store(&["start", "approval", "--id", "ver-2", "--version", "0.9"])
        .await
        .ok();
    let listed: Vec<Status> = host
        .cli_on_store(&["list", "--version", "0.9", "--json"])
        .await
        .json();
    let ids: Vec<&str> = listed.iter().map(|s| s.instance_id.as_str()).collect();
    assert_eq!(ids, ["ver-1", "ver-2"]);
    host.cli_on_store(&["start", "approval", "--version", ""])
        .await
        .fails(1, "empty");
}
