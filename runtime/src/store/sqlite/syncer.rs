//! Making the writer's group commits durable off its path (pipelined persistence).
//!
//! With [`Durability::Full`], the writer commits each group without waiting for the disk (its
//! connection runs `synchronous = NORMAL`, under which SQLite still syncs around every
//! checkpoint), and hands the group's answers to this thread. The thread syncs the write-ahead
//! log, which makes every group committed before the sync began durable, and only then answers
//! their writes. Meanwhile the writer goes on with the next group: a group's statements run
//! while the one before it reaches the disk, and one sync covers all the groups that committed
//! while the previous sync ran.
//!
//! Nothing is acknowledged before it is durable: a write's caller hears back after the sync,
//! and a read through the store waits, before it answers, for the sync of every group it may
//! have seen ([`Marks::wait_synced`]). Should a sync fail, what the disk holds is unknown: the
//! writes waiting for it fail, and so does every write and read after it, until the store is
//! opened again.
//!
//! [`Durability::Full`]: super::Durability::Full

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, mpsc};

use tokio::sync::watch;

use crate::store::StoreError;

/// Answers a group's writes once the group is durable (or with the error that left it not
/// known to be).
pub(super) type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;

/// How far the groups have come: committed by the writer, and synced to the disk.
pub(super) struct Marks {
    /// Groups committed so far.
    committed: AtomicU64,
    /// Groups durable so far.
    synced: watch::Sender<u64>,
    /// Why a sync failed, once one did.
    failed: OnceLock<String>,
    /// Signalled after each sync, for the writer waiting to begin a group.
    progress: (Mutex<()>, Condvar),
}

impl Marks {
    /// Waits until every group committed by now is durable: what a read just saw may be
    /// answered then.
    pub(super) async fn wait_synced(&self) -> Result<(), StoreError> {
        let committed = self.committed.load(Ordering::Acquire);
        let mut synced = self.synced.subscribe();
        let _ = synced
            .wait_for(|synced| *synced >= committed || self.failed.get().is_some())
            .await;
        self.check()
    }

    /// Blocks the writer while a group waits for a sync that another group's sync keeps
    /// from starting: the next group then takes the writes that come meanwhile, and both are
    /// synced together, instead of a group committing for every few writes (each commit
    /// writes the pages it touched again).
    fn wait_for_room(&self) {
        let (lock, progress) = &self.progress;
        let mut guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        while self.committed.load(Ordering::Acquire) >= *self.synced.borrow() + 2
            && self.failed.get().is_none()
        {
            guard = progress.wait(guard).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Refuses once a sync failed.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        match self.failed.get() {
            None => Ok(()),
            Some(e) => Err(StoreError::Backend(format!(
                "the store's file could not be synced to disk ({e}); open the store again"
            ))),
        }
    }
}

/// A group committed and waiting for its sync.
struct Group {
    number: u64,
    answers: Vec<Answer>,
}

/// The thread that syncs the write-ahead log. Dropping it lets the thread sync and answer the
/// groups already handed to it before the drop returns.
pub(super) struct Syncer {
    groups: Option<mpsc::Sender<Group>>,
    thread: Option<std::thread::JoinHandle<()>>,
    marks: Arc<Marks>,
}

impl Syncer {
    /// Starts the thread on the write-ahead log of the database at `path`.
    pub(super) fn start(path: &Path) -> Result<Syncer, StoreError> {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = File::options()
            .read(true)
            .write(true)
            .open(&wal)
            .map_err(|e| {
                StoreError::Backend(format!(
                    "cannot open the write-ahead log `{}`: {e}",
                    Path::new(&wal).display()
                ))
            })?;
        // What the store's migrations wrote, before anything is answered.
        wal.sync_data()
            .map_err(|e| StoreError::Backend(format!("cannot sync the write-ahead log: {e}")))?;
        Syncer::on(wal)
    }

    /// Starts the thread syncing `wal`.
    fn on(wal: File) -> Result<Syncer, StoreError> {
        let marks = Arc::new(Marks {
            committed: AtomicU64::new(0),
            synced: watch::Sender::new(0),
            failed: OnceLock::new(),
            progress: (Mutex::new(()), Condvar::new()),
        });
        let (groups, rx) = mpsc::channel();
        let shared = marks.clone();
        let thread = std::thread::Builder::new()
            .name("durable-sqlite-sync".into())
            .spawn(move || run(wal, rx, &shared))
            .map_err(|e| StoreError::Backend(format!("cannot start the sync thread: {e}")))?;
        Ok(Syncer {
            groups: Some(groups),
            thread: Some(thread),
            marks,
        })
    }

