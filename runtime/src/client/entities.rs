//! Entities from a client: signals, reads, listings and storage clean-up.

use chrono::{DateTime, Utc};

use super::Client;
use crate::context::entity::{SignalSender, signal_message};
use crate::model::history::{EventKind, HistoryEvent};
use crate::model::{
    BoxFutureOf, CleanEntityStorageResult, EntityId, EntityMetadata, EntityQuery, EntityQueryPage,
    EntityRecord, Error, ErrorKind, InstanceQuery,
};
use crate::store::{OrchestrationMessage, StoreError};

impl Client {
    pub(crate) async fn signal_entity_raw(
        &self,
        id: &EntityId,
        operation: &str,
        input: String,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), Error> {
        if let Some(registry) = &self.registry
            && registry.entity(id.name()).is_none()
        {
            return Err(Error::new(
                ErrorKind::UnknownFunction,
                format!("no entity named `{}` is registered", id.name()),
            ));
        }
        let message = signal_message(id, &operation.to_lowercase(), input, at, self.clock.now());
        self.store
            .enqueue(message)
            .await
            .map_err(StoreError::into_error)
    }

    /// What is known of one entity: its state, lock holder and backlog.
    pub async fn entity_metadata(
        &self,
        id: &EntityId,
        include_state: bool,
    ) -> Result<Option<EntityMetadata>, Error> {
        match self.status(&id.to_string()).await? {
            Some(status) => EntityMetadata::from_status(&status, include_state),
            None => Ok(None),
        }
    }

    /// One page of the entities matching a query, ordered by creation time then id.
    pub async fn list_entities(&self, query: &EntityQuery) -> Result<EntityQueryPage, Error> {
        let prefix = format!(
            "@{}",
            query.name_prefix.as_deref().unwrap_or("").to_lowercase()
        );
        let page = self
            .query(&InstanceQuery {
                instance_id_prefix: Some(prefix),
                page_size: query.page_size,
                continuation_token: query.continuation_token.clone(),
                ..Default::default()
            })
            .await?;
        let mut entities = Vec::new();
        for status in &page.instances {
            if let Some(meta) = EntityMetadata::from_status(status, query.include_state)?
                && (query.include_stateless || meta.has_state)
            {
                entities.push(meta);
            }
        }
        Ok(EntityQueryPage {
            entities,
            continuation_token: page.continuation_token,
        })
    }

    /// Cleans entity storage: removes entities left with no state, no lock and nothing
    /// pending (when `remove_empty`), and releases locks held by orchestrations that no longer
    /// run (when `release_orphaned_locks`).
    pub async fn clean_entity_storage(
        &self,
        remove_empty: bool,
        release_orphaned_locks: bool,
    ) -> Result<CleanEntityStorageResult, Error> {
        let mut result = CleanEntityStorageResult::default();
        let mut query = InstanceQuery {
            instance_id_prefix: Some("@".to_string()),
            ..Default::default()
        };
        loop {
            let page = self.query(&query).await?;
            for status in &page.instances {
                let record = EntityRecord::from_status(status)?;
                if release_orphaned_locks && let Some(holder) = &record.locked_by {
                    let running = self.status(&holder.instance_id).await?.is_some_and(|s| {
                        !s.runtime_status.is_terminal() && s.execution_id == holder.execution_id
                    });
                    if !running {
                        self.store
                            .enqueue(OrchestrationMessage {
                                instance_id: status.instance_id.clone(),
                                execution_id: None,
                                event: HistoryEvent::new(
                                    self.clock.now(),
                                    EventKind::EntityUnlockSent {
                                        lock_set: vec![status.instance_id.clone()],
                                        caller: Some(holder.clone()),
                                    },
                                ),
                                visible_at: None,
                            })
                            .await
                            .map_err(StoreError::into_error)?;
                        result.orphaned_locks_released += 1;
                    }
                }
                if remove_empty
                    && record.is_empty()
                    && self
                        .store
                        .remove_entity(&status.instance_id, status.last_updated_at)
                        .await
                        .map_err(StoreError::into_error)?
                {
                    result.empty_entities_removed += 1;
                }
            }
            match page.continuation_token {
                Some(token) => query.continuation_token = Some(token),
                None => return Ok(result),
            }
        }
    }
}

impl SignalSender for Client {
    fn send_signal<'a>(
        &'a self,
        id: &'a EntityId,
        operation: &'a str,
        input: String,
        at: Option<DateTime<Utc>>,
    ) -> BoxFutureOf<'a, Result<(), Error>> {
        Box::pin(self.signal_entity_raw(id, operation, input, at))
    }
}
