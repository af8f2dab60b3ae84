//! One batch written in one transaction: the statements, each carrying every job of the batch
//! as arrays, and the checks that refuse a job alone.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::Client;

use super::super::db::{Fail, events_json, execute, failure_json, micros, nanos, rows};
use super::super::work::{CREATE, create, deliver};
use super::{Answer, Attempt, Job, ResultJob, ResultTurnJob, StartJob, TurnJob, Work};
use crate::store::{
    ActivityWorkItem, HistoryWrite, LockToken, NewInstance, OrchestrationMessage, ResultsCommit,
    StoreError,
};

/// Takes the partitions' shared locks in partition order (a claim that moves one waits for
/// the commits in flight).
const LOCK_PARTITIONS: &str = "
SELECT count(pg_advisory_xact_lock_shared(hashtext('durable-partition:' || $1), p))
FROM unnest($2::integer[]) AS p";

/// The partitions' epochs, read after their locks are held.
const EPOCHS: &str =
    "SELECT partition, epoch FROM durable_partitions WHERE hub = $1 AND partition = ANY($2)";

const TAKE_ACTIVITIES: &str =
    "DELETE FROM durable_activities WHERE hub = $1 AND lock_token = ANY($2) RETURNING lock_token";

/// Every turn's new status and history length, with its lease released; no row for a turn
/// whose lease `lock` was lost, or, without one, when another host holds the instance under a
/// live lease, or, for a result turn, when the instance is no longer at the version the turn
/// was computed from (history length, execution, last update).
const UPDATE_STATUSES: &str = "
UPDATE durable_instances AS i SET name = t.name, execution_id = t.execution_id,
    runtime_status = t.runtime_status, input = t.input, output = t.output,
    custom_status = t.custom_status, failure = t.failure::json,
    last_updated_at_ns = t.updated_ns, parent_instance_id = t.parent,
    history_len = CASE WHEN t.reset THEN t.appended ELSE i.history_len + t.appended END,
    lock_token = NULL, lock_expires_at = NULL, left_by = NULL, left_until = NULL
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
        $8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[], $13::bool[],
        $14::integer[], $15::integer[], $16::text[], $17::bigint[])
    AS t(instance_id, lock, name, execution_id, runtime_status, input, output, custom_status,
        failure, updated_ns, parent, reset, appended, expect_len, expect_execution,
        expect_updated)
WHERE i.hub = $1 AND i.instance_id = t.instance_id
  AND (i.lock_token = t.lock
       OR (t.lock IS NULL AND (i.lock_token IS NULL OR i.lock_expires_at <= now())))
  AND (t.expect_len IS NULL
       OR (i.history_len = t.expect_len AND i.execution_id = t.expect_execution
           AND i.last_updated_at_ns = t.expect_updated))
RETURNING i.instance_id, i.history_len";

const CLEAR_HISTORIES: &str =
    "DELETE FROM durable_history WHERE hub = $1 AND instance_id = ANY($2)";

const CLEAR_MESSAGES: &str =
    "DELETE FROM durable_messages WHERE hub = $1 AND instance_id = ANY($2)";

const APPEND_HISTORIES: &str = "
INSERT INTO durable_history (hub, instance_id, seq, event)
SELECT $1, t.instance_id, t.seq, t.event::json
FROM unnest($2::text[], $3::integer[], $4::text[]) AS t(instance_id, seq, event)";

const CONSUME: &str =
    "DELETE FROM durable_messages WHERE hub = $1 AND seq = ANY($2) RETURNING instance_id, seq";

const INSERT_ACTIVITIES: &str = "
INSERT INTO durable_activities (hub, instance_id, execution_id, task_id, name, input,
    lock_token, lock_expires_at, dequeue_count)
SELECT $1, t.instance_id, t.execution_id, t.task_id, t.name, t.input, t.token,
    now() + t.lease * interval '1 microsecond', CASE WHEN t.token IS NULL THEN 0 ELSE 1 END
FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[],
        $8::bigint[])
    WITH ORDINALITY AS t(instance_id, execution_id, task_id, name, input, token, lease, ord)
ORDER BY t.ord";

