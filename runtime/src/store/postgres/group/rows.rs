//! A batch's statements and their parameters (arrays over the jobs still in it), shared by the
//! batch written in one round trip ([`super::pipeline`]) and the one written check by check
//! ([`super::batch`]).

use std::collections::HashMap;

use tokio_postgres::types::ToSql;

use super::super::db::{Fail, events_json, failure_json, micros, nanos};
use super::{Job, ResultJob, ResultTurnJob, StartJob, TurnJob, Work};
use crate::model::history::HistoryEvent;
use crate::store::{
    ActivityWorkItem, HistoryWrite, LockToken, NewInstance, OrchestrationMessage, PartitionLease,
};

/// Takes the partitions' shared locks in partition order (a claim that moves one waits for
/// the commits in flight).
pub(super) const LOCK_PARTITIONS: &str = "
SELECT count(pg_advisory_xact_lock_shared(hashtext('durable-partition:' || $1), p))
FROM unnest($2::integer[]) AS p";

/// The partitions' epochs, read after their locks are held.
pub(super) const EPOCHS: &str =
    "SELECT partition, epoch FROM durable_partitions WHERE hub = $1 AND partition = ANY($2)";

pub(super) const TAKE_ACTIVITIES: &str =
    "DELETE FROM durable_activities WHERE hub = $1 AND lock_token = ANY($2) RETURNING lock_token";

/// Every turn's new status and history length, with its lease released; no row for a turn
/// whose lease `lock` was lost, or, without one, when another host holds the instance under a
/// live lease, or, for a result turn, when the instance is no longer at the version the turn
/// was computed from (history length, execution, last update).
pub(super) const UPDATE_STATUSES: &str = "
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

pub(super) const CLEAR_HISTORIES: &str =
    "DELETE FROM durable_history WHERE hub = $1 AND instance_id = ANY($2)";

pub(super) const CLEAR_MESSAGES: &str =
    "DELETE FROM durable_messages WHERE hub = $1 AND instance_id = ANY($2)";

/// One history row per turn, keyed by the sequence number of its first event.
pub(super) const APPEND_HISTORIES: &str = "
INSERT INTO durable_history (hub, instance_id, seq, event)
SELECT $1, t.instance_id, t.seq, t.event::json
FROM unnest($2::text[], $3::integer[], $4::text[]) AS t(instance_id, seq, event)";

pub(super) const CONSUME: &str =
    "DELETE FROM durable_messages WHERE hub = $1 AND seq = ANY($2) RETURNING instance_id, seq";

pub(super) const INSERT_ACTIVITIES: &str = "
INSERT INTO durable_activities (hub, instance_id, execution_id, task_id, name, input,
    lock_token, lock_expires_at, dequeue_count)
SELECT $1, t.instance_id, t.execution_id, t.task_id, t.name, t.input, t.token,
    now() + t.lease * interval '1 microsecond', CASE WHEN t.token IS NULL THEN 0 ELSE 1 END
FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[],
        $8::bigint[])
    WITH ORDINALITY AS t(instance_id, execution_id, task_id, name, input, token, lease, ord)
ORDER BY t.ord";

/// Which jobs of the batch are still in it, and how.
pub(super) struct Standing {
    pub(super) live: Vec<bool>,
    /// Result turns whose results go in as messages instead (their instance moved on, or
    /// their fence no longer holds), as `Store::complete_activities_and_commit` does.
    pub(super) queued: Vec<bool>,
}

impl Standing {
    pub(super) fn all(jobs: &[Job]) -> Standing {
        Standing {
            live: vec![true; jobs.len()],
            queued: vec![false; jobs.len()],
        }
    }

    /// The batch's turns still in it (a result turn's unless its results are queued
    /// instead), with their places.
    pub(super) fn turns<'s, 'a>(
        &'s self,
        jobs: &'a [Job],
    ) -> impl Iterator<Item = (usize, &'a TurnJob)> + use<'s, 'a> {
        jobs.iter()
            .enumerate()
            .filter_map(|(i, job)| match &job.work {
                Work::Turn(turn) | Work::Start(StartJob { turn, .. }) if self.live[i] => {
                    Some((i, turn))
                }
                Work::ResultTurn(ResultTurnJob { turn, .. }) if self.live[i] && !self.queued[i] => {
                    Some((i, turn))
                }
                _ => None,
            })
    }

    /// The batch's starts still in it, with their places.
    pub(super) fn starts<'s, 'a>(
        &'s self,
        jobs: &'a [Job],
    ) -> impl Iterator<Item = (usize, &'a NewInstance)> + use<'s, 'a> {
        jobs.iter()
            .enumerate()
            .filter_map(|(i, job)| match &job.work {
                Work::Start(start) if self.live[i] => Some((i, &*start.instance)),
                _ => None,
            })
    }

