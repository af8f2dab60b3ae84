//! The SQLite store: whole workflows on a file, restarts, and files it must refuse.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use durable::prelude::*;
use durable::store::{Durability, Sqlite, Store};
use durable::testing::TestRuntime;
use durable_tests::finished;
use durable_tests::sqlite_files::{builder, pipeline};

#[tokio::test]
async fn normal_durability_runs_the_same_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let store = Sqlite::open_with(dir.path().join("fast.db"), Durability::Normal).unwrap();
    let rt = TestRuntime::start(builder(store)).await.unwrap();
    let id = rt.client().start(pipeline, vec!["a".into()]).await.unwrap();
    rt.idle().await;
    rt.client().raise_event(&id, "Go", "!").await.unwrap();
    assert_eq!(finished(&rt, &id).await.output::<String>().unwrap(), "A !");
}

#[tokio::test]
async fn files_that_are_not_durable_stores_are_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let err = Sqlite::open(&garbage).err().unwrap().to_string();
    assert!(err.contains("cannot be opened as a durable store"), "{err}");
    assert_eq!(std::fs::read(&garbage).unwrap(), vec![0x5a; 8192]);

    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE users (id INTEGER)")
        .unwrap();
    let err = Sqlite::open(&foreign).err().unwrap().to_string();
    assert!(
        err.contains("another application") && err.contains("users"),
        "{err}"
    );

    let newer = dir.path().join("newer.db");
    drop(Sqlite::open(&newer).unwrap());
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = Sqlite::open(&newer).err().unwrap().to_string();
    assert!(
        err.contains("newer version of durable") && err.contains("schema version 99"),
        "{err}"
    );
}

/// Every file in `dir`, by name, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect()
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Adds `rows` history rows (about 300 bytes each) through `conn`, one transaction each.
fn add_history(conn: &rusqlite::Connection, from: usize, rows: usize) {
    for i in from..from + rows {
        conn.execute(
            "INSERT INTO history (hub, instance_id, idx, events) VALUES ('default', ?1, ?2, ?3)",
            rusqlite::params![format!("i-{}", i / 50), i as i64, format!("{i:0>300}")],
        )
        .unwrap();
    }
}

fn count_history(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("SELECT count(*) FROM history", [], |r| r.get(0))
        .unwrap()
}

/// A real store, closed cleanly: 2000 history rows, all in the file.
fn closed_store(path: &Path) {
    drop(Sqlite::open(path).unwrap());
    add_history(&rusqlite::Connection::open(path).unwrap(), 0, 2000);
}

/// What a killed host leaves: a store whose last 500 committed rows are only in its `-wal`.
/// The store is built in `live/`; its files are copied to `dir` (the `-shm` too if `with_shm`)
/// while its connection is still open, so nothing has been checkpointed. Returns the copy.
fn killed_host_store(dir: &Path, with_shm: bool) -> PathBuf {
    let live_dir = dir.join("live");
    std::fs::create_dir_all(&live_dir).unwrap();
    let live = live_dir.join("app.db");
    closed_store(&live);
    let conn = rusqlite::Connection::open(&live).unwrap();
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0").unwrap();
    add_history(&conn, 2000, 500);
    let copy_dir = dir.join("copy");
    std::fs::create_dir_all(&copy_dir).unwrap();
    let copy = copy_dir.join("app.db");
    let suffixes: &[&str] = if with_shm {
        &["", "-wal", "-shm"]
    } else {
        &["", "-wal"]
    };
    for suffix in suffixes {
        std::fs::copy(sibling(&live, suffix), sibling(&copy, suffix)).unwrap();
    }
    drop(conn);
    assert!(
        std::fs::metadata(sibling(&copy, "-wal")).unwrap().len() > 0,
        "the copy has a hot write-ahead log"
    );
    copy
}

