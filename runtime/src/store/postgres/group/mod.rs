//! Group commit: turns and activity results that arrive while another batch is being written
//! wait in a queue and are written together, in one transaction of a few statements that each
//! carry the whole batch (arrays), instead of a transaction of about seven statements each.
//!
//! A batch holds one task hub's work and at most one turn per instance. What one job cannot do
//! (a lost lease, a moved fence, messages another turn consumed) is refused for that job
//! alone: a lease or fence found lost before anything of the job was written just leaves the
//! job out; a consumed message found missing after its turn was written rolls the batch back
//! and writes it again without that job. When a statement fails, nothing was applied and each
//! job is written again on its own, so that every caller gets its own answer. When the
//! connection breaks, or the commit itself fails (the outcome then unknown), every job of the
//! batch reports the failure.

mod batch;
mod pipeline;
mod rows;

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::db::Fail;
use super::listener::Wake;
use super::{Postgres, Shared};
use crate::store::{
    ActivityTask, ActivityWorkItem, InstanceVersion, NewInstance, OrchestrationMessage,
    OrchestrationWorkItem, PartitionLease, ResultsCommit, StoreError, TurnCommit,
};

/// Batches written at the same time: one fills while the other is written.
const WRITERS: usize = 2;

/// Jobs in one batch at most.
const MAX_BATCH: usize = 128;

/// A turn to commit.
pub(super) struct TurnJob {
    pub(super) instance_id: String,
    /// The lease the turn holds on its instance; `None` for an item read under its partition's
    /// lease (then `fence` must be set).
    pub(super) lock: Option<String>,
    pub(super) fence: Option<PartitionLease>,
    pub(super) commit: TurnCommit,
    pub(super) run_here: Vec<ActivityTask>,
    pub(super) lease: Duration,
    /// The instance's history length the turn was computed from (0 for a start).
    pub(super) from_len: usize,
    /// Instances of this host's the turn gives work, to read in the batch's transaction once
    /// everything is written (with their partitions' leases), at `read_at` (nanoseconds).
    pub(super) read: Vec<(String, PartitionLease)>,
    pub(super) read_at: i64,
}

impl TurnJob {
    /// A turn that reads nothing with its commit.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        instance_id: String,
        lock: Option<String>,
        fence: Option<PartitionLease>,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
        from_len: usize,
    ) -> TurnJob {
        TurnJob {
            instance_id,
            lock,
            fence,
            commit,
            run_here,
            lease,
            from_len,
            read: Vec::new(),
            read_at: 0,
        }
    }
}

/// A finished activity whose result becomes a message to its instance.
pub(super) struct ResultJob {
    pub(super) item: ActivityWorkItem,
    pub(super) response: OrchestrationMessage,
}

/// Finished activities and the turn their results unblock, computed without a lease: the turn
/// applies only if its instance is still as `expected` (else the results are queued as
/// messages instead).
pub(super) struct ResultTurnJob {
    pub(super) results: Vec<(ActivityWorkItem, OrchestrationMessage)>,
    pub(super) expected: InstanceVersion,
    /// No lease; fenced by `expected.fence`, when set.
    pub(super) turn: TurnJob,
}

/// A new instance written with its first turn (no start message queued).
pub(super) struct StartJob {
    /// Never one that replaces a running instance: such a start takes the way of its own.
    pub(super) instance: Box<NewInstance>,
    /// The first turn: no lease, fenced by the instance's partition.
    pub(super) turn: TurnJob,
}

pub(super) enum Work {
    Turn(TurnJob),
    Start(StartJob),
    Result(ResultJob),
    ResultTurn(ResultTurnJob),
    /// A message a client sends (an event, a signal, a termination): refused with
    /// `InstanceNotFound` when its orchestration does not exist.
    Message(OrchestrationMessage),
}

impl Work {
    fn operation(&self) -> &'static str {
        match self {
            Work::Turn(_) => "committing a turn",
            Work::Start(_) => "starting an instance",
            Work::Result(_) => "completing an activity",
            Work::ResultTurn(_) => "committing a turn with activity results",
            Work::Message(_) => "queueing a message",
        }
    }

    fn turn_instance(&self) -> Option<&str> {
        self.turn().map(|t| t.instance_id.as_str())
    }

    /// The turn to commit, of a turn or a start.
    fn turn(&self) -> Option<&TurnJob> {
        match self {
            Work::Turn(t) => Some(t),
            Work::Start(s) => Some(&s.turn),
            Work::ResultTurn(r) => Some(&r.turn),
            Work::Result(_) | Work::Message(_) => None,
        }
    }
}

/// What a job did: the activities held for its host, or (a result turn only) its results
/// queued as messages instead of its turn; and the work its turn's reads found.
pub(super) type Answer = Result<Done, StoreError>;

/// A job that was written.
pub(super) struct Done {
    pub(super) commit: ResultsCommit,
    /// What [`TurnJob::read`] found: the instances with visible messages, not held elsewhere.
    pub(super) read: Vec<OrchestrationWorkItem>,
}