    /// The lock tokens of the activities whose results the batch's jobs still in it carry.
    pub(super) fn tokens<'a>(&self, jobs: &'a [Job]) -> Vec<&'a str> {
        let mut tokens = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            match &job.work {
                Work::Result(ResultJob { item, .. }) if self.live[i] => {
                    tokens.push(item.lock.0.as_str())
                }
                Work::ResultTurn(r) if self.live[i] => {
                    tokens.extend(r.results.iter().map(|(item, _)| item.lock.0.as_str()))
                }
                _ => {}
            }
        }
        tokens
    }

    /// The messages consumed by the turns still in the batch.
    pub(super) fn consumed(&self, jobs: &[Job]) -> Vec<i64> {
        self.turns(jobs)
            .flat_map(|(_, t)| t.commit.consumed.iter().map(|&s| s as i64))
            .collect()
    }

    /// The turns that found some of the messages they consume gone, given what [`CONSUME`]
    /// returned.
    pub(super) fn stale(&self, jobs: &[Job], consumed: &[tokio_postgres::Row]) -> Option<usize> {
        let mut removed: HashMap<String, usize> = HashMap::new();
        let mut seqs = std::collections::HashSet::new();
        for r in consumed {
            *removed.entry(r.get(0)).or_default() += 1;
            seqs.insert(r.get::<_, i64>(1));
        }
        self.turns(jobs)
            .find(|(_, t)| {
                let mine = t
                    .commit
                    .consumed
                    .iter()
                    .filter(|&&s| seqs.contains(&(s as i64)));
                mine.count() != t.commit.consumed.len()
                    || removed.get(&t.instance_id).copied().unwrap_or(0) != t.commit.consumed.len()
            })
            .map(|(i, _)| i)
    }

    /// The instances whose histories the turns still in the batch replace.
    pub(super) fn resets<'a>(&self, jobs: &'a [Job]) -> Vec<&'a str> {
        self.turns(jobs)
            .filter(|(_, t)| history_write(&t.commit.history).0)
            .map(|(_, t)| t.instance_id.as_str())
            .collect()
    }

    /// The messages the jobs still in the batch queue.
    pub(super) fn messages(&self, jobs: &[Job]) -> Vec<OrchestrationMessage> {
        let mut messages = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            if !self.live[i] {
                continue;
            }
            match &job.work {
                Work::Turn(turn) | Work::Start(StartJob { turn, .. }) => {
                    messages.extend(turn.commit.messages.iter().cloned())
                }
                Work::ResultTurn(r) if self.queued[i] => {
                    messages.extend(r.results.iter().map(|(_, response)| response.clone()))
                }
                Work::ResultTurn(r) => messages.extend(r.turn.commit.messages.iter().cloned()),
                Work::Result(result) => messages.push(result.response.clone()),
                Work::Message(message) => messages.push(message.clone()),
            }
        }
        messages
    }

    /// The instances to read for the turns still in the batch (with their partitions' leases
    /// and times), and which job asked for each.
    pub(super) fn reads<'a>(&self, jobs: &'a [Job]) -> Vec<(&'a str, PartitionLease, i64)> {
        self.turns(jobs)
            .flat_map(|(_, t)| {
                t.read
                    .iter()
                    .map(|(id, fence)| (id.as_str(), *fence, t.read_at))
            })
            .collect()
    }

    /// The job that asked for instance `id` to be read.
    pub(super) fn reader(&self, jobs: &[Job], id: &str) -> Option<usize> {
        self.turns(jobs)
            .find(|(_, t)| t.read.iter().any(|(r, _)| r == id))
            .map(|(i, _)| i)
    }
}

/// The parameters of [`super::super::work::CREATE`] for the batch's starts.
pub(super) struct Starts {
    places: Vec<usize>,
    ids: Vec<String>,
    names: Vec<String>,
    executions: Vec<String>,
    runtime: Vec<&'static str>,
    inputs: Vec<Option<String>>,
    created: Vec<i64>,
    parents: Vec<Option<String>>,
    versions: Vec<Option<String>>,
}

