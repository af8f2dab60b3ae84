//! Which process owns the file: an exclusive lock on `<file>-owner`, taken by the first claim
//! that holds partitions and kept until the store is dropped. The operating system releases it
//! when the process ends, however it ends, so a host that gets the lock knows that whoever held
//! the partitions before is gone: it takes them, and the activities that process was running,
//! at once instead of waiting for their leases to run out (a host restarted after a crash
//! resumes in milliseconds, not after a lease). A host
//! that does not get the lock waits for the leases as before: another live process owns the
//! file.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::store::StoreError;

/// The lock, once held, and whether the partitions of the processes before were let go.
#[derive(Default)]
pub(super) struct OwnerLock {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    file: Option<File>,
    /// The leases of earlier processes were expired (after the first claim's write).
    forgotten: bool,
}

impl OwnerLock {
    /// Whether this claim should first expire every lease in the file: the lock is held (taken
    /// now if it is free) and the earlier owners' leases were not expired yet. `false` when
    /// another process holds the lock.
    pub(super) fn must_forget(&self, db: &Path) -> Result<bool, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.file.is_none() {
            let path = lock_path(db);
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| {
                    StoreError::Backend(format!(
                        "could not open the owner lock `{}`: {e}",
                        path.display()
                    ))
                })?;
            match file.try_lock() {
                Ok(()) => state.file = Some(file),
                Err(TryLockError::WouldBlock) => return Ok(false),
                Err(TryLockError::Error(e)) => {
                    return Err(StoreError::Backend(format!(
                        "could not lock `{}`: {e}",
                        path.display()
                    )));
                }
            }
        }
        Ok(!state.forgotten)
    }

    /// The earlier owners' leases were expired.
    pub(super) fn forgot(&self) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forgotten = true;
    }
}

/// `<file>-owner`, beside the database and its `-wal` and `-shm`.
fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-owner");
    PathBuf::from(name)
}