impl From<ResultsCommit> for Done {
    fn from(commit: ResultsCommit) -> Self {
        Done {
            commit,
            read: Vec::new(),
        }
    }
}

pub(super) struct Job {
    store: Postgres,
    pub(super) work: Work,
    /// What the job's write asks other processes to look at.
    wake: Wake,
    reply: oneshot::Sender<Answer>,
}

/// The queue of jobs waiting for a batch, and the writers' permits.
pub(super) struct Committer {
    queue: Mutex<VecDeque<Job>>,
    writers: Arc<Semaphore>,
    /// Jobs this pool committed, for [`ANALYZE_AFTER`].
    written: AtomicU64,
}

impl Default for Committer {
    fn default() -> Self {
        Committer {
            queue: Mutex::new(VecDeque::new()),
            writers: Arc::new(Semaphore::new(WRITERS)),
            written: AtomicU64::new(0),
        }
    }
}

/// After how many committed jobs the store has the database gather statistics on its tables.
///
/// Tables fresh from the schema's creation have none until autovacuum's first pass (a minute
/// or more after they fill), and without them the planner takes any index that starts with the
/// hub as good as the key: looking up one instance then reads every instance of the hub, and a
/// plan made that way stays cached on the connection. Statistics gathered as the tables first
/// fill (a few milliseconds each time) replace those plans; autovacuum keeps them current after.
const ANALYZE_AFTER: [u64; 3] = [500, 5_000, 50_000];

const ANALYZE: &str =
    "ANALYZE durable_instances, durable_messages, durable_activities, durable_history";

/// Counts `jobs` more committed jobs, and gathers statistics when that crossed a threshold.
fn count_written(store: &Postgres, jobs: usize) {
    let before = store
        .shared
        .committer
        .written
        .fetch_add(jobs as u64, Ordering::Relaxed);
    let after = before + jobs as u64;
    if !ANALYZE_AFTER.iter().any(|&t| before < t && t <= after) {
        return;
    }
    let pool = store.shared.pool.clone();
    tokio::spawn(async move {
        let analyzed = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .batch_execute(ANALYZE)
                .await
                .map_err(|e| super::db::describe_pg(&e))
        };
        if let Err(error) = analyzed.await {
            tracing::debug!(?error, "gathering statistics on durable's tables failed");
        }
    });
}

impl Committer {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next batch: the oldest job, and the jobs after it of the same hub, skipping a
    /// second turn of an instance already in the batch (it waits for the next one).
    fn take(&self) -> Vec<Job> {
        let mut queue = self.queue();
        let Some(first) = queue.pop_front() else {
            return Vec::new();
        };
        let hub = first.store.hub.clone();
        let mut turns: HashSet<String> = first
            .work
            .turn_instance()
            .map(str::to_string)
            .into_iter()
            .collect();
        let mut batch = vec![first];
        let mut rest = VecDeque::with_capacity(queue.len());
        while let Some(job) = queue.pop_front() {
            let fits = batch.len() < MAX_BATCH
                && job.store.hub == hub
                && job
                    .work
                    .turn_instance()
                    .is_none_or(|id| turns.insert(id.to_string()));
            if fits {
                batch.push(job);
            } else {
                rest.push_back(job);
            }
        }
        *queue = rest;
        batch
    }
}

/// The activities a turn or start holds for its host (a result turn may have been queued
/// instead: then none).
pub(super) fn held(done: Done) -> Vec<ActivityWorkItem> {
    match done.commit {
        ResultsCommit::Committed(held) => held,
        ResultsCommit::Queued => Vec::new(),
    }
}

/// Writes `work` in the next batch; its answer once the batch committed.
pub(super) async fn submit(store: &Postgres, work: Work, wake: Wake) -> Answer {
    let (reply, answer) = oneshot::channel();
    let shared = &store.shared;
    shared.committer.queue().push_back(Job {
        store: store.clone(),
        work,
        wake,
        reply,
    });
    if let Ok(permit) = shared.committer.writers.clone().try_acquire_owned() {
        tokio::spawn(drain(shared.clone(), permit));
    }
    answer.await.unwrap_or_else(|_| {
        Err(StoreError::Backend(format!(
            "postgres {}: the batch holding this write was dropped before it finished (the \
             runtime is shutting down); it may or may not have been applied",
            shared.target
        )))
    })
}

/// Writes batches while jobs are queued.
async fn drain(shared: Arc<Shared>, mut permit: OwnedSemaphorePermit) {
    loop {
        let batch = shared.committer.take();
        if batch.is_empty() {
            drop(permit);
            // A job queued after the take found no free writer: take it on.
            if shared.committer.queue().is_empty() {
                return;
            }
            match shared.committer.writers.clone().try_acquire_owned() {
                Ok(p) => permit = p,
                Err(_) => return,
            }
            continue;
        }
        write(batch).await;
    }
}

