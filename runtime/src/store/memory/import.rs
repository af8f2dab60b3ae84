//! Importing an instance: its status and history written as exported, nothing queued.

use super::hub::{Entry, Hub};
use crate::model::InstanceStatus;
use crate::model::history::HistoryEvent;
use crate::store::StoreError;

impl Hub {
    /// Writes an imported instance (see [`Store::import_instance`](crate::store::Store)).
    pub(super) fn import(
        &mut self,
        status: InstanceStatus,
        history: Vec<HistoryEvent>,
        replace: bool,
    ) -> Result<(), StoreError> {
        let id = status.instance_id.clone();
        if self.instances.contains_key(&id) {
            if !replace {
                return Err(StoreError::InstanceAlreadyExists(id));
            }
            self.instances.remove(&id);
            self.leases.remove(&id);
            self.activities.retain(|a| a.task.instance_id != id);
            self.leased_activities
                .retain(|_, l| l.activity.task.instance_id != id);
            self.parked.retain(|p| p.instance_id != id);
        }
        let entry = Entry {
            status: InstanceStatus {
                history: None,
                ..status
            },
            history,
            messages: Vec::new(),
            lock: None,
            left: None,
        };
        self.instances.insert(id, entry);
        Ok(())
    }
}
