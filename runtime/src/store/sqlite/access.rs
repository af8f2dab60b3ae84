//! How the SQLite store reaches its file: writes go to the single writer thread (see
//! `writer.rs`), reads to a small pool of reader connections on the blocking pool.

use rusqlite::Connection;

use super::ops::connect;
use super::{READER_POOL, Sqlite};
use crate::store::{CommitState, OrchestrationWorkItem, StoreError};

impl Sqlite {
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &str) -> Result<T, StoreError> + Send + 'static,
    {
        let hub = self.hub.clone();
        self.inner.writer.write(move |conn| f(conn, &hub)).await
    }

    /// A write of `item` (see [`Sqlite::write`]): it runs only if the commit the item was read
    /// in, if any, was applied (see [`OrchestrationWorkItem::read_in`]).
    pub(super) async fn write_item<T, F>(
        &self,
        item: &OrchestrationWorkItem,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &str) -> Result<T, StoreError> + Send + 'static,
    {
        let hub = self.hub.clone();
        self.inner
            .writer
            .write_saved_after(item.read_in.clone(), move |conn| f(conn, &hub))
            .await
    }

    /// A checked write (see [`Sqlite::write_checked`]) that runs only if the transaction
    /// `after` was applied, and learns the state of its own (see [`Writer::write_after`]).
    pub(super) async fn write_after<T, F>(
        &self,
        after: Option<CommitState>,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &str, &CommitState) -> Result<T, StoreError> + Send + 'static,
    {
        let hub = self.hub.clone();
        self.inner
            .writer
            .write_after(after, move |conn, state| f(conn, &hub, state))
            .await
    }

    /// [`Sqlite::write`] without a savepoint: for writes that refuse, when they refuse, before
    /// they change anything (see [`Writer::write_checked`]).
    pub(super) async fn write_checked<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &str) -> Result<T, StoreError> + Send + 'static,
    {
        let hub = self.hub.clone();
        self.inner
            .writer
            .write_checked(move |conn| f(conn, &hub))
            .await
    }

    /// A read that answers only what is durable: it waits for the sync of every group it may
    /// have seen (see `syncer.rs`). Everything a client reads goes this way.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &str) -> Result<T, StoreError> + Send + 'static,
    {
        let read = self.read_work(f).await?;
        if let Some(marks) = self.inner.writer.marks() {
            marks.wait_synced().await?;
        }
        Ok(read)
    }

    /// A read of work for this host's own turns, which may see groups not durable yet: what
    /// a turn does with it is answered only after the turn's own commit, which is synced after
    /// them.
    pub(super) async fn read_work<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &str) -> Result<T, StoreError> + Send + 'static,
    {
        if let Some(marks) = self.inner.writer.marks() {
            marks.check()?;
        }
        let inner = self.inner.clone();
        let hub = self.hub.clone();
        let _slot = self
            .inner
            .read_slots
            .acquire()
            .await
            .map_err(|_| StoreError::Backend("the SQLite readers have stopped".into()))?;
        tokio::task::spawn_blocking(move || {
            let pooled = inner
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => connect(&inner.path, inner.durability)?,
            };
            let result = f(&conn, &hub);
            let mut pool = inner.readers.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < READER_POOL {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("a SQLite read failed: {e}")))?
    }
}
