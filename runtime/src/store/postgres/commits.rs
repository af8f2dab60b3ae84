//! The PostgreSQL store's commits of turns, as the `Store` methods call them: a turn (its batch
//! reading the work it gives this host's idle instances), a start with its first turn, and
//! finished activities with the turn they unblock. All go through the group commit, but a
//! start that replaces a running instance.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::listener::Wake;
use super::{Postgres, db, group, turns};
use crate::store::{
    ActivityTask, ActivityWorkItem, InstanceVersion, NewInstance, OrchestrationMessage,
    OrchestrationWorkItem, PartitionLease, ResultsCommit, StoreError, TurnCommit,
};

impl Postgres {
    pub(super) async fn create_started(
        &self,
        instance: NewInstance,
        fence: PartitionLease,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<Option<Vec<ActivityWorkItem>>, StoreError> {
        let wake = Wake {
            orchestrations: commit.sends_messages(),
            activities: !commit.activities.is_empty(),
            instances: true,
        };
        let ready = commit.gives_work_to();
        let held = if instance.replace_running {
            const OP: &str = "starting an instance";
            let mut connection = self.connection(OP).await?;
            let result = turns::create_with_turn(
                self,
                &mut connection,
                instance,
                fence,
                commit,
                run_here,
                lease,
                wake,
            )
            .await;
            self.finish(OP, connection, result)?
        } else {
            let turn = group::TurnJob::new(
                instance.instance_id.clone(),
                None,
                Some(fence),
                commit,
                run_here,
                lease,
                0,
            );
            let start = group::StartJob {
                instance: Box::new(instance),
                turn,
            };
            group::held(group::submit(self, group::Work::Start(start), wake).await?)
        };
        self.signal.keep_ready(ready);
        self.wake(wake);
        Ok(Some(held))
    }

    pub(super) async fn complete_and_commit(
        &self,
        results: Vec<(ActivityWorkItem, OrchestrationMessage)>,
        expected: InstanceVersion,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<ResultsCommit, StoreError> {
        // Either the turn applies (what it sent is new work) or the results go in as messages
        // (new work for the instance): the wake-up covers both.
        let wake = Wake {
            orchestrations: true,
            activities: !commit.activities.is_empty(),
            instances: true,
        };
        let id = expected.instance_id.clone();
        let ready = commit.gives_work_to();
        let job = group::ResultTurnJob {
            results,
            turn: group::TurnJob::new(
                id.clone(),
                None,
                expected.fence,
                commit,
                run_here,
                lease,
                expected.history_len,
            ),
            expected,
        };
        let done = group::submit(self, group::Work::ResultTurn(job), wake)
            .await?
            .commit;
        match &done {
            ResultsCommit::Committed(_) => self.signal.keep_ready(ready),
            ResultsCommit::Queued => self.signal.keep_ready([id]),
        }
        self.wake(wake);
        Ok(done)
    }

    pub(super) async fn commit_reading(
        &self,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
        read: Vec<(String, PartitionLease)>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<ActivityWorkItem>, Vec<OrchestrationWorkItem>), StoreError> {
        let wake = Wake {
            // What the turn sent is new work; so is what came in for its instance meanwhile
            // when the turn held a lease (a read's owner looks at its instance again itself).
            orchestrations: commit.sends_messages() || !item.lock.0.is_empty(),
            activities: !commit.activities.is_empty(),
            instances: true,
        };
        let mut ready = commit.gives_work_to();
        let mut turn = group::TurnJob::new(
            item.instance_id.clone(),
            (!item.lock.0.is_empty()).then(|| item.lock.0.clone()),
            item.fence,
            commit,
            run_here,
            lease,
            item.history_len,
        );
        turn.read = read;
        turn.read_at = db::nanos(now);
        let mut done = group::submit(self, group::Work::Turn(turn), wake).await?;
        let read = std::mem::take(&mut done.read);
        ready.retain(|id| !read.iter().any(|item| item.instance_id == *id));
        self.signal.keep_ready(ready);
        self.wake(wake);
        Ok((group::held(done), read))
    }
}
