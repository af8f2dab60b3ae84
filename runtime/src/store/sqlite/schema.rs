//! The SQLite schema and its migrations.

use rusqlite::{Connection, OptionalExtension};

use crate::store::StoreError;

/// The schema version this code writes. Version `n` is reached by applying `MIGRATIONS[..n]`.
pub(super) const SCHEMA_VERSION: i64 = 6;

/// An id stored in the file so a durable database is told apart from any other SQLite file.
const APPLICATION_ID: i64 = 0x4455_5241; // "DURA"

const MIGRATIONS: &[&str] = &[
    // 1: instances, their histories and queues, activities, parked messages.
    "
    CREATE TABLE instances (
        hub TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        name TEXT NOT NULL,
        execution_id TEXT NOT NULL,
        runtime_status TEXT NOT NULL,
        input TEXT,
        output TEXT,
        custom_status TEXT,
        failure TEXT,
        created_at INTEGER NOT NULL,
        last_updated_at INTEGER NOT NULL,
        parent_instance_id TEXT,
        history_len INTEGER NOT NULL DEFAULT 0,
        lock_token TEXT,
        lock_expires INTEGER,
        PRIMARY KEY (hub, instance_id)
    ) WITHOUT ROWID;
    CREATE INDEX instances_by_created ON instances (hub, created_at, instance_id);
    CREATE TABLE history (
        hub TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (hub, instance_id, idx)
    ) WITHOUT ROWID;
    CREATE TABLE messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        hub TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        execution_id TEXT,
        event TEXT NOT NULL,
        visible_at INTEGER,
        not_before INTEGER,
        dequeue_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX messages_by_instance ON messages (hub, instance_id, seq);
    CREATE INDEX messages_by_visible ON messages (hub, visible_at);
    CREATE TABLE activities (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        hub TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        execution_id TEXT NOT NULL,
        task_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        input TEXT NOT NULL,
        lock_token TEXT,
        lock_expires INTEGER,
        not_before INTEGER,
        dequeue_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX activities_by_hub ON activities (hub, seq);
    CREATE TABLE parked (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hub TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        message TEXT NOT NULL,
        error TEXT NOT NULL,
        parked_at INTEGER NOT NULL
    );
    ",
    // 2: finding work without stepping over what is not ready: the oldest immediate message
    // past the waiting timers, a free activity past the leased ones (which, with activities
    // held by the host that scheduled them, are most of the table). Full indexes: a partial
    // one would make SQLite re-plan every statement that compares its column with a parameter.
    "
    DROP INDEX messages_by_visible;
    CREATE INDEX messages_by_visible ON messages (hub, visible_at, seq);
    CREATE INDEX activities_free ON activities (hub, lock_token, seq);
    CREATE INDEX activities_by_expiry ON activities (hub, lock_expires);
    ",
    // 3: the version each instance started under, and finding instances by it. Instances
    // created before have none.
    "
    ALTER TABLE instances ADD COLUMN version TEXT;
    CREATE INDEX instances_by_version ON instances (hub, version, created_at, instance_id);
    ",
    // 4: partition ownership: who holds each partition of a hub and at which epoch, and the
    // hosts' heartbeats.
    "
    CREATE TABLE partitions (
        hub TEXT NOT NULL,
        partition INTEGER NOT NULL,
        owner TEXT,
        epoch INTEGER NOT NULL,
        lease_expires INTEGER NOT NULL,
        PRIMARY KEY (hub, partition)
    ) WITHOUT ROWID;
    CREATE TABLE hosts (
        hub TEXT NOT NULL,
        host TEXT NOT NULL,
        expires INTEGER NOT NULL,
        PRIMARY KEY (hub, host)
    ) WITHOUT ROWID;
    ",
    // 5: history in the order it is written, one row per write instead of one per event: a
    // turn's events are one row (`events`, a JSON array, the first of them the instance's
    // `idx`th event), appended at the end of the table, and each row points to the instance's
    // row before (`prev`); the instance points to its last (`history_last`). A commit of many
    // instances' turns writes their history to a few pages at the end of the table instead of
    // one page per instance (keyed by instance, history was half the pages a commit wrote).
    // Histories written before become one row per instance.
    "
    CREATE TABLE history_rows (
        seq INTEGER PRIMARY KEY,
        hub TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        prev INTEGER,
        events TEXT NOT NULL
    );
    INSERT INTO history_rows (hub, instance_id, idx, prev, events)
        SELECT h.hub, h.instance_id, 0, NULL, '[' || group_concat(h.event, ',' ORDER BY h.idx) || ']'
        FROM history AS h
        WHERE EXISTS (SELECT 1 FROM instances AS i WHERE i.hub = h.hub AND i.instance_id = h.instance_id)
        GROUP BY h.hub, h.instance_id;
    CREATE TEMP TABLE history_last (
        hub TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (hub, instance_id)
    ) WITHOUT ROWID;
    INSERT INTO temp.history_last SELECT hub, instance_id, seq FROM history_rows;
    ALTER TABLE instances ADD COLUMN history_last INTEGER;
    UPDATE instances SET history_last = (
        SELECT l.seq FROM temp.history_last AS l
        WHERE l.hub = instances.hub AND l.instance_id = instances.instance_id
    );
    DROP TABLE temp.history_last;
    DROP TABLE history;
    ALTER TABLE history_rows RENAME TO history;
    ",
    // 6: instances in a table with a rowid, their small columns first. An entity keeps its
    // state (with its queue of waiting lock requests: kilobytes under contention) in its row.
    // Keyed by instance alone (`WITHOUT ROWID`), every search of the table that passed such a
    // row compared the whole row, read from its overflow pages; now the key is in an index of
    // its own and a row's large columns are read only when asked for.
    "
    CREATE TABLE instances_by_rowid (
        hub TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        name TEXT NOT NULL,
        execution_id TEXT NOT NULL,
        runtime_status TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_updated_at INTEGER NOT NULL,
        parent_instance_id TEXT,
        history_len INTEGER NOT NULL DEFAULT 0,
        history_last INTEGER,
        lock_token TEXT,
        lock_expires INTEGER,
        version TEXT,
        failure TEXT,
        custom_status TEXT,
        input TEXT,
        output TEXT,
        PRIMARY KEY (hub, instance_id)
    );
    INSERT INTO instances_by_rowid (hub, instance_id, name, execution_id, runtime_status,
        created_at, last_updated_at, parent_instance_id, history_len, history_last, lock_token,
        lock_expires, version, failure, custom_status, input, output)
    SELECT hub, instance_id, name, execution_id, runtime_status, created_at, last_updated_at,
        parent_instance_id, history_len, history_last, lock_token, lock_expires, version,
        failure, custom_status, input, output
    FROM instances;
    DROP TABLE instances;
    ALTER TABLE instances_by_rowid RENAME TO instances;
    CREATE INDEX instances_by_created ON instances (hub, created_at, instance_id);
    CREATE INDEX instances_by_version ON instances (hub, version, created_at, instance_id);
    ",
];

fn backend(what: &str, e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("{what}: {e}"))
}