impl Starts {
    pub(super) fn of(jobs: &[Job], standing: &Standing) -> Starts {
        let mut starts = Starts {
            places: Vec::new(),
            ids: Vec::new(),
            names: Vec::new(),
            executions: Vec::new(),
            runtime: Vec::new(),
            inputs: Vec::new(),
            created: Vec::new(),
            parents: Vec::new(),
            versions: Vec::new(),
        };
        for (i, instance) in standing.starts(jobs) {
            let s = instance.initial_status();
            starts.places.push(i);
            starts.runtime.push(s.runtime_status.as_str());
            starts.created.push(nanos(s.created_at));
            starts.ids.push(s.instance_id);
            starts.names.push(s.name);
            starts.executions.push(s.execution_id);
            starts.inputs.push(s.input);
            starts.parents.push(s.parent_instance_id);
            starts.versions.push(s.version);
        }
        starts
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The starts' places in the batch, with their instances' ids.
    pub(super) fn places(&self) -> impl Iterator<Item = (usize, &str)> {
        self.places
            .iter()
            .zip(&self.ids)
            .map(|(&i, id)| (i, id.as_str()))
    }

    pub(super) fn params<'b>(&'b self, hub: &'b &str) -> [&'b (dyn ToSql + Sync); 10] {
        [
            hub,
            &self.ids,
            &self.names,
            &self.executions,
            &self.runtime,
            &self.inputs,
            &self.created,
            &self.parents,
            &self.versions,
            &false,
        ]
    }
}

/// The parameters of [`UPDATE_STATUSES`] for the batch's turns.
pub(super) struct Statuses<'a> {
    ids: Vec<&'a str>,
    locks: Vec<Option<&'a str>>,
    names: Vec<&'a str>,
    executions: Vec<&'a str>,
    statuses: Vec<&'static str>,
    inputs: Vec<Option<&'a str>>,
    outputs: Vec<Option<&'a str>>,
    customs: Vec<Option<&'a str>>,
    failures: Vec<Option<String>>,
    updated_ns: Vec<i64>,
    parents: Vec<Option<&'a str>>,
    resets: Vec<bool>,
    appended: Vec<i32>,
    expect_lens: Vec<Option<i32>>,
    expect_executions: Vec<Option<&'a str>>,
    expect_updated: Vec<Option<i64>>,
}

impl<'a> Statuses<'a> {
    pub(super) fn of(jobs: &'a [Job], standing: &Standing) -> Result<Statuses<'a>, Fail> {
        let mut s = Statuses {
            ids: Vec::new(),
            locks: Vec::new(),
            names: Vec::new(),
            executions: Vec::new(),
            statuses: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            customs: Vec::new(),
            failures: Vec::new(),
            updated_ns: Vec::new(),
            parents: Vec::new(),
            resets: Vec::new(),
            appended: Vec::new(),
            expect_lens: Vec::new(),
            expect_executions: Vec::new(),
            expect_updated: Vec::new(),
        };
        for (i, turn) in standing.turns(jobs) {
            match &jobs[i].work {
                Work::ResultTurn(r) => {
                    s.expect_lens
                        .push(Some(i32::try_from(r.expected.history_len).map_err(
                            |_| Fail::Described("a history longer than 2^31 events".into()),
                        )?));
                    s.expect_executions
                        .push(Some(r.expected.execution_id.as_str()));
                    s.expect_updated
                        .push(Some(nanos(r.expected.last_updated_at)));
                }
                _ => {
                    s.expect_lens.push(None);
                    s.expect_executions.push(None);
                    s.expect_updated.push(None);
                }
            }
            let status = &turn.commit.status;
            s.ids.push(turn.instance_id.as_str());
            s.locks.push(turn.lock.as_deref());
            s.names.push(status.name.as_str());
            s.executions.push(status.execution_id.as_str());
            s.statuses.push(status.runtime_status.as_str());
            s.inputs.push(status.input.as_deref());
            s.outputs.push(status.output.as_deref());
            s.customs.push(status.custom_status.as_deref());
            s.failures.push(failure_json(status.failure.as_ref())?);
            s.updated_ns.push(nanos(status.last_updated_at));
            s.parents.push(status.parent_instance_id.as_deref());
            let (reset, events) = history_write(&turn.commit.history);
            s.resets.push(reset);
            s.appended.push(appended(events)?);
        }
        Ok(s)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub(super) fn params<'b>(&'b self, hub: &'b &str) -> [&'b (dyn ToSql + Sync); 17] {
        [
            hub,
            &self.ids,
            &self.locks,
            &self.names,
            &self.executions,
            &self.statuses,
            &self.inputs,
            &self.outputs,
            &self.customs,
            &self.failures,
            &self.updated_ns,
            &self.parents,
            &self.resets,
            &self.appended,
            &self.expect_lens,
            &self.expect_executions,
            &self.expect_updated,
        ]
    }
}

fn appended(events: &[HistoryEvent]) -> Result<i32, Fail> {
    i32::try_from(events.len())
        .map_err(|_| Fail::Described("a turn appended more than 2^31 events".into()))
}

fn length(len: usize) -> Result<i32, Fail> {
    i32::try_from(len).map_err(|_| Fail::Described("a history longer than 2^31 events".into()))
}

/// The history length a turn leaves its instance at, when it was computed from the length
/// it carries: what [`UPDATE_STATUSES`] returns for it unless another write came between.
pub(super) fn new_length(turn: &TurnJob) -> Result<i32, Fail> {
    let (reset, events) = history_write(&turn.commit.history);
    let appended = appended(events)?;
    Ok(if reset {
        appended
    } else {
        length(turn.from_len)? + appended
    })
}

/// The parameters of [`APPEND_HISTORIES`]: one row per turn that appends events.
pub(super) struct Histories<'a> {
    ids: Vec<&'a str>,
    seqs: Vec<i32>,
    events: Vec<String>,
}

