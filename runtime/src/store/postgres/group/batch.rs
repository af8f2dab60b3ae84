//! One batch written in one transaction, check by check: each statement carries every job of
//! the batch still in it (arrays), and what one job cannot do refuses that job alone. The way
//! a batch goes when [`super::pipeline`]'s single round trip found some job that cannot go
//! as it stands.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::Transaction;

use super::super::db::{Fail, execute, rows};
use super::super::reads::read_many;
use super::super::work::{CREATE, create, deliver};
use super::rows::{
    APPEND_HISTORIES, Activities, CLEAR_HISTORIES, CLEAR_MESSAGES, CONSUME, EPOCHS, Histories,
    INSERT_ACTIVITIES, LOCK_PARTITIONS, Standing, Starts, Statuses, TAKE_ACTIVITIES,
    UPDATE_STATUSES, partitions,
};
use super::{Answer, Attempt, Done, Job, TurnJob, Work};
use crate::store::{OrchestrationWorkItem, ResultsCommit, StoreError};

/// Writes the batch in `tx`; for each job, the activities held for it, or why it was refused
/// (nothing of it written): its lease or fence lost, or, for a start, an instance with its id
/// in the way. Commits unless a turn found its consumed messages gone ([`Attempt::Stale`]).
pub(super) async fn write_batch(
    tx: Transaction<'_>,
    hub: &str,
    jobs: &[Job],
) -> Result<Vec<Answer>, Attempt> {
    let mut standing = Standing::all(jobs);
    // Why a job left out was refused, when not for a lost lease or fence.
    let mut refused: Vec<Option<StoreError>> = jobs.iter().map(|_| None).collect();

    // Fences.
    for (i, job) in jobs.iter().enumerate() {
        if let Some(turn) = job.work.turn()
            && turn.fence.is_none()
            && turn.lock.is_none()
            // A result turn's fence is optional (unchecked without one).
            && !matches!(job.work, Work::ResultTurn(_))
        {
            standing.live[i] = false;
        }
    }
    let partitions = partitions(jobs);
    if !partitions.is_empty() {
        execute(&tx, LOCK_PARTITIONS, &[&hub, &partitions]).await?;
        let epochs: HashMap<i32, i64> = rows(&tx, EPOCHS, &[&hub, &partitions])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for (i, job) in jobs.iter().enumerate() {
            if let Some(TurnJob {
                fence: Some(fence), ..
            }) = job.work.turn()
            {
                let epoch = epochs.get(&(fence.partition as i32)).map(|&e| e as u64);
                if !crate::store::ownership::fence_holds(epoch, fence) {
                    match job.work {
                        Work::ResultTurn(_) => standing.queued[i] = true,
                        _ => standing.live[i] = false,
                    }
                }
            }
        }
    }

    // New instances, unless one with the same id is pending or running.
    let starts = Starts::of(jobs, &standing);
    if !starts.is_empty() {
        let made: HashMap<String, bool> = rows(&tx, CREATE, &starts.params(&hub))
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut replaced = Vec::new();
        for (i, id) in starts.places() {
            match made.get(id) {
                Some(true) => replaced.push(id),
                Some(false) => {}
                None => {
                    standing.live[i] = false;
                    refused[i] = Some(StoreError::InstanceAlreadyExists(id.to_string()));
                }
            }
        }
        if !replaced.is_empty() {
            // A finished instance replaced starts over: no history, no queued messages.
            execute(&tx, CLEAR_HISTORIES, &[&hub, &replaced]).await?;
            execute(&tx, CLEAR_MESSAGES, &[&hub, &replaced]).await?;
        }
    }

    // Activity results: each job's activities must still be held under their tokens.
    let tokens = standing.tokens(jobs);
    if !tokens.is_empty() {
        let taken: HashSet<String> = rows(&tx, TAKE_ACTIVITIES, &[&hub, &tokens])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (i, job) in jobs.iter().enumerate() {
            match &job.work {
                Work::Result(r) if !taken.contains(&r.item.lock.0) => standing.live[i] = false,
                Work::ResultTurn(r) if standing.live[i] => {
                    let held = r
                        .results
                        .iter()
                        .filter(|(item, _)| taken.contains(&item.lock.0))
                        .count();
                    if held == 0 {
                        standing.live[i] = false;
                    } else if held < r.results.len() {
                        // Some taken, some lost: nothing of the job may stay.
                        tx.rollback().await?;
                        return Err(Attempt::Stale(i));
                    }
                }
                _ => {}
            }
        }
    }

    // Statuses.
    let statuses = Statuses::of(jobs, &standing)?;
    let mut updated: HashMap<String, i32> = HashMap::new();
    if !statuses.is_empty() {
        updated = rows(&tx, UPDATE_STATUSES, &statuses.params(&hub))
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    }
    for (i, job) in jobs.iter().enumerate() {
        if let Some(turn) = job.work.turn()
            && standing.live[i]
            && !standing.queued[i]
            && !updated.contains_key(&turn.instance_id)
        {
            match job.work {
                // Another turn got there first: the results go in as messages.
                Work::ResultTurn(_) => standing.queued[i] = true,
                _ => standing.live[i] = false,
            }
        }
    }

    // Consumed messages: every one must still be there, or the turn is stale.
    let consumed = standing.consumed(jobs);
    if !consumed.is_empty() {
        let removed = rows(&tx, CONSUME, &[&hub, &consumed]).await?;
        if let Some(i) = standing.stale(jobs, &removed) {
            tx.rollback().await?;
            return Err(Attempt::Stale(i));
        }
    }

    // Histories.
    let resets = standing.resets(jobs);
    if !resets.is_empty() {
        execute(&tx, CLEAR_HISTORIES, &[&hub, &resets]).await?;
    }
    let histories = Histories::of(jobs, &standing, Some(&updated))?;
    if !histories.is_empty() {
        execute(&tx, APPEND_HISTORIES, &histories.params(&hub)).await?;
    }

    // Activities, queued or held for the committing host.
    let activities = Activities::of(jobs, &standing);
    if !activities.is_empty() {
        execute(&tx, INSERT_ACTIVITIES, &activities.params(&hub)).await?;
    }

    // Children first, so that the messages sent to them find them.
    for (_, turn) in standing.turns(jobs) {
        for child in &turn.commit.new_instances {
            if create(&tx, hub, child).await? {
                deliver(&tx, hub, &[child.start_message()]).await?;
            } else if let Some(response) = child.conflict_response() {
                deliver(&tx, hub, &[response]).await?;
            }
        }
    }
    let missing = deliver(&tx, hub, &standing.messages(jobs)).await?;
    // A client's message to an orchestration that does not exist was not queued: refused.
    for (i, job) in jobs.iter().enumerate() {
        if let Work::Message(message) = &job.work
            && standing.live[i]
            && missing.contains(&message.instance_id)
        {
            standing.live[i] = false;
            refused[i] = Some(StoreError::InstanceNotFound(message.instance_id.clone()));
        }
    }

    // The work the turns gave this host's idle instances, read after every change.
    let read = read_for(&tx, hub, jobs, &standing).await?;

    tx.commit()
        .await
        .map_err(|e| Attempt::Commit(Fail::Db(e)))?;
    Ok(answers(standing, activities.held, refused, read))
}

