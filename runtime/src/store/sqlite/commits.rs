//! The SQLite store's commits of turns, as the `Store` methods call them: a turn (reading the
//! work it gives this host's idle instances in the same transaction), a start with its first
//! turn, finished activities with the turn they unblock, and a lease's renewal.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::ops::{self, db, millis, nanos, real_millis};
use super::turns::{self, PreparedTurn, apply_turn, commit_turn, unchanged};
use super::{Sqlite, activities, partitions};
use crate::store::signal::TurnWakes;
use crate::store::{
    ActivityTask, ActivityWorkItem, HandOver, InstanceVersion, NewInstance, OrchestrationMessage,
    OrchestrationWorkItem, PartitionLease, ResultsCommit, StoreError, TurnCommit,
};

impl Sqlite {
    /// A turn's commit, reading the work it gives the instances in `read` in the same
    /// transaction. With `hand`, that work is handed over as soon as it is read, before the
    /// transaction is durable (see `Store::commit_turn_handing`), and none is returned.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn commit_reading(
        &self,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
        read: Vec<(String, PartitionLease)>,
        now: DateTime<Utc>,
        hand: Option<HandOver>,
    ) -> Result<(Vec<ActivityWorkItem>, Vec<OrchestrationWorkItem>), StoreError> {
        let id = item.instance_id.clone();
        let token = item.lock.0.clone();
        let fence = item.fence;
        let mut wakes =
            TurnWakes::of(&commit, &item.instance_id).waking_orchestrations(!token.is_empty());
        let mut commit = PreparedTurn::new(commit);
        let now = nanos(now);
        // The turn comes back to be freed here, off the single writer's thread.
        let (held, items, handed, _applied) = self
            .write_after(item.read_in.clone(), move |conn, hub, state| {
                commit_turn(conn, hub, &id, &token, fence.as_ref(), &mut commit)?;
                let held = activities::hold(conn, hub, run_here, lease)?;
                let real_now = real_millis();
                // Only reads, after every change: one that fails leaves its instance to be
                // read the usual way. The messages this turn queued are not parsed back.
                let mut queued = commit.queued();
                let mut items: Vec<OrchestrationWorkItem> = read
                    .iter()
                    .filter_map(|(id, fence)| {
                        partitions::read_instance(conn, hub, id, now, real_now, *fence, &mut queued)
                            .ok()
                            .flatten()
                    })
                    .collect();
                let Some(hand) = hand else {
                    return Ok((held, items, Vec::new(), commit));
                };
                // Every write of these is applied after this transaction settled, and only
                // if it was applied: the writer runs (and syncs) them in order.
                let handed = items.iter().map(|i| i.instance_id.clone()).collect();
                for item in &mut items {
                    item.read_in = Some(state.clone());
                }
                hand(items);
                Ok((held, Vec::new(), handed, commit))
            })
            .await?;
        wakes.read(
            items
                .iter()
                .map(|i| i.instance_id.as_str())
                .chain(handed.iter().map(String::as_str)),
        );
        self.inner.signal.turn_applied(wakes);
        Ok((held, items))
    }

    pub(super) async fn create_started(
        &self,
        instance: NewInstance,
        fence: PartitionLease,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<Option<Vec<ActivityWorkItem>>, StoreError> {
        let wakes = TurnWakes::of(&commit, &instance.instance_id);
        let mut commit = PreparedTurn::new(commit);
        let (held, _applied) = self
            .write_checked(move |conn, hub| {
                turns::create_with_turn(conn, hub, &instance, &fence, &mut commit)?;
                Ok((activities::hold(conn, hub, run_here, lease)?, commit))
            })
            .await?;
        self.inner.signal.turn_applied(wakes);
        Ok(Some(held))
    }

    pub(super) async fn renew_lease(
        &self,
        item: &OrchestrationWorkItem,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let id = item.instance_id.clone();
        let token = item.lock.0.clone();
        if token.is_empty() {
            // Held by its partition's lease, which the host renews: nothing to extend.
            let fence = item.fence;
            return self
                .read_work(move |conn, hub| {
                    partitions::check_hold(conn, hub, &id, "", fence.as_ref())
                })
                .await;
        }
        self.write(move |conn, hub| {
            let renewed = conn
                .prepare_cached(
                    "UPDATE instances SET lock_expires = ?4 \
                     WHERE hub = ?1 AND instance_id = ?2 AND lock_token = ?3",
                )
                .map_err(db("renewing a lease"))?
                .execute(params![hub, id, token, real_millis() + millis(lease)])
                .map_err(db("renewing a lease"))?;
            if renewed == 0 {
                return Err(StoreError::LeaseLost);
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn complete_and_commit(
        &self,
        results: Vec<(ActivityWorkItem, OrchestrationMessage)>,
        expected: InstanceVersion,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<ResultsCommit, StoreError> {
        let wakes = TurnWakes::of(&commit, &expected.instance_id);
        let expected_id = expected.instance_id.clone();
        let mut commit = PreparedTurn::new(commit);
        let (done, _applied) = self
            .write_checked(move |conn, hub| {
                activities::take_all(conn, hub, results.iter().map(|(item, _)| item))?;
                if !unchanged(conn, hub, &expected)? {
                    for (_, response) in &results {
                        ops::deliver(conn, hub, response)?;
                    }
                    return Ok((ResultsCommit::Queued, commit));
                }
                apply_turn(conn, hub, &expected.instance_id, &mut commit)?;
                let held = activities::hold(conn, hub, run_here, lease)?;
                Ok((ResultsCommit::Committed(held), commit))
            })
            .await?;
        match &done {
            ResultsCommit::Committed(_) => self.inner.signal.turn_applied(wakes),
            ResultsCommit::Queued => self.inner.signal.work_for([expected_id]),
        }
        Ok(done)
    }
}
