//! The `durable` command-line tool, run as a user runs it: the real binary against a host
//! started in this process (SQLite store, HTTP API on a free loopback port), and straight on the
//! store's file once the host is gone.

#[path = "support/cli_host.rs"]
mod cli_host;

use cli_host::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_waits_and_status_shows_a_summary_json_and_history() {
    let host = Host::start().await;

    let run = host
        .cli(&[
            "start",
            "hello",
            "--id",
            "greet-1",
            "--input",
            "\"Tokyo\"",
            "--wait",
            "30",
        ])
        .await;
    let out = run.ok();
    assert_eq!(out.lines().next(), Some("greet-1"));
    assert!(out.contains("Status:        Completed"), "{out}");
    assert!(out.contains("Output:        \"Hello Tokyo!\""), "{out}");

    let out = host.cli(&["status", "greet-1"]).await;
    let out = out.ok();
    for line in [
        "Instance ID:   greet-1",
        "Name:          hello",
        "Status:        Completed",
        "Input:         \"Tokyo\"",
    ] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }

    let status: Status = host.cli(&["status", "greet-1", "--json"]).await.json();
    assert_eq!(status.runtime_status, "Completed");
    assert_eq!(status.output, json!("Hello Tokyo!"));
    assert_eq!(status.input, json!("Tokyo"));
    assert_eq!(status.history_events, None);

    let run = host.cli(&["status", "greet-1", "--history"]).await;
    let out = run.ok();
    let table: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("EVENT"))
        .collect();
    assert!(
        table[0].contains("TIMESTAMP") && table[0].contains("RESULT"),
        "{out}"
    );
    let completed = table
        .iter()
        .find(|l| l.starts_with("TaskCompleted"))
        .unwrap();
    assert!(completed.contains("greet") && completed.contains("\"Hello Tokyo!\""));
    assert!(table.iter().any(|l| l.starts_with("ExecutionCompleted")));

    let status: Status = host
        .cli(&["status", "greet-1", "--history", "--json"])
        .await
        .json();
    let history = status.history_events.unwrap();
    assert!(history.iter().any(|e| e["EventType"] == "TaskCompleted"
        && e["FunctionName"] == "greet"
        && e["Result"] == "Hello Tokyo!"));

    // Without --wait, only the (generated) id.
    let out = host.cli(&["start", "hello", "--input", "\"Oslo\""]).await;
    let id = out.ok().trim();
    assert_eq!(id.len(), 32, "{out:?}");
    assert_eq!(
        host.finished(id).await.output::<String>().unwrap(),
        "Hello Oslo!"
    );
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_by_status_and_follows_every_page() {
    let host = Host::start().await;
    for (id, name) in [("a-1", "Tokyo"), ("a-2", "Seattle"), ("a-3", "London")] {
        host.hello_done(id, name).await;
    }
    host.cli(&["start", "approval", "--id", "b-1"]).await.ok();
    host.started("b-1").await;
    let ids = |statuses: Vec<Status>| -> Vec<String> {
        statuses.into_iter().map(|s| s.instance_id).collect()
    };

    let all: Vec<Status> = host.cli(&["list", "--json"]).await.json();
    assert_eq!(ids(all), ["a-1", "a-2", "a-3", "b-1"]);
    let running: Vec<Status> = host
        .cli(&["list", "--status", "Running", "--json"])
        .await
        .json();
    assert_eq!(ids(running), ["b-1"]);
    let done: Vec<Status> = host
        .cli(&["list", "--status", "completed,Failed", "--json"])
        .await
        .json();
    assert_eq!(ids(done), ["a-1", "a-2", "a-3"]);
    let prefixed: Vec<Status> = host.cli(&["list", "--prefix", "b-", "--json"]).await.json();
    assert_eq!(ids(prefixed), ["b-1"]);

    // One page of one, and how to get the next.
    let run = host.cli(&["list", "--top", "1", "--json"]).await;
    let first: Vec<Status> = run.json();
    assert_eq!(ids(first), ["a-1"]);
    let token = run
        .stderr
        .split("--continuation ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|quoted| quoted.trim_matches('\''))
        .unwrap_or_else(|| panic!("no continuation token in {run:#?}"));
    let second: Vec<Status> = host
        .cli(&["list", "--top", "1", "--continuation", token, "--json"])
        .await
        .json();
    assert_eq!(ids(second), ["a-2"]);

    // Every page, one instance at a time.
    let run = host.cli(&["list", "--top", "1", "--all", "--json"]).await;
    let paged: Vec<Status> = run.json();
    assert_eq!(ids(paged), ["a-1", "a-2", "a-3", "b-1"]);
    assert_eq!(run.stderr, "");

    let run = host.cli(&["list", "--top", "1", "--all"]).await;
    let table: Vec<&str> = run.ok().lines().collect();
    assert_eq!(table.len(), 5, "{table:#?}");
    assert!(table[0].starts_with("INSTANCE ID  NAME"), "{table:#?}");
    assert!(table[0].contains("STATUS") && table[0].contains("CREATED"));
    assert!(table[4].starts_with("b-1") && table[4].contains("approval"));
    assert!(table[4].contains("Running"));

    let none = host.cli(&["list", "--status", "Failed"]).await;
    assert_eq!(none.ok(), "no instances match\n");
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raise_completes_a_waiting_instance() {
    let host = Host::start().await;
    host.cli(&["start", "approval", "--id", "order-42"])
        .await
        .ok();
    host.started("order-42").await;

    let run = host
        .cli(&["raise", "order-42", "Approval", "--data", "true"])
        .await;
    assert_eq!(run.ok(), "raised event `Approval` on instance `order-42`\n");
    let done = host.finished("order-42").await;
    assert!(done.output::<bool>().unwrap());

    host.cli(&["raise", "order-42", "Approval", "--data", "true"])
        .await
        .fails(1, "Completed");
    host.cli(&["raise", "order-43", "Approval"])
        .await
        .fails(3, "no instance with id `order-43`");
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_resume_and_terminate() {
    let host = Host::start().await;
    host.cli(&["start", "approval", "--id", "s-1"]).await.ok();
    host.started("s-1").await;

    let run = host
        .cli(&["suspend", "s-1", "--reason", "maintenance"])
        .await;
    assert_eq!(run.ok(), "asked instance `s-1` to suspend\n");
    host.reaches("s-1", RuntimeStatus::Suspended).await;
    let status: Status = host.cli(&["status", "s-1", "--json"]).await.json();
    assert_eq!(status.runtime_status, "Suspended");

    host.cli(&["resume", "s-1"]).await.ok();
    host.reaches("s-1", RuntimeStatus::Running).await;

    host.cli(&["terminate", "s-1", "--reason", "no longer needed"])
        .await
        .ok();
    let done = host.finished("s-1").await;
    assert_eq!(done.runtime_status, RuntimeStatus::Terminated);
    let status: Status = host.cli(&["status", "s-1", "--json"]).await.json();
    assert_eq!(status.output, json!("no longer needed"));

    host.cli(&["terminate", "s-1"]).await.fails(1, "Terminated");
    host.cli(&["suspend", "nope"])
        .await
        .fails(3, "no instance with id `nope`");
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewind_runs_a_failed_instance_again() {
    let host = Host::start().await;
    host.cli(&["start", "double_flaky", "--id", "pay-1", "--input", "21"])
        .await
        .ok();
    assert_eq!(
        host.finished("pay-1").await.runtime_status,
        RuntimeStatus::Failed
    );
    let run = host.cli(&["status", "pay-1"]).await;
    let out = run.ok();
    assert!(out.contains("Status:        Failed"), "{out}");
    assert!(out.contains("Failure:") && out.contains("the payment service is down"));

    host.cli(&["rewind", "pay-1", "--reason", "service restored"])
        .await
        .ok();
    // The rewind is queued: wait until the host has taken it up, then for the end.
    let deadline = Instant::now() + WAIT;
    let done = loop {
        let status = host.finished("pay-1").await;
        if status.runtime_status != RuntimeStatus::Failed {
            break status;
        }
        assert!(Instant::now() < deadline, "the rewind was never taken up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(done.output::<u32>().unwrap(), 42);

    host.cli(&["rewind", "pay-1"])
        .await
        .fails(1, "only failed instances");
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_under_the_same_or_a_new_id() {
    let host = Host::start().await;
    host.hello_done("r-1", "Lima").await;
    let created = host
        .client()
        .status("r-1")
        .await
        .unwrap()
        .unwrap()
        .execution_id;

    assert_eq!(host.cli(&["restart", "r-1"]).await.ok(), "r-1\n");
    let again = host.finished("r-1").await;
    assert_ne!(
        again.execution_id, created,
        "the instance was started again"
    );
    assert_eq!(again.output::<String>().unwrap(), "Hello Lima!");

    let run = host.cli(&["restart", "r-1", "--new-id"]).await;
    let new_id = run.ok().trim();
    assert_ne!(new_id, "r-1");
    let copy = host.finished(new_id).await;
    assert_eq!(copy.name, "hello");
    assert_eq!(copy.output::<String>().unwrap(), "Hello Lima!");
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_id() {
    let host = Host::start().await;
    host.hello_done("p-1", "Quito").await;
    host.cli(&["start", "approval", "--id", "p-2"]).await.ok();
    host.started("p-2").await;

    assert_eq!(
        host.cli(&["purge", "p-1"]).await.ok(),
        "purged instance `p-1`\n"
    );
    host.cli(&["status", "p-1"])
        .await
        .fails(3, "no instance with id `p-1`");
    host.cli(&["purge", "p-1"]).await.fails(3, "p-1");
    host.cli(&["purge", "p-2"])
        .await
        .fails(1, "only finished instances are purged");
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_filter_reports_how_many() {
    let host = Host::start().await;
    for (id, name) in [("f-1", "Oslo"), ("f-2", "Rome"), ("f-3", "Bern")] {
        host.hello_done(id, name).await;
    }
    host.cli(&["start", "approval", "--id", "f-4"]).await.ok();
    host.started("f-4").await;

    // Without --yes and no terminal to ask on, nothing happens.
    host.cli(&["purge", "--from", "2000-01-01"])
        .await
        .fails(2, "--yes");
    let future = host
        .cli(&["purge", "--from", "2999-01-01T00:00:00Z", "--yes"])
        .await;
    assert_eq!(future.ok(), "no finished instances match; nothing purged\n");
    let failed_only = host
        .cli(&[
            "purge",
            "--from",
            "2000-01-01",
            "--status",
            "Failed",
            "--yes",
        ])
        .await;
    assert_eq!(
        failed_only.ok(),
        "no finished instances match; nothing purged\n"
    );

    let run = host
        .cli(&[
            "purge",
            "--from",
            "2000-01-01",
            "--status",
            "Completed",
            "--yes",
        ])
        .await;
    assert_eq!(run.ok(), "purged 3 of 3 instances\n");
    assert_eq!(run.stderr, "", "no progress bar without a terminal");
    let left: Vec<Status> = host.cli(&["list", "--json"]).await.json();
    let left: Vec<&str> = left.iter().map(|s| s.instance_id.as_str()).collect();
    assert_eq!(left, ["f-4"]);
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_are_signalled_read_and_listed() {
    let host = Host::start().await;
    let run = host
        .cli(&["entity", "signal", "counter", "c1", "add", "--input", "5"])
        .await;
    assert_eq!(run.ok(), "signalled `add` to entity `@counter@c1`\n");
    host.cli(&["entity", "signal", "Counter", "c1", "add", "--input", "5"])
        .await
        .ok();
    host.cli(&["entity", "signal", "counter", "c2", "add", "--input", "1"])
        .await
        .ok();
    host.runtime.idle().await;

    let run = host
        .cli(&["entity", "get", "counter", "c1", "--json"])
        .await;
    assert_eq!(run.ok(), "{\"value\":10}\n");
    let state: Value = host.cli(&["entity", "get", "counter", "c1"]).await.json();
    assert_eq!(state, json!({"value": 10}));

    let listed: Vec<EntityListItem> = host
        .cli(&["entity", "list", "--state", "--json"])
        .await
        .json();
    let keys: Vec<(&str, &str, Option<&Value>)> = listed
        .iter()
        .map(|e| {
            (
                e.entity_id.name.as_str(),
                e.entity_id.key.as_str(),
                e.state.as_ref(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("counter", "c1", Some(&json!({"value": 10}))),
            ("counter", "c2", Some(&json!({"value": 1})))
        ]
    );
    let run = host.cli(&["entity", "list", "counter", "--state"]).await;
    let table: Vec<&str> = run.ok().lines().collect();
    assert!(
        table[0].starts_with("NAME") && table[0].ends_with("STATE"),
        "{table:#?}"
    );
    assert!(table[1].starts_with("counter  c1") && table[1].ends_with("{\"value\":10}"));
    assert_eq!(
        host.cli(&["entity", "list", "nothing"]).await.ok(),
        "no entities\n"
    );

    host.cli(&["entity", "get", "counter", "c9"])
        .await
        .fails(3, "entity `@counter@c9` does not exist");
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_is_wrong_with_their_exit_codes() {
    let host = Host::start().await;
    host.cli(&["status", "nope"])
        .await
        .fails(3, "no instance with id `nope`");
    host.cli(&["start", "no_such_flow"])
        .await
        .fails(1, "no_such_flow");
    let run = host.cli(&["start", "hello", "--input", "{bad"]).await;
    run.fails(2, "--input");
    assert!(run.stderr.contains("not valid JSON"), "{run:#?}");
    host.cli(&["list", "--status", "Sleeping"])
        .await
        .fails(2, "--status");
    host.cli(&["list", "--from", "yesterday"])
        .await
        .fails(2, "--from");
    host.cli(&["--store", "x.db", "list"])
        .await
        .fails(2, "not both");
    host.cli(&["status"]).await.fails(2, "<ID>");
    host.cli(&["--task-hub", "other", "list"])
        .await
        .fails(1, "this host serves task hub `default`, not `other`");
    host.runtime.shutdown().await;

    // A port nothing listens on: bind one, then let it go.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{port}");
    let run = durable(&["--host", &closed, "list"], &[]).await;
    run.fails(4, &format!("is a host running at {closed}?"));
    assert!(
        run.stderr
            .contains("cargo run -p durable-examples --bin durable-demo")
    );
    // The same through the environment.
    durable(&["status", "x"], &[("DURABLE_HOST", &closed)])
        .await
        .fails(4, "connection refused");
    durable(&["--store", "/no/such/dir/durable.db", "list"], &[])
        .await
        .fails(4, "no store at `/no/such/dir/durable.db`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_a_key_wants_it() {
    let host = Host::start_with(|http| http.key("s3cret")).await;
    host.cli(&["list"]).await.fails(1, "requires a key");
    host.cli(&["--key", "wrong", "list"])
        .await
        .fails(1, "refused the key");
    host.cli(&[
        "--key", "s3cret", "start", "hello", "--id", "k-1", "--input", "\"Kyiv\"",
    ])
    .await
    .ok();
    let status: Status = durable(
        &["--host", &host.url, "status", "k-1", "--json"],
        &[("DURABLE_KEY", "s3cret")],
    )
    .await
    .json();
    assert_eq!(status.name, "hello");
    host.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_backend_works_without_a_host_and_answers_the_same() {
    let host = Host::start().await;
    host.hello_done("st-1", "Cairo").await;
    host.hello_done("st-2", "Lagos").await;
    host.cli(&["start", "approval", "--id", "st-3"]).await.ok();
    host.started("st-3").await;
    host.cli(&["entity", "signal", "counter", "c1", "add", "--input", "7"])
        .await
        .ok();
    host.runtime.idle().await;
    let over_http: Value = host
        .cli(&["status", "st-1", "--history", "--json"])
        .await
        .json();
    let listed_over_http: Value = host.cli(&["list", "--json"]).await.json();
    host.runtime.shutdown().await;
    host.cli(&["list"]).await.fails(4, "is a host running");

    // The same answers, straight from the file.
    let on_store: Value = host
        .cli_on_store(&["status", "st-1", "--history", "--json"])
        .await
        .json();
    assert_eq!(on_store, over_http);
    let listed: Value = host.cli_on_store(&["list", "--json"]).await.json();
    assert_eq!(listed, listed_over_http);
    let out = host.cli_on_store(&["status", "st-1", "--history"]).await;
    assert!(out.ok().contains("TaskCompleted"), "{out:#?}");
    host.cli_on_store(&["status", "nope"])
        .await
        .fails(3, "no instance with id `nope`");
    let state = host
        .cli_on_store(&["entity", "get", "counter", "c1", "--json"])
        .await;
    assert_eq!(state.ok(), "{\"value\":7}\n");

    // Purge, one and by filter; the store named through the environment once.
    assert_eq!(
        host.cli_on_store(&["purge", "st-1"]).await.ok(),
        "purged instance `st-1`\n"
    );
    let db = host.db.to_str().unwrap();
    let run = durable(
        &["purge", "--from", "2000-01-01", "--yes"],
        &[("DURABLE_STORE", db)],
    )
    .await;
    assert_eq!(run.ok(), "purged 1 of 1 instances\n");
    let left: Vec<Status> = host.cli_on_store(&["list", "--json"]).await.json();
    let left: Vec<&str> = left.iter().map(|s| s.instance_id.as_str()).collect();
    assert_eq!(left, ["st-3"]);
    // A flag beats the environment.
    let run = durable(
        &["--store", db, "list", "--json"],
        &[("DURABLE_HOST", "http://127.0.0.1:1")],
    )
    .await;
    assert_eq!(run.json::<Vec<Status>>().len(), 1);
}

/// The store backend on PostgreSQL: a host (no HTTP) runs on the database, and the CLI reads
/// and manages its instances through `--store postgres://…` with the host's task hub.
/// Needs `DURABLE_POSTGRES_URL` (the README's test command provides one).
#[tokio::test]
async fn the_store_backend_works_on_postgresql() {
    let Ok(url) = std::env::var("DURABLE_POSTGRES_URL") else {
        eprintln!("skipped: DURABLE_POSTGRES_URL is not set (run under scripts/with-postgres)");
        return;
    };
    let hub = format!("cli_{}", std::process::id());
    let store = durable::store::Postgres::connect(&url).await.unwrap();
    let runtime = Runtime::builder()
        .store(store)
        .task_hub(&hub)
        .register(hello)
        .register(greet)
        .register(approval)
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    let id = client
        .start(hello, "Lima".to_string())
        .instance_id("pg-1")
        .await
        .unwrap();
    client.wait_for_completion(&id, WAIT).await.unwrap();
    let on_pg = |args: &[&str]| {
        let mut all = vec!["--store", url.as_str(), "--task-hub", hub.as_str()];
        all.extend(args);
        let all: Vec<String> = all.iter().map(|a| a.to_string()).collect();
        async move {
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            durable(&all, &[]).await
        }
    };
    let listed: Vec<Status> = on_pg(&["list", "--json"]).await.json();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].instance_id, "pg-1");
    assert_eq!(listed[0].runtime_status, "Completed");
    let status = on_pg(&["status", "pg-1", "--history"]).await;
    assert!(status.ok().contains("TaskCompleted"), "{status:#?}");

    // Manage a running one: raise its event through the store; the host finishes it.
    on_pg(&["start", "approval", "--id", "pg-2"]).await.ok();
    client.wait_for_start("pg-2", WAIT).await.unwrap();
    on_pg(&["raise", "pg-2", "approval", "--data", "true"])
        .await
        .ok();
    let done = client.wait_for_completion("pg-2", WAIT).await.unwrap();
    assert!(done.output::<bool>().unwrap());
    assert_eq!(
        on_pg(&["purge", "--from", "2000-01-01", "--yes"])
            .await
            .ok(),
        "purged 2 of 2 instances\n"
    );
    on_pg(&["status", "pg-1"])
        .await
        .fails(3, "no instance with id `pg-1`");
    runtime.shutdown().await;
}
