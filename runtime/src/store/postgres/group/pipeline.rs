//! A batch written in one round trip: every statement of the batch is sent at once, as if
//! every job could go as it stands (its fence holding, its lease or version current, its
//! activities and consumed messages still there), and the answers are checked before the
//! commit. Almost always they can; when some job cannot, or a statement fails, the transaction
//! is rolled back and the batch goes check by check instead ([`super::batch`]), which answers
//! each job on its own. The database does the same work either way: what this saves is the
//! wait for each statement's answer before the next is sent, about ten per batch.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::super::db::Fail;
use super::super::reads::{READ_MANY, read_many_params, work_items};
use super::super::work::{CREATE, CREATE_ENTITIES, DELIVER, Delivery};
use super::batch::answers;
use super::rows::{
    APPEND_HISTORIES, Activities, CLEAR_HISTORIES, CONSUME, EPOCHS, Histories, INSERT_ACTIVITIES,
    LOCK_PARTITIONS, Standing, Starts, Statuses, TAKE_ACTIVITIES, UPDATE_STATUSES, new_length,
    partitions,
};
use super::{Answer, Attempt, Job, Work};
use crate::store::OrchestrationWorkItem;

/// Whether the batch can go in one round trip: no turn creates sub-orchestrations (each is a
/// statement of its own whose answer decides the next), and every turn is fenced, leased or a
/// result turn.
pub(super) fn fits(jobs: &[Job]) -> bool {
    jobs.iter().all(|job| match job.work.turn() {
        Some(turn) => {
            turn.commit.new_instances.is_empty()
                && (turn.fence.is_some()
                    || turn.lock.is_some()
                    || matches!(job.work, Work::ResultTurn(_)))
        }
        None => true,
    })
}

/// The statements of a batch, in the order they are sent.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Step {
    LockPartitions,
    Epochs,
    Create,
    Take,
    Update,
    Consume,
    ClearHistories,
    Append,
    Activities,
    Entities,
    Deliver,
    Read,
}

