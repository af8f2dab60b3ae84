//! Partition ownership on PostgreSQL: claims on a hub take turns (a transaction-scoped advisory
//! lock), read the hub's partitions, apply the same rules as every store, and write back what
//! changed; a fenced commit holds its partition's advisory lock in shared mode, and a takeover
//! takes it exclusively, so a takeover waits for the commits in flight and later commits see the
//! new epoch.

use deadpool_postgres::{Client, GenericClient};

use super::Postgres;
use super::db::{Fail, execute, row, rows};
use crate::store::ownership::{HostRow, PartitionRow, apply_claim};
use crate::store::{
    OrchestrationWorkItem, PartitionClaim, PartitionLease, PartitionTable, StoreError,
};

const NOW_MS: &str = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// Claims on one hub take turns (commits are not held up: they only read their partition's
/// row).
const CLAIMS_TAKE_TURNS: &str =
    "SELECT pg_advisory_xact_lock(hashtext('durable-partitions'), hashtext($1))";

const ROWS: &str = "SELECT partition, owner, epoch, lease_expires_ms FROM durable_partitions
WHERE hub = $1 ORDER BY partition";

const CREATE: &str =
    "INSERT INTO durable_partitions (hub, partition, owner, epoch, lease_expires_ms)
SELECT $1, p, NULL, 0, 0 FROM generate_series(0, $2 - 1) AS p
ON CONFLICT (hub, partition) DO NOTHING";

const WRITE: &str = "UPDATE durable_partitions SET owner = $3, epoch = $4, lease_expires_ms = $5
WHERE hub = $1 AND partition = $2";

const HOSTS: &str = "SELECT host, expires_ms FROM durable_hosts WHERE hub = $1";

const BEAT: &str = "INSERT INTO durable_hosts (hub, host, expires_ms) VALUES ($1, $2, $3)
ON CONFLICT (hub, host) DO UPDATE SET expires_ms = excluded.expires_ms";

/// A fenced commit holds its partition's lock in shared mode until it ends; a claim that
/// changes the partition's epoch takes it exclusively, so it waits for the commits in flight
/// and the commits after it read the new epoch. Advisory locks live in memory: no row is
/// locked (or written) per commit.
const SHARE_PARTITION: &str =
    "SELECT pg_advisory_xact_lock_shared(hashtext('durable-partition:' || $1), $2)";
const TAKE_PARTITION: &str =
    "SELECT pg_advisory_xact_lock(hashtext('durable-partition:' || $1), $2)";

/// The partition's epoch, read after its lock is held (a statement of its own, so that it
/// sees what a claim that held the lock before committed).
const EPOCH: &str = "SELECT epoch FROM durable_partitions WHERE hub = $1 AND partition = $2";

pub(super) async fn claim(
    store: &Postgres,
    client: &mut Client,
    claim: PartitionClaim,
) -> Result<PartitionTable, Fail> {
    let hub = store.hub.as_str();
    let tx = client.transaction().await?;
    // A claim does not wait long behind another transaction's locks: the next round retries.
    let wait_ms = (claim.lease.as_millis() / 3).clamp(50, 10_000);
    tx.batch_execute(&format!("SET LOCAL lock_timeout = {wait_ms}"))
        .await?;
    execute(&tx, CLAIMS_TAKE_TURNS, &[&hub]).await?;
    let count = i32::try_from(claim.count_if_new.max(1))
        .map_err(|_| Fail::Described("too many partitions".into()))?;
    let mut found = rows(&tx, ROWS, &[&hub]).await?;
    if found.is_empty() {
        execute(&tx, CREATE, &[&hub, &count]).await?;
        found = rows(&tx, ROWS, &[&hub]).await?;
    }
    let mut partitions = Vec::with_capacity(found.len());
    for r in &found {
        partitions.push(PartitionRow {
            partition: r.try_get::<_, i32>(0)? as u32,
            owner: r.try_get(1)?,
            epoch: r.try_get::<_, i64>(2)? as u64,
            expires_ms: r.try_get(3)?,
            changed: false,
        });
    }
    let mut hosts = Vec::new();
    for r in rows(&tx, HOSTS, &[&hub]).await? {
        hosts.push(HostRow {
            host: r.try_get(0)?,
            expires_ms: r.try_get(1)?,
        });
    }
    let now_ms: i64 = row(&tx, NOW_MS, &[])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?
        .unwrap_or_default();
    let epochs: Vec<u64> = partitions.iter().map(|p| p.epoch).collect();
    let table = apply_claim(&mut partitions, &mut hosts, &claim, now_ms);
    for (p, before) in partitions.iter().zip(epochs).filter(|(p, _)| p.changed) {
        let partition = p.partition as i32;
        let epoch = p.epoch as i64;
        if p.epoch != before {
            execute(&tx, TAKE_PARTITION, &[&hub, &partition]).await?;
        }
        execute(
            &tx,
            WRITE,
            &[&hub, &partition, &p.owner, &epoch, &p.expires_ms],
        )
        .await?;
    }
    execute(
        &tx,
        "DELETE FROM durable_hosts WHERE hub = $1 AND (expires_ms <= $2 OR host = $3)",
        &[&hub, &now_ms, &claim.owner],
    )
    .await?;
    if let Some(me) = hosts.iter().find(|h| h.host == claim.owner) {
        execute(&tx, BEAT, &[&hub, &me.host, &me.expires_ms]).await?;
    }
    tx.commit().await?;
    Ok(table)
}

/// Whether `fence` still holds inside the caller's transaction (no fence: yes).
pub(super) async fn fence_holds(
    tx: &impl GenericClient,
    hub: &str,
    fence: Option<&PartitionLease>,
) -> Result<bool, Fail> {
    let Some(fence) = fence else {
        return Ok(true);
    };
    let partition = fence.partition as i32;
    execute(tx, SHARE_PARTITION, &[&hub, &partition]).await?;
    let epoch = row(tx, EPOCH, &[&hub, &partition])
        .await?
        .map(|r| r.try_get::<_, i64>(0))
        .transpose()?;
    Ok(crate::store::ownership::fence_holds(
        epoch.map(|e| e as u64),
        fence,
    ))
}

/// Fails with [`StoreError::LeaseLost`] unless the lease on the partition of `item` (read
/// without a lease of its own) still holds.
pub(super) async fn check_fence(
    client: &impl GenericClient,
    hub: &str,
    item: &OrchestrationWorkItem,
) -> Result<(), Fail> {
    match item.fence.as_ref() {
        Some(fence) if fence_holds(client, hub, Some(fence)).await? => Ok(()),
        _ => Err(StoreError::LeaseLost.into()),
    }
}