/// Writes the batch in one transaction; for each job, the activities held for it, or why it
/// was refused (nothing of it written): its lease or fence lost, or, for a start, an instance
/// with its id in the way.
pub(super) async fn write_batch(
    client: &mut Client,
    hub: &str,
    jobs: &[Job],
) -> Result<Vec<Answer>, Attempt> {
    let tx = client.transaction().await?;
    let mut live = vec![true; jobs.len()];
    // Result turns whose results go in as messages instead (their instance moved on, or their
    // fence no longer holds), as `Store::complete_activities_and_commit` does.
    let mut queued = vec![false; jobs.len()];
    // Why a job left out was refused, when not for a lost lease or fence.
    let mut refused: Vec<Option<StoreError>> = jobs.iter().map(|_| None).collect();

    // Fences.
    let mut partitions: Vec<i32> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        if let Some(turn) = job.work.turn() {
            match turn.fence {
                Some(fence) => partitions.push(fence.partition as i32),
                // A result turn's fence is optional (unchecked without one).
                None if turn.lock.is_none() && !matches!(job.work, Work::ResultTurn(_)) => {
                    live[i] = false
                }
                None => {}
            }
        }
    }
    partitions.sort_unstable();
    partitions.dedup();
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
                        Work::ResultTurn(_) => queued[i] = true,
                        _ => live[i] = false,
                    }
                }
            }
        }
    }

    // New instances, unless one with the same id is pending or running.
    let starts: Vec<(usize, &NewInstance)> = jobs
        .iter()
        .enumerate()
        .filter_map(|(i, job)| match &job.work {
            Work::Start(start) if live[i] => Some((i, &*start.instance)),
            _ => None,
        })
        .collect();
    if !starts.is_empty() {
        let statuses: Vec<_> = starts.iter().map(|(_, n)| n.initial_status()).collect();
        let ids: Vec<&str> = statuses.iter().map(|s| s.instance_id.as_str()).collect();
        let names: Vec<&str> = statuses.iter().map(|s| s.name.as_str()).collect();
        let executions: Vec<&str> = statuses.iter().map(|s| s.execution_id.as_str()).collect();
        let runtime: Vec<&str> = statuses.iter().map(|s| s.runtime_status.as_str()).collect();
        let inputs: Vec<Option<&str>> = statuses.iter().map(|s| s.input.as_deref()).collect();
        let created: Vec<i64> = statuses.iter().map(|s| nanos(s.created_at)).collect();
        let parents: Vec<Option<&str>> = statuses
            .iter()
            .map(|s| s.parent_instance_id.as_deref())
            .collect();
        let versions: Vec<Option<&str>> = statuses.iter().map(|s| s.version.as_deref()).collect();
        let made: HashMap<String, bool> = rows(
            &tx,
            CREATE,
            &[
                &hub,
                &ids,
                &names,
                &executions,
                &runtime,
                &inputs,
                &created,
                &parents,
                &versions,
                &false,
            ],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
        let mut replaced = Vec::new();
        for (i, instance) in &starts {
            if let Some(&was_there) = made.get(&instance.instance_id) {
                if was_there {
                    replaced.push(instance.instance_id.as_str());
                }
            } else {
                live[*i] = false;
                refused[*i] = Some(StoreError::InstanceAlreadyExists(
                    instance.instance_id.clone(),
                ));
            }
        }
        if !replaced.is_empty() {
            // A finished instance replaced starts over: no history, no queued messages.
            execute(&tx, CLEAR_HISTORIES, &[&hub, &replaced]).await?;
            execute(&tx, CLEAR_MESSAGES, &[&hub, &replaced]).await?;
        }
    }

    // Activity results: each job's activities must still be held under their tokens.
    let mut tokens: Vec<&str> = results(jobs, &live)
        .map(|(_, r)| r.item.lock.0.as_str())
        .collect();
    tokens.extend(
        result_turns(jobs, &live)
            .flat_map(|(_, r)| r.results.iter().map(|(item, _)| item.lock.0.as_str())),
    );
    if !tokens.is_empty() {
        let taken: HashSet<String> = rows(&tx, TAKE_ACTIVITIES, &[&hub, &tokens])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (i, job) in jobs.iter().enumerate() {
            match &job.work {
                Work::Result(r) if !taken.contains(&r.item.lock.0) => live[i] = false,
                Work::ResultTurn(r) if live[i] => {
                    let held = r
                        .results
                        .iter()
                        .filter(|(item, _)| taken.contains(&item.lock.0))
                        .count();
                    if held == 0 {
                        live[i] = false;
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
    let mut ids = Vec::new();
    let mut locks = Vec::new();
    let mut names = Vec::new();
    let mut executions = Vec::new();
    let mut statuses = Vec::new();
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut customs = Vec::new();
    let mut failures = Vec::new();
    let mut updated_ns = Vec::new();
    let mut parents = Vec::new();
    let mut resets = Vec::new();
    let mut appended = Vec::new();
    let mut expect_lens: Vec<Option<i32>> = Vec::new();
    let mut expect_executions: Vec<Option<&str>> = Vec::new();
    let mut expect_updated: Vec<Option<i64>> = Vec::new();
    for (i, turn) in turns(jobs, &live, &queued) {
        match &jobs[i].work {
            Work::ResultTurn(r) => {
                expect_lens.push(Some(i32::try_from(r.expected.history_len).map_err(
                    |_| Fail::Described("a history longer than 2^31 events".into()),
                )?));
                expect_executions.push(Some(r.expected.execution_id.as_str()));
                expect_updated.push(Some(nanos(r.expected.last_updated_at)));
            }
            _ => {
                expect_lens.push(None);
                expect_executions.push(None);
                expect_updated.push(None);
            }
        }
        let status = &turn.commit.status;
        ids.push(turn.instance_id.as_str());
        locks.push(turn.lock.as_deref());
        names.push(status.name.as_str());
        executions.push(status.execution_id.as_str());
        statuses.push(status.runtime_status.as_str());
        inputs.push(status.input.as_deref());
        outputs.push(status.output.as_deref());
        customs.push(status.custom_status.as_deref());
        failures.push(failure_json(status.failure.as_ref())?);
        updated_ns.push(nanos(status.last_updated_at));
        parents.push(status.parent_instance_id.as_deref());
        let (reset, events) = history_write(&turn.commit.history);
        resets.push(reset);
        appended.push(
            i32::try_from(events.len())
                .map_err(|_| Fail::Described("a turn appended more than 2^31 events".into()))?,
        );
    }
    let mut lengths: HashMap<String, i32> = HashMap::new();
    if !ids.is_empty() {
        let updated = rows(
            &tx,
            UPDATE_STATUSES,
            &[
                &hub,
                &ids,
                &locks,
                &names,
                &executions,
                &statuses,
                &inputs,
                &outputs,
                &customs,
                &failures,
                &updated_ns,
                &parents,
                &resets,
                &appended,
                &expect_lens,
                &expect_executions,
                &expect_updated,
            ],
        )
        .await?;
        lengths = updated.iter().map(|r| (r.get(0), r.get(1))).collect();
    }
    for (i, job) in jobs.iter().enumerate() {
        if let Some(turn) = job.work.turn()
            && live[i]
            && !queued[i]
            && !lengths.contains_key(&turn.instance_id)
        {
            match job.work {
                // Another turn got there first: the results go in as messages.
                Work::ResultTurn(_) => queued[i] = true,
                _ => live[i] = false,
            }
        }
    }

    // Consumed messages: every one must still be there, or the turn is stale.
    let consumed: Vec<i64> = turns(jobs, &live, &queued)
        .flat_map(|(_, t)| t.commit.consumed.iter().map(|&s| s as i64))
        .collect();
    if !consumed.is_empty() {
        let mut removed: HashMap<String, usize> = HashMap::new();
        let mut seqs: HashSet<i64> = HashSet::new();
        for r in rows(&tx, CONSUME, &[&hub, &consumed]).await? {
            *removed.entry(r.get(0)).or_default() += 1;
            seqs.insert(r.get(1));
        }
        let stale = turns(jobs, &live, &queued).find(|(_, t)| {
            let mine = t
                .commit
                .consumed
                .iter()
                .filter(|&&s| seqs.contains(&(s as i64)));
            mine.count() != t.commit.consumed.len()
                || removed.get(&t.instance_id).copied().unwrap_or(0) != t.commit.consumed.len()
        });
        if let Some((i, _)) = stale {
            tx.rollback().await?;
            return Err(Attempt::Stale(i));
        }
    }

    // Histories.
    let resets: Vec<&str> = turns(jobs, &live, &queued)
        .filter(|(_, t)| history_write(&t.commit.history).0)
        .map(|(_, t)| t.instance_id.as_str())
        .collect();
    if !resets.is_empty() {
        execute(&tx, CLEAR_HISTORIES, &[&hub, &resets]).await?;
    }
    let mut history_ids = Vec::new();
    let mut history_seqs = Vec::new();
    let mut history_events = Vec::new();
    for (_, turn) in turns(jobs, &live, &queued) {
        // One row per turn, keyed by the sequence number of its first event.
        let (_, events) = history_write(&turn.commit.history);
        if !events.is_empty() {
            history_ids.push(turn.instance_id.as_str());
            history_seqs.push(lengths[&turn.instance_id] - events.len() as i32);
            history_events.push(events_json(events)?);
        }
    }
    if !history_ids.is_empty() {
        execute(
            &tx,
            APPEND_HISTORIES,
            &[&hub, &history_ids, &history_seqs, &history_events],
        )
        .await?;
    }

    // Activities, queued or held for the committing host.
    let mut held: Vec<Vec<ActivityWorkItem>> = jobs.iter().map(|_| Vec::new()).collect();
    let mut a_ids = Vec::new();
    let mut a_executions = Vec::new();
    let mut a_task_ids = Vec::new();
    let mut a_names = Vec::new();
    let mut a_inputs = Vec::new();
    let mut a_tokens: Vec<Option<String>> = Vec::new();
    let mut a_leases: Vec<Option<i64>> = Vec::new();
    for (i, turn) in turns(jobs, &live, &queued) {
        let queued = turn.commit.activities.iter().map(|t| (t, None));
        let here = turn.run_here.iter().map(|t| {
            let token = uuid::Uuid::new_v4().simple().to_string();
            (t, Some(token))
        });
        for (task, token) in queued.chain(here) {
            a_ids.push(task.instance_id.as_str());
            a_executions.push(task.execution_id.as_str());
            a_task_ids.push(task.task_id);
            a_names.push(task.name.as_str());
            a_inputs.push(task.input.as_str());
            a_leases.push(token.as_ref().map(|_| micros(turn.lease)));
            if let Some(token) = &token {
                held[i].push(ActivityWorkItem {
                    task: task.clone(),
                    lock: LockToken(token.clone()),
                    dequeue_count: 1,
                });
            }
            a_tokens.push(token);
        }
    }
    if !a_ids.is_empty() {
        execute(
            &tx,
            INSERT_ACTIVITIES,
            &[
                &hub,
                &a_ids,
                &a_executions,
                &a_task_ids,
                &a_names,
                &a_inputs,
                &a_tokens,
                &a_leases,
            ],
        )
        .await?;
    }

    // Children first, so that the messages sent to them find them.
    for (_, turn) in turns(jobs, &live, &queued) {
        for child in &turn.commit.new_instances {
            if create(&tx, hub, child).await? {
                deliver(&tx, hub, &[child.start_message()]).await?;
            } else if let Some(response) = child.conflict_response() {
                deliver(&tx, hub, &[response]).await?;
            }
        }
    }
    let mut messages: Vec<OrchestrationMessage> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        if !live[i] {
            continue;
        }
        match &job.work {
            Work::Turn(turn) | Work::Start(StartJob { turn, .. }) => {
                messages.extend(turn.commit.messages.iter().cloned())
            }
            Work::ResultTurn(r) if queued[i] => {
                messages.extend(r.results.iter().map(|(_, response)| response.clone()))
            }
            Work::ResultTurn(r) => messages.extend(r.turn.commit.messages.iter().cloned()),
            Work::Result(result) => messages.push(result.response.clone()),
            Work::Message(message) => messages.push(message.clone()),
        }
    }
    let missing = deliver(&tx, hub, &messages).await?;
    // A client's message to an orchestration that does not exist was not queued: refused.
    for (i, job) in jobs.iter().enumerate() {
        if let Work::Message(message) = &job.work
            && live[i]
            && missing.contains(&message.instance_id)
        {
            live[i] = false;
            refused[i] = Some(StoreError::InstanceNotFound(message.instance_id.clone()));
        }
    }

    tx.commit()
        .await
        .map_err(|e| Attempt::Commit(Fail::Db(e)))?;
    Ok(live
        .into_iter()
        .zip(queued)
        .zip(held)
        .zip(refused)
        .map(|(((live, queued), held), refused)| match (live, queued) {
            (true, false) => Ok(ResultsCommit::Committed(held)),
            (true, true) => Ok(ResultsCommit::Queued),
            (false, _) => Err(refused.unwrap_or(StoreError::LeaseLost)),
        })
        .collect())
}

fn history_write(history: &HistoryWrite) -> (bool, &[crate::model::history::HistoryEvent]) {
    match history {
        HistoryWrite::Reset => (true, &[]),
        HistoryWrite::Replace(events) => (true, events),
        HistoryWrite::Append(events) => (false, events),
    }
}

/// The batch's turns still in it (a result turn's unless its results are `queued` instead),
/// with their places.
fn turns<'a>(
    jobs: &'a [Job],
    live: &'a [bool],
    queued: &'a [bool],
) -> impl Iterator<Item = (usize, &'a TurnJob)> {
    jobs.iter()
        .enumerate()
        .filter_map(|(i, job)| match &job.work {
            Work::Turn(turn) | Work::Start(StartJob { turn, .. }) if live[i] => Some((i, turn)),
            Work::ResultTurn(ResultTurnJob { turn, .. }) if live[i] && !queued[i] => {
                Some((i, turn))
            }
            _ => None,
        })
}

/// The batch's result turns still in it, with their places.
fn result_turns<'a>(
    jobs: &'a [Job],
    live: &'a [bool],
) -> impl Iterator<Item = (usize, &'a ResultTurnJob)> {
    jobs.iter()
        .enumerate()
        .filter_map(|(i, job)| match &job.work {
            Work::ResultTurn(r) if live[i] => Some((i, r)),
            _ => None,
        })
}

/// The batch's activity results still in it, with their places.
fn results<'a>(jobs: &'a [Job], live: &'a [bool]) -> impl Iterator<Item = (usize, &'a ResultJob)> {
    jobs.iter()
        .enumerate()
        .filter_map(|(i, job)| match &job.work {
            Work::Result(result) if live[i] => Some((i, result)),
            _ => None,
        })
}