/// Brings the file to [`SCHEMA_VERSION`], refusing files that are not durable databases or
/// that a newer version of durable wrote.
pub(super) fn migrate(conn: &mut Connection, path: &str) -> Result<(), StoreError> {
    let version = inspect(conn, path)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let target = i as i64 + 1;
        let tx = conn
            .transaction()
            .map_err(|e| backend("starting a migration", e))?;
        tx.execute_batch(sql)
            .map_err(|e| backend(&format!("applying schema migration {target}"), e))?;
        tx.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {target};"
        ))
        .map_err(|e| backend("recording the schema version", e))?;
        tx.commit()
            .map_err(|e| backend(&format!("committing schema migration {target}"), e))?;
    }
    Ok(())
}

/// Reads the file's schema version without writing anything, refusing files that are not
/// durable databases or that a newer version of durable wrote.
pub(super) fn inspect(conn: &Connection, path: &str) -> Result<i64, StoreError> {
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| not_a_database(path, e))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| not_a_database(path, e))?;
    if app_id == 0 && version == 0 {
        let foreign: Option<String> = conn
            .query_row(
                "SELECT name FROM sqlite_master WHERE type = 'table' LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| not_a_database(path, e))?;
        if let Some(table) = foreign {
            return Err(StoreError::Backend(format!(
                "`{path}` is a SQLite database of another application (it has a table `{table}`), \
                 not a durable store; open a new file instead"
            )));
        }
    } else if app_id != APPLICATION_ID {
        return Err(StoreError::Backend(format!(
            "`{path}` is a SQLite database of another application (application id {app_id:#x}), \
             not a durable store"
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "`{path}` was written by a newer version of durable (schema version {version}; this \
             version understands up to {SCHEMA_VERSION}); upgrade durable to open it"
        )));
    }
    Ok(version)
}

fn not_a_database(path: &str, e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!(
        "`{path}` cannot be opened as a durable store (is it a SQLite database?): {e}"
    ))
}