/// Writes the batch in `tx` in one round trip and commits it; `None` (rolled back) when some
/// job cannot go as it stands or a statement failed: the batch then goes check by check.
pub(super) async fn write(
    tx: Transaction<'_>,
    hub: &str,
    jobs: &[Job],
) -> Result<Option<Vec<Answer>>, Attempt> {
    let standing = Standing::all(jobs);
    let partitions = partitions(jobs);
    let starts = Starts::of(jobs, &standing);
    let tokens = standing.tokens(jobs);
    let statuses = Statuses::of(jobs, &standing)?;
    let consumed = standing.consumed(jobs);
    let resets = standing.resets(jobs);
    let histories = Histories::of(jobs, &standing, None)?;
    let activities = Activities::of(jobs, &standing);
    let messages = standing.messages(jobs);
    let delivery = Delivery::of(&messages)?;
    let wanted = standing.reads(jobs);
    let (read_ids, read_at) = read_many_params(&wanted);

    let hub = &hub;
    let mut steps: Vec<(Step, &str, Vec<&(dyn ToSql + Sync)>)> = Vec::new();
    if !partitions.is_empty() {
        steps.push((
            Step::LockPartitions,
            LOCK_PARTITIONS,
            vec![hub, &partitions],
        ));
        steps.push((Step::Epochs, EPOCHS, vec![hub, &partitions]));
    }
    if !starts.is_empty() {
        steps.push((Step::Create, CREATE, starts.params(hub).to_vec()));
    }
    if !tokens.is_empty() {
        steps.push((Step::Take, TAKE_ACTIVITIES, vec![hub, &tokens]));
    }
    if !statuses.is_empty() {
        steps.push((Step::Update, UPDATE_STATUSES, statuses.params(hub).to_vec()));
    }
    if !consumed.is_empty() {
        steps.push((Step::Consume, CONSUME, vec![hub, &consumed]));
    }
    if !resets.is_empty() {
        steps.push((Step::ClearHistories, CLEAR_HISTORIES, vec![hub, &resets]));
    }
    if !histories.is_empty() {
        steps.push((
            Step::Append,
            APPEND_HISTORIES,
            histories.params(hub).to_vec(),
        ));
    }
    if !activities.is_empty() {
        steps.push((
            Step::Activities,
            INSERT_ACTIVITIES,
            activities.params(hub).to_vec(),
        ));
    }
    if delivery.creates_entities() {
        steps.push((
            Step::Entities,
            CREATE_ENTITIES,
            delivery.entity_params(hub).to_vec(),
        ));
    }
    if !delivery.is_empty() {
        steps.push((Step::Deliver, DELIVER, delivery.params(hub).to_vec()));
    }
    if !wanted.is_empty() {
        steps.push((Step::Read, &READ_MANY, vec![hub, &read_ids, &read_at]));
    }

    // Prepared first (from the connection's cache but the first time), so that the queries
    // below go out in this order.
    let mut statements = Vec::with_capacity(steps.len());
    for (_, sql, _) in &steps {
        statements.push(tx.prepare_cached(sql).await?);
    }
    let sent = steps
        .iter()
        .zip(&statements)
        .map(|((_, _, params), statement)| tx.query(statement, params));
    let results = futures::future::join_all(sent).await;
    let mut answers_of: HashMap<Step, Vec<Row>> = HashMap::new();
    for ((step, _, _), result) in steps.iter().zip(results) {
        match result {
            Ok(rows) => {
                answers_of.insert(*step, rows);
            }
            Err(e) => {
                let fail = Fail::Db(e);
                if super::broken(&fail) {
                    return Err(Attempt::Failed(fail));
                }
                return again(tx).await;
            }
        }
    }
    let got = |step: Step| answers_of.get(&step).map(Vec::as_slice).unwrap_or(&[]);

    if !partitions.is_empty() {
        let epochs: HashMap<i32, i64> = got(Step::Epochs)
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let lost = jobs
            .iter()
            .filter_map(|job| job.work.turn()?.fence)
            .any(|fence| {
                let epoch = epochs.get(&(fence.partition as i32)).map(|&e| e as u64);
                !crate::store::ownership::fence_holds(epoch, &fence)
            });
        if lost {
            return again(tx).await;
        }
    }
    // Every start created anew (not in another's way, not replacing a finished one).
    let created = got(Step::Create)
        .iter()
        .filter(|r| !r.get::<_, bool>(1))
        .count();
    // Every activity result's activity still held, every turn's status updated (its
    // instance left at the history length the turn was computed from, as its history row
    // assumed), every consumed message still there.
    let taken: HashSet<String> = got(Step::Take).iter().map(|r| r.get(0)).collect();
    let updated: HashMap<String, i32> = got(Step::Update)
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut current = true;
    for (_, turn) in standing.turns(jobs) {
        current &= updated.get(&turn.instance_id) == Some(&new_length(turn)?);
    }
    if created != starts.places().count()
        || taken.len() != tokens.iter().collect::<HashSet<_>>().len()
        || !current
        || standing.stale(jobs, got(Step::Consume)).is_some()
    {
        return again(tx).await;
    }
    let missing = if delivery.is_empty() {
        Vec::new()
    } else {
        delivery.missing(&messages, got(Step::Deliver))
    };
    // A client's message to an orchestration that does not exist is refused.
    let refused = jobs
        .iter()
        .any(|job| matches!(&job.work, Work::Message(m) if missing.contains(&m.instance_id)));
    if refused {
        return again(tx).await;
    }
    let mut read: Vec<Vec<OrchestrationWorkItem>> = jobs.iter().map(|_| Vec::new()).collect();
    for item in work_items(got(Step::Read), &wanted)? {
        if let Some(i) = standing.reader(jobs, &item.instance_id) {
            read[i].push(item);
        }
    }

    tx.commit()
        .await
        .map_err(|e| Attempt::Commit(Fail::Db(e)))?;
    let refused = jobs.iter().map(|_| None).collect();
    Ok(Some(answers(standing, activities.held, refused, read)))
}

/// Rolls back what was sent: the batch goes check by check.
async fn again(tx: Transaction<'_>) -> Result<Option<Vec<Answer>>, Attempt> {
    tx.rollback().await?;
    Ok(None)
}