/// Why a batch was not committed as it stands.
pub(super) enum Attempt {
    /// Job `.0`'s turn found its consumed messages gone after it was written: the batch was
    /// rolled back and goes again without it.
    Stale(usize),
    /// A statement failed: nothing was applied.
    Failed(Fail),
    /// The commit failed: the outcome is unknown.
    Commit(Fail),
}

impl From<Fail> for Attempt {
    fn from(e: Fail) -> Self {
        Attempt::Failed(e)
    }
}

impl From<tokio_postgres::Error> for Attempt {
    fn from(e: tokio_postgres::Error) -> Self {
        Attempt::Failed(Fail::Db(e))
    }
}

fn broken(fail: &Fail) -> bool {
    matches!(fail, Fail::Db(e) if super::db::connection_broken(e))
}

/// Writes one batch and answers each of its jobs.
async fn write(mut jobs: Vec<Job>) {
    let store = jobs[0].store.clone();
    let mut client = match store.shared.pool.get().await {
        Ok(client) => client,
        Err(e) => {
            let why = super::db::describe(&e);
            for job in jobs {
                let fail = Fail::Described(format!("could not get a database connection: {why}"));
                let _ = job
                    .reply
                    .send(Err(fail.report(job.work.operation(), &store.shared.target)));
            }
            return;
        }
    };
    loop {
        match write_batch(&mut client, &store.hub, &jobs).await {
            Ok(answers) => {
                let wake = jobs
                    .iter()
                    .zip(&answers)
                    .filter(|(_, a)| a.is_ok())
                    .fold(Wake::default(), |w, (job, _)| w.or(job.wake));
                store.announce(wake);
                count_written(&store, jobs.len());
                for (job, answer) in jobs.into_iter().zip(answers) {
                    let _ = job.reply.send(answer);
                }
                return;
            }
            Err(Attempt::Stale(i)) => {
                let job = jobs.remove(i);
                let _ = job.reply.send(Err(StoreError::LeaseLost));
                if jobs.is_empty() {
                    return;
                }
            }
            Err(Attempt::Failed(fail)) if !broken(&fail) => {
                drop(client);
                // Nothing was applied: each job goes again in a transaction of its own, so
                // that its caller gets its own answer.
                for job in jobs {
                    one_by_one(job).await;
                }
                return;
            }
            // The connection broke: nothing was applied, and the database may be gone, so
            // every job fails at once rather than each waiting for a connection of its own.
            Err(Attempt::Failed(fail)) | Err(Attempt::Commit(fail)) => {
                let target = store.shared.target.as_str();
                let why = match &fail {
                    Fail::Db(e) => super::db::describe_pg(e),
                    _ => "the commit failed".to_string(),
                };
                if broken(&fail) {
                    drop(deadpool_postgres::Object::take(client));
                }
                for job in jobs {
                    let operation = job.work.operation();
                    let fail = Fail::Described(why.clone());
                    let _ = job.reply.send(Err(fail.report(operation, target)));
                }
                return;
            }
        }
    }
}

/// Writes the batch in one round trip when every job can go as it stands, else check by check.
async fn write_batch(
    client: &mut deadpool_postgres::Client,
    hub: &str,
    jobs: &[Job],
) -> Result<Vec<Answer>, Attempt> {
    if pipeline::fits(jobs)
        && let Some(answers) = pipeline::write(client.transaction().await?, hub, jobs).await?
    {
        return Ok(answers);
    }
    batch::write_batch(client.transaction().await?, hub, jobs).await
}

/// Writes one job in a transaction of its own (after its batch failed) and answers it.
async fn one_by_one(job: Job) {
    let Job {
        store,
        work,
        wake,
        reply,
    } = job;
    let operation = work.operation();
    let mut client = match store.connection(operation).await {
        Ok(client) => client,
        Err(e) => {
            let _ = reply.send(Err(e));
            return;
        }
    };
    let result = match work {
        Work::Turn(turn) => super::turns::commit(&store, &mut client, turn, wake)
            .await
            .map(ResultsCommit::Committed),
        Work::Start(StartJob { instance, turn }) => {
            let fence = turn.fence.expect("a start written with its turn is fenced");
            super::turns::create_with_turn(
                &store,
                &mut client,
                *instance,
                fence,
                turn.commit,
                turn.run_here,
                turn.lease,
                wake,
            )
            .await
            .map(ResultsCommit::Committed)
        }
        Work::Result(result) => {
            super::activities::complete(&store, &mut client, &result.item, result.response)
                .await
                .map(|()| ResultsCommit::Committed(Vec::new()))
        }
        Work::Message(message) => super::work::enqueue(&store, &mut client, message)
            .await
            .map(|()| ResultsCommit::Committed(Vec::new())),
        Work::ResultTurn(job) => super::activities::complete_and_commit(
            &store,
            &mut client,
            job.results,
            job.expected,
            job.turn.commit,
            job.turn.run_here,
            job.turn.lease,
        )
        .await
        .map(|(done, _)| done),
    };
    let _ = reply.send(store.finish(operation, client, result).map(Done::from));
}
