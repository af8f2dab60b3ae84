//! The schema and its versioned migrations, applied when a store connects.
//!
//! `durable_schema_version` records every migration applied. A database whose recorded version
//! is newer than this build knows is refused without being changed: an older host must not
//! write to tables whose meaning it does not know.

use deadpool_postgres::Client;

use super::db::{Fail, row};

/// Serializes concurrent migrations (hosts starting together) on one database.
const MIGRATION_LOCK: i64 = 0x6475_7261_626c_6531; // "durable1"

/// The migrations, in order: entry `n` takes the schema from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6];

/// The newest schema version this build knows.
pub(super) const LATEST: i32 = MIGRATIONS.len() as i32;

/// Version 1. Every table is keyed by task hub. Ids use the "C" collation so that ordering and
/// prefix matching are by bytes, as in Rust. Times the caller sees again are nanoseconds since
/// the Unix epoch (`*_ns`); lease and retry times, which only the database compares, are
/// `timestamptz` on the database's clock.
const V1: &str = r#"
CREATE TABLE durable_instances (
    hub                text COLLATE "C" NOT NULL,
    instance_id        text COLLATE "C" NOT NULL,
    name               text NOT NULL,
    execution_id       text NOT NULL,
    runtime_status     text NOT NULL,
    input              text,
    output             text,
    custom_status      text,
    failure            json,
    created_at_ns      bigint NOT NULL,
    last_updated_at_ns bigint NOT NULL,
    parent_instance_id text,
    history_len        integer NOT NULL DEFAULT 0,
    lock_token         text,
    lock_expires_at    timestamptz,
    PRIMARY KEY (hub, instance_id)
);
CREATE INDEX durable_instances_created ON durable_instances (hub, created_at_ns, instance_id);
CREATE INDEX durable_instances_leased ON durable_instances (hub) WHERE lock_token IS NOT NULL;

CREATE TABLE durable_history (
    hub         text COLLATE "C" NOT NULL,
    instance_id text COLLATE "C" NOT NULL,
    seq         integer NOT NULL,
    event       json NOT NULL,
    PRIMARY KEY (hub, instance_id, seq),
    FOREIGN KEY (hub, instance_id) REFERENCES durable_instances (hub, instance_id)
        ON DELETE CASCADE
);

CREATE TABLE durable_messages (
    seq           bigserial PRIMARY KEY,
    hub           text COLLATE "C" NOT NULL,
    instance_id   text COLLATE "C" NOT NULL,
    execution_id  text,
    event         json NOT NULL,
    visible_at_ns bigint,
    not_before    timestamptz,
    dequeue_count integer NOT NULL DEFAULT 0,
    FOREIGN KEY (hub, instance_id) REFERENCES durable_instances (hub, instance_id)
        ON DELETE CASCADE
);
CREATE INDEX durable_messages_queue ON durable_messages (hub, seq);
CREATE INDEX durable_messages_instance ON durable_messages (hub, instance_id, seq);
CREATE INDEX durable_messages_timers ON durable_messages (hub, visible_at_ns)
    WHERE visible_at_ns IS NOT NULL;

CREATE TABLE durable_activities (
    seq             bigserial PRIMARY KEY,
    hub             text COLLATE "C" NOT NULL,
    instance_id     text COLLATE "C" NOT NULL,
    execution_id    text NOT NULL,
    task_id         bigint NOT NULL,
    name            text NOT NULL,
    input           text NOT NULL,
    lock_token      text,
    lock_expires_at timestamptz,
    not_before      timestamptz,
    dequeue_count   integer NOT NULL DEFAULT 0
);
CREATE INDEX durable_activities_queue ON durable_activities (hub, seq);
CREATE INDEX durable_activities_instance ON durable_activities (hub, instance_id);
CREATE UNIQUE INDEX durable_activities_lock ON durable_activities (lock_token)
    WHERE lock_token IS NOT NULL;

CREATE TABLE durable_parked (
    seq          bigserial PRIMARY KEY,
    hub          text COLLATE "C" NOT NULL,
    instance_id  text COLLATE "C" NOT NULL,
    message      text NOT NULL,
    error        text NOT NULL,
    parked_at_ns bigint NOT NULL
);
CREATE INDEX durable_parked_instance ON durable_parked (hub, instance_id);
"#;

/// Version 2: the orchestration version each instance started under (none for instances
/// created before), and finding instances by it.
const V2: &str = r#"
ALTER TABLE durable_instances ADD COLUMN version text;
CREATE INDEX durable_instances_version
    ON durable_instances (hub, version, created_at_ns, instance_id);
"#;