/// Opening `path` fails naming it, saying it is damaged and what to do, and changes no file.
fn assert_refused_untouched(path: &Path, expected: &str) {
    let dir = path.parent().unwrap();
    let before = snapshot(dir);
    let err = Sqlite::open(path)
        .err()
        .expect("the store is refused")
        .to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains(expected), "{err}");
    assert!(
        err.contains("backup") && err.contains("move it aside"),
        "{err}"
    );
    assert!(snapshot(dir) == before, "the files changed: {err}");
    // And again: a refusal leaves nothing behind that changes the next answer.
    let again = Sqlite::open(path).err().expect("refused again").to_string();
    assert_eq!(again, err);
    assert!(
        snapshot(dir) == before,
        "the files changed on the second refusal"
    );
}

#[test]
fn a_killed_hosts_store_opens_with_every_committed_write() {
    for with_shm in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let copy = killed_host_store(dir.path(), with_shm);
        drop(Sqlite::open(&copy).unwrap());
        assert_eq!(count_history(&copy), 2500, "with -shm: {with_shm}");
    }
}

#[test]
fn a_text_file_in_place_of_the_store_beside_a_hot_log_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let copy = killed_host_store(dir.path(), true);
    std::fs::write(&copy, "not a database, just some notes\n".repeat(300)).unwrap();
    assert_refused_untouched(&copy, "not a SQLite database");
}

#[test]
fn random_bytes_in_the_middle_of_a_store_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    closed_store(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for byte in &mut bytes[middle - 2048..middle + 2048] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    std::fs::write(&path, bytes).unwrap();
    assert_refused_untouched(&path, "is damaged");
}

/// Cuts the file to half its pages (a whole number of them, so SQLite's own check must notice).
fn cut_to_half(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len / 2 / 4096 * 4096)
        .unwrap();
}

#[test]
fn a_store_cut_to_half_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    closed_store(&path);
    cut_to_half(&path);
    assert_refused_untouched(&path, "is damaged");

    // Not on a page boundary: the header check alone notices.
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 1000)
        .unwrap();
    assert_refused_untouched(&path, "not a whole number");
}

#[test]
fn a_store_cut_to_half_beside_a_hot_log_is_refused_untouched() {
    for with_shm in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let copy = killed_host_store(dir.path(), with_shm);
        cut_to_half(&copy);
        assert_refused_untouched(&copy, "is damaged");
    }
}

#[test]
fn a_log_without_its_store_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let copy = killed_host_store(dir.path(), false);
    std::fs::write(&copy, b"").unwrap();
    assert_refused_untouched(&copy, "is empty");
    std::fs::remove_file(&copy).unwrap();
    assert_refused_untouched(&copy, "is missing");
}

// Every behaviour of the `Store` trait, each check on a fresh database file.
durable::store_conformance_tests!(|| async {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a scratch directory")
        .keep();
    Arc::new(Sqlite::open(dir.join("conformance.db")).expect("the store opens")) as Arc<dyn Store>
});

/// Dropping the last handle of a store waits for its writer to finish and close, so the file is
/// whole (its log checkpointed and removed) when the drop returns, and opens again at once.
#[tokio::test]
async fn dropping_the_store_closes_its_file_before_the_drop_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drop.db");
    let wal = dir.path().join("drop.db-wal");
    for round in 0..10 {
        let store: Arc<dyn Store> = Arc::new(Sqlite::open(&path).unwrap());
        let client = Client::new(store.clone());
        client
            .start_by_name("pipeline", vec!["a"])
            .instance_id(format!("drop-{round}"))
            .await
            .unwrap();
        assert!(
            client
                .status(&format!("drop-{round}"))
                .await
                .unwrap()
                .is_some()
        );
        drop(client);
        drop(store);
        assert!(
            !wal.exists(),
            "round {round}: the log is still there after the drop"
        );
    }
}

#[tokio::test]
async fn results_commit_with_their_turn_in_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Sqlite::open(dir.path().join("one-write.db")).unwrap();
    durable_tests::one_write::results_commit_with_their_turn(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_turns_arriving_together_each_get_their_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Sqlite::open(dir.path().join("result-turns.db")).unwrap();
    durable_tests::together::result_turns_arriving_together_each_get_their_own_answer(Arc::new(
        store,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arriving_together_each_get_their_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Sqlite::open(dir.path().join("messages.db")).unwrap();
    durable_tests::together::messages_arriving_together_each_get_their_own_answer(Arc::new(store))
        .await;
}