    /// The marks reads wait on.
    pub(super) fn marks(&self) -> Arc<Marks> {
        self.marks.clone()
    }

    /// Hands a group the writer just committed over, to be answered once durable.
    pub(super) fn committed(&self, answers: Vec<Answer>) {
        let number = self.marks.committed.fetch_add(1, Ordering::AcqRel) + 1;
        let group = Group { number, answers };
        if let Some(Err(mpsc::SendError(group))) = self.groups.as_ref().map(|g| g.send(group)) {
            // The thread is gone (it only ends when dropped): nothing is known durable.
            for answer in group.answers {
                answer(Err("the sync thread has stopped".into()));
            }
        }
    }

    /// Refuses once a sync failed.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        self.marks.check()
    }

    /// Waits, before the writer begins a group, while two groups wait for syncs: one being
    /// synced, the next waiting for it (see [`Marks::wait_for_room`]).
    pub(super) fn wait_for_room(&self) {
        self.marks.wait_for_room();
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        drop(self.groups.take());
        super::writer::join_unless_current(self.thread.take());
    }
}

fn run(wal: File, groups: mpsc::Receiver<Group>, marks: &Marks) {
    while let Ok(first) = groups.recv() {
        let mut batch = vec![first];
        batch.extend(groups.try_iter());
        let last = batch.last().map_or(0, |g| g.number);
        let synced = match marks.failed.get() {
            Some(e) => Err(e.clone()),
            None => wal.sync_data().map_err(|e| e.to_string()),
        };
        match &synced {
            Ok(()) => {
                marks.synced.send_replace(last);
            }
            Err(e) => {
                if marks.failed.set(e.clone()).is_ok() {
                    tracing::error!(error = ?e, "syncing the SQLite write-ahead log failed; the store refuses every write and read from now on");
                }
                marks.synced.send_modify(|_| {});
            }
        }
        {
            let (lock, progress) = &marks.progress;
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            progress.notify_all();
        }
        let answer = synced.map_err(|e| format!("the write-ahead log could not be synced: {e}"));
        for group in batch {
            for reply in group.answers {
                reply(answer.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn answer() -> (Answer, std::sync::mpsc::Receiver<Result<(), String>>) {
        let (tx, rx) = std::sync::mpsc::channel();
        (Box::new(move |r| tx.send(r).unwrap()), rx)
    }

    /// A group is answered once synced, and a read waits for the groups committed before it
    /// ended.
    #[tokio::test]
    async fn groups_are_answered_once_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(format!("{}-wal", path.display()), b"frames").unwrap();
        let syncer = Syncer::start(&path).unwrap();
        let (first, answered) = answer();
        syncer.committed(vec![first]);
        let marks = syncer.marks();
        tokio::time::timeout(Duration::from_secs(10), marks.wait_synced())
            .await
            .expect("the sync comes")
            .unwrap();
        assert_eq!(*marks.synced.borrow(), 1);
        assert_eq!(answered.recv().unwrap(), Ok(()));
    }

    /// A sync that fails leaves what the disk holds unknown: the groups waiting for it fail,
    /// and so does every read and write after it.
    #[tokio::test]
    async fn a_failed_sync_fails_the_groups_and_everything_after() {
        // A pipe cannot be synced.
        let (_reader, writer) = std::io::pipe().unwrap();
        let syncer = Syncer::on(File::from(std::os::fd::OwnedFd::from(writer))).unwrap();
        let (first, answered) = answer();
        syncer.committed(vec![first]);
        let failed = answered.recv().unwrap();
        assert!(failed.is_err(), "{failed:?}");
        let marks = syncer.marks();
        let read = tokio::time::timeout(Duration::from_secs(10), marks.wait_synced())
            .await
            .expect("a read does not wait for a sync that failed");
        assert!(read.is_err(), "{read:?}");
        assert!(syncer.check().is_err(), "writes are refused");
        let (second, answered) = answer();
        syncer.committed(vec![second]);
        assert!(answered.recv().unwrap().is_err());
    }
}