const CREATE_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS durable_schema_version (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// The schema version recorded in the database (0 when it has none).
async fn current_version(client: &impl deadpool_postgres::GenericClient) -> Result<i32, Fail> {
    let exists = row(
        client,
        "SELECT to_regclass('durable_schema_version') IS NOT NULL",
        &[],
    )
    .await?
    .is_some_and(|r| r.get::<_, bool>(0));
    if !exists {
        return Ok(0);
    }
    Ok(row(
        client,
        "SELECT coalesce(max(version), 0) FROM durable_schema_version",
        &[],
    )
    .await?
    .map_or(0, |r| r.get(0)))
}

fn too_new(found: i32) -> Fail {
    Fail::Described(format!(
        "the database holds durable schema version {found}, but this build of durable \
         knows versions up to {LATEST}: it was written by a newer durable. Upgrade durable to \
         use it (the database was left unchanged)"
    ))
}

/// Brings the schema up to [`LATEST`], or refuses a database written by a newer version.
pub(super) async fn migrate(client: &mut Client) -> Result<(), Fail> {
    let found = current_version(&*client).await?;
    if found == LATEST {
        return Ok(());
    }
    if found > LATEST {
        return Err(too_new(found));
    }
    // A session lock, taken before the transaction starts: the transaction then sees
    // everything a host that migrated meanwhile committed (including its catalog changes).
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let migrated = apply(client, found).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    migrated?;
    unlocked?;
    Ok(())
}

/// Applies the migrations after `found` (re-read under the lock) in one transaction.
async fn apply(client: &mut Client, found: i32) -> Result<(), Fail> {
    let tx = client.transaction().await?;
    // Another host may have migrated while this one waited for the lock.
    let found = current_version(&tx).await?.max(found);
    if found > LATEST {
        return Err(too_new(found));
    }
    tx.batch_execute(CREATE_VERSION_TABLE).await?;
    for (done, migration) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let version = done as i32 + 1;
        tracing::info!(version, "applying durable's PostgreSQL schema migration");
        tx.batch_execute(migration).await?;
        tx.execute(
            "INSERT INTO durable_schema_version (version) VALUES ($1)",
            &[&version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Version 3. Partition ownership: each instance's partition hash (FNV-1a of its id, as
/// `durable::store::id_hash` computes it, kept by the database itself), who holds each
/// partition of a hub and at which epoch, and the hosts' heartbeats; which host left an
/// instance's work because it may not run it, and until when that host waits (any other host
/// may fetch it meanwhile, whoever owns its partition). Lease times are milliseconds on the database's clock.
const V3: &str = r#"
CREATE FUNCTION durable_id_hash(id text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    bytes bytea := convert_to(id, 'UTF8');
    h bigint := 2166136261;
BEGIN
    FOR i IN 0 .. length(bytes) - 1 LOOP
        h := ((h # get_byte(bytes, i)) * 16777619) % 4294967296;
    END LOOP;
    RETURN h;
END $$;
ALTER TABLE durable_instances
    ADD COLUMN id_hash bigint GENERATED ALWAYS AS (durable_id_hash(instance_id)) STORED,
    ADD COLUMN left_by text,
    ADD COLUMN left_until timestamptz;

CREATE TABLE durable_partitions (
    hub              text COLLATE "C" NOT NULL,
    partition        integer NOT NULL,
    owner            text,
    epoch            bigint NOT NULL,
    lease_expires_ms bigint NOT NULL,
    PRIMARY KEY (hub, partition)
);

CREATE TABLE durable_hosts (
    hub        text COLLATE "C" NOT NULL,
    host       text NOT NULL,
    expires_ms bigint NOT NULL,
    PRIMARY KEY (hub, host)
);
"#;

/// Version 4. Owners read their partitions' work instead of leasing it instance by instance;
/// work a host left for another (outside the reader's partitions) is found through its own
/// small index.
const V4: &str = r#"
CREATE INDEX durable_instances_left ON durable_instances (hub) WHERE left_by IS NOT NULL;
"#;

/// Version 5. History and messages no longer refer to their instance by a foreign key: its
/// check ran as a trigger per inserted row, a seventh of the database's time under load. The
/// store keeps them consistent itself: messages are queued only to instances it has locked
/// (`FOR KEY SHARE`) in the same transaction, history is written only with its instance's row
/// updated, and whatever removes an instance (purge, a replacing start or import, an idle
/// entity's removal) deletes its history and messages in a statement of its own.
const V5: &str = r#"
ALTER TABLE durable_history DROP CONSTRAINT IF EXISTS durable_history_hub_instance_id_fkey;
ALTER TABLE durable_messages DROP CONSTRAINT IF EXISTS durable_messages_hub_instance_id_fkey;
"#;

/// Version 6. Fewer index writes per turn. An instance's row is rewritten by every turn; with
/// its pages left 30 % free, the new version fits beside the old one and no index is written
/// (a heap-only update: two in three of W3's updates before, more than nine in ten after).
/// Activities are found by `(hub, seq)` as their key, which the queue's own index was: one
/// index fewer to write per activity.
const V6: &str = r#"
ALTER TABLE durable_instances SET (fillfactor = 70);
ALTER TABLE durable_activities DROP CONSTRAINT durable_activities_pkey;
DROP INDEX durable_activities_queue;
ALTER TABLE durable_activities ADD PRIMARY KEY (hub, seq);
"#;