impl<'a> Histories<'a> {
    /// The rows of the turns still in the batch, each at the history length [`UPDATE_STATUSES`]
    /// returned for its instance (`lengths`), less the events appended; without `lengths`, at
    /// the length its turn was computed from (which that answer is to confirm: see
    /// [`new_length`]).
    pub(super) fn of(
        jobs: &'a [Job],
        standing: &Standing,
        lengths: Option<&HashMap<String, i32>>,
    ) -> Result<Histories<'a>, Fail> {
        let mut h = Histories {
            ids: Vec::new(),
            seqs: Vec::new(),
            events: Vec::new(),
        };
        for (_, turn) in standing.turns(jobs) {
            let (reset, events) = history_write(&turn.commit.history);
            if !events.is_empty() {
                h.ids.push(turn.instance_id.as_str());
                let seq = match lengths.and_then(|l| l.get(&turn.instance_id)) {
                    Some(len) => len - appended(events)?,
                    None if reset => 0,
                    None => length(turn.from_len)?,
                };
                h.seqs.push(seq);
                h.events.push(events_json(events)?);
            }
        }
        Ok(h)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub(super) fn params<'b>(&'b self, hub: &'b &str) -> [&'b (dyn ToSql + Sync); 4] {
        [hub, &self.ids, &self.seqs, &self.events]
    }
}

/// The parameters of [`INSERT_ACTIVITIES`]: the activities the turns queue, and those they
/// hold for the committing host (under new tokens).
pub(super) struct Activities<'a> {
    ids: Vec<&'a str>,
    executions: Vec<&'a str>,
    task_ids: Vec<i64>,
    names: Vec<&'a str>,
    inputs: Vec<&'a str>,
    tokens: Vec<Option<String>>,
    leases: Vec<Option<i64>>,
    /// For each job, the activities held for its host.
    pub(super) held: Vec<Vec<ActivityWorkItem>>,
}

impl<'a> Activities<'a> {
    pub(super) fn of(jobs: &'a [Job], standing: &Standing) -> Activities<'a> {
        let mut a = Activities {
            ids: Vec::new(),
            executions: Vec::new(),
            task_ids: Vec::new(),
            names: Vec::new(),
            inputs: Vec::new(),
            tokens: Vec::new(),
            leases: Vec::new(),
            held: jobs.iter().map(|_| Vec::new()).collect(),
        };
        for (i, turn) in standing.turns(jobs) {
            let queued = turn.commit.activities.iter().map(|t| (t, None));
            let here = turn.run_here.iter().map(|t| {
                let token = uuid::Uuid::new_v4().simple().to_string();
                (t, Some(token))
            });
            for (task, token) in queued.chain(here) {
                a.ids.push(task.instance_id.as_str());
                a.executions.push(task.execution_id.as_str());
                a.task_ids.push(task.task_id);
                a.names.push(task.name.as_str());
                a.inputs.push(task.input.as_str());
                a.leases.push(token.as_ref().map(|_| micros(turn.lease)));
                if let Some(token) = &token {
                    a.held[i].push(ActivityWorkItem {
                        task: task.clone(),
                        lock: LockToken(token.clone()),
                        dequeue_count: 1,
                    });
                }
                a.tokens.push(token);
            }
        }
        a
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub(super) fn params<'b>(&'b self, hub: &'b &str) -> [&'b (dyn ToSql + Sync); 8] {
        [
            hub,
            &self.ids,
            &self.executions,
            &self.task_ids,
            &self.names,
            &self.inputs,
            &self.tokens,
            &self.leases,
        ]
    }
}

/// Whether a turn's history write replaces the history, and the events it writes.
pub(super) fn history_write(history: &HistoryWrite) -> (bool, &[HistoryEvent]) {
    match history {
        HistoryWrite::Reset => (true, &[]),
        HistoryWrite::Replace(events) => (true, events),
        HistoryWrite::Append(events) => (false, events),
    }
}

/// The partitions the fenced turns of the batch write in, in order, once each.
pub(super) fn partitions(jobs: &[Job]) -> Vec<i32> {
    let mut partitions: Vec<i32> = jobs
        .iter()
        .filter_map(|job| job.work.turn()?.fence.map(|f| f.partition as i32))
        .collect();
    partitions.sort_unstable();
    partitions.dedup();
    partitions
}
