//! What the host and the test kit read from an executor: who it runs, the locks it holds, where
//! replay diverged and the steps its history does not record.

use super::executor::{Divergence, Executor};
use crate::model::history::ParentInstance;

impl Executor {
    /// Where replay first found the code diverging from the history, if it did.
    pub fn divergence(&self) -> Option<&Divergence> {
        self.divergence.as_ref()
    }

    /// The steps the code has taken that the history does not record (yet), in order: each
    /// step's id, what it does ("calls activity `x` with input `1`") and its call site.
    pub fn unrecorded_steps(&self) -> Vec<(i64, String, String)> {
        let st = self.shared.lock();
        st.pending
            .iter()
            .map(|(id, p)| (*id, p.action.describe(), p.location.to_string()))
            .collect()
    }
}

/// Who an executor is running: its orchestrator's name, execution and parent.
#[derive(Clone, Debug)]
pub struct ExecutionInfo {
    /// The orchestrator's name.
    pub name: String,
    /// The execution id.
    pub execution_id: String,
    /// The parent, for a sub-orchestration.
    pub parent: Option<ParentInstance>,
}

impl Executor {
    /// The critical section this orchestration holds or is acquiring: its id and entities.
    /// Released by the host when the execution ends in any way.
    pub fn held_locks(&self) -> Option<(i64, Vec<String>)> {
        let st = self.shared.lock();
        st.critical.as_ref().map(|c| (c.id, c.lock_set.clone()))
    }

    /// The orchestrator, execution and parent this executor is running.
    pub fn info(&self) -> ExecutionInfo {
        let st = self.shared.lock();
        ExecutionInfo {
            name: st.name.clone(),
            execution_id: st.execution_id.clone(),
            parent: st.parent.clone(),
        }
    }
}