/// The work of the instances the batch's turns asked to read, for each job.
pub(super) async fn read_for(
    tx: &Transaction<'_>,
    hub: &str,
    jobs: &[Job],
    standing: &Standing,
) -> Result<Vec<Vec<OrchestrationWorkItem>>, Fail> {
    let mut read: Vec<Vec<OrchestrationWorkItem>> = jobs.iter().map(|_| Vec::new()).collect();
    let wanted = standing.reads(jobs);
    if !wanted.is_empty() {
        for item in read_many(tx, hub, &wanted).await? {
            if let Some(i) = standing.reader(jobs, &item.instance_id) {
                read[i].push(item);
            }
        }
    }
    Ok(read)
}

/// Each job's answer once the batch committed.
pub(super) fn answers(
    standing: Standing,
    held: Vec<Vec<crate::store::ActivityWorkItem>>,
    refused: Vec<Option<StoreError>>,
    read: Vec<Vec<OrchestrationWorkItem>>,
) -> Vec<Answer> {
    standing
        .live
        .into_iter()
        .zip(standing.queued)
        .zip(held)
        .zip(refused)
        .zip(read)
        .map(
            |((((live, queued), held), refused), read)| match (live, queued) {
                (true, false) => Ok(Done {
                    commit: ResultsCommit::Committed(held),
                    read,
                }),
                (true, true) => Ok(ResultsCommit::Queued.into()),
                (false, _) => Err(refused.unwrap_or(StoreError::LeaseLost)),
            },
        )
        .collect()
}
