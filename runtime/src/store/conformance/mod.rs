//! The store conformance suite: the behaviour every [`Store`] must show, for anyone writing a
//! store for another database. The memory, SQLite and PostgreSQL stores run the same checks.
//!
//! # What it checks
//!
//! Each check runs against a fresh, empty store and drives the [`Store`] trait directly, as a
//! host would: creating instances (existing ids, replacing running ones, scheduled starts, when
//! an instance's next hidden message becomes visible),
//! enqueueing messages (entities created by their first message), fetching work under a lease
//! (batching, expiry, renewal, `LeaseLost` for stale tokens), committing turns atomically
//! (history appends, resets and replacements, activities, messages, child instances), the
//! round trip of every history event kind, abandoning, releasing and parking work, the activity
//! queue (and activities a commit holds for its host, results committed with the turn they
//! unblock), partition ownership (claims, epochs, fetching from owned partitions, stale commits
//! refused),
//! instance queries and their paging, instance versions (kept from creation, queried by),
//! purging and entity removal, importing an exported instance, task hubs, idleness, work
//! signals, and large or unusual payloads. A check panics with a message naming the behaviour
//! that differs.
//!
//! # Two clocks
//!
//! Two clocks are involved, as in the runtime. The `now` passed to the store (fetch, park) is
//! orchestration time, which tests drive with a manual clock: the checks use fixed instants in
//! 2030, so a store must compare visibility times with the `now` it is given, never with its
//! own clock. Leases and retry delays (`lease`, `retry_after`) are real durations, measured by
//! the store's own clock; the checks that need one to pass use leases of a few tens of
//! milliseconds and wait a little longer.
//!
//! # Running it
//!
//! A backend's test file generates one `#[test]` per check with
//! [`store_conformance_tests!`], so that failures are reported per behaviour. It takes a
//! [`StoreFactory`]: any closure returning a future of a new, empty `Arc<dyn Store>`, isolated
//! from the others (a new file, schema, database or task hub):
//!
//! ```no_run
//! use std::sync::Arc;
//! use durable::store::{Memory, Store};
//!
//! durable::store_conformance_tests!(|| async { Arc::new(Memory::new()) as Arc<dyn Store> });
//! # fn main() {}
//! ```
//!
//! Or run them all at once with [`run_all`], which runs every check in turn and panics naming
//! every one that failed — handy when the stores need shared set-up and tear-down, such as a
//! database server:
//!
//! ```no_run
//! use std::sync::Arc;
//! use durable::store::{Memory, Store};
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn memory_store_conforms() {
//!     durable::store::conformance::run_all(&|| async {
//!         Arc::new(Memory::new()) as Arc<dyn Store>
//!     })
//!     .await;
//! }
//! # fn main() {}
//! ```
//!
//! Single checks are `pub async fn`s taking the store; [`checks`] lists them all by name, in
//! the order [`run_all`] runs them.
//!
//! [`store_conformance_tests!`]: crate::store_conformance_tests

mod abandon;
mod activities;
mod commit;
mod fetch;
mod handing;
mod history;
mod import;
mod instances;
mod ownership;
mod payloads;
mod pipeline;
mod purge;
mod queries;
mod reads;
mod starts;
mod support;
mod task_hubs;
mod versions;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::store::Store;

pub use abandon::{abandon_orchestration, park_orchestration};
pub use activities::{
    abandon_activity, activity_fifo, activity_lease_expiry, complete_activity, fetch_activities,
    park_activity, renew_activity_lease,
};
pub use commit::{
    commit_keeps_unconsumed_messages, commit_turn_applies_everything, commit_turn_child_conflict,
    commit_turn_history_reset, commit_turn_message_to_new_child, commit_turn_partial_consume,
    commit_turn_replace_history,
};
pub use fetch::{
    fetch_batches_messages, fetch_leases_one_instance, fetch_with_earlier_now, lease_expiry,
    renew_orchestration_lease,
};
pub use handing::commit_turn_handing;
pub use history::history_round_trip;
pub use import::import_instance;
pub use instances::{
    create_existing_instance, create_instance, create_replace_running, enqueue_creates_entity,
    enqueue_missing_instance, next_visible_for, recreate_terminal_instance, scheduled_start,
};
pub use ownership::{
    claim_partitions, fetch_owned_partitions, partition_lease_expiry, stale_epoch_refused,
};
pub use payloads::{large_payloads, unusual_text_round_trip};
pub use pipeline::{
    commit_turn_holding, complete_activities_and_commit, held_activity_lease_expiry,
};
pub use purge::{purge, purge_where, remove_entity};
pub use queries::{
    count_by_status, query_filters, query_invalid_continuation, query_newest_first, query_paging,
};
pub use reads::{
    coming_due, commit_turn_reading, read_orchestrations, read_owned_work, reads_give_way,
};
pub use starts::create_with_turn;
pub use task_hubs::{is_idle, signals, task_hubs};
pub use versions::{instance_version, query_by_version, release_orchestration};

/// Makes fresh, empty stores: every call returns a store isolated from the others (a new file,
/// schema, database or task hub).
///
/// Implemented for closures returning a future of `Arc<dyn Store>`:
/// `|| async { Arc::new(Memory::new()) as Arc<dyn Store> }`.
pub trait StoreFactory: Sync {
    /// A new, empty store.
    fn make(&self) -> impl Future<Output = Arc<dyn Store>> + Send;
}

impl<F, Fut> StoreFactory for F
where
    F: Fn() -> Fut + Sync,
    Fut: Future<Output = Arc<dyn Store>> + Send,
{
    fn make(&self) -> impl Future<Output = Arc<dyn Store>> + Send {
        self()
    }
}

/// One check: runs against a fresh store and panics when the store misbehaves.
pub type Check = fn(Arc<dyn Store>) -> BoxFuture<'static, ()>;

/// Lists every check's name and hands the list to another macro (internal).
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_check_names {
    ($callback:ident ! ( $($args:tt)* )) => {
        $crate::$callback! {
            $($args)*
            create_instance,
            create_existing_instance,
            create_replace_running,
            recreate_terminal_instance,
            scheduled_start,
            next_visible_for,
            enqueue_missing_instance,
            enqueue_creates_entity,
            fetch_leases_one_instance,
            fetch_batches_messages,
            lease_expiry,
            renew_orchestration_lease,
            fetch_with_earlier_now,
            commit_turn_applies_everything,
            commit_turn_message_to_new_child,
            commit_turn_history_reset,
            commit_turn_replace_history,
            commit_turn_partial_consume,
            commit_turn_child_conflict,
            commit_keeps_unconsumed_messages,
            history_round_trip,
            abandon_orchestration,
            park_orchestration,
            activity_fifo,
            fetch_activities,
            complete_activity,
            abandon_activity,
            park_activity,
            activity_lease_expiry,
            renew_activity_lease,
            commit_turn_holding,
            held_activity_lease_expiry,
            complete_activities_and_commit,
            claim_partitions,
            partition_lease_expiry,
            fetch_owned_partitions,
            stale_epoch_refused,
            create_with_turn,
            read_owned_work,
            coming_due,
            commit_turn_reading,
            commit_turn_handing,
            read_orchestrations,
            reads_give_way,
            query_filters,
            query_paging,
            query_newest_first,
            count_by_status,
            query_invalid_continuation,
            purge,
            purge_where,
            remove_entity,
            import_instance,
            task_hubs,
            is_idle,
            signals,
            large_payloads,
            unusual_text_round_trip,
            instance_version,
            query_by_version,
            release_orchestration
        }
    };
}

/// Builds the table of [`checks`] (internal).
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_check_table {
    ($($check:ident),* $(,)?) => {
        vec![$({
            let check: $crate::store::conformance::Check =
                |store| Box::pin($crate::store::conformance::$check(store));
            (stringify!($check), check)
        }),*]
    };
}

/// Generates one `#[test]` per check (internal; use [`store_conformance_tests!`]).
///
/// [`store_conformance_tests!`]: crate::store_conformance_tests
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_test_fns {
    ($factory:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::store::conformance::run_check(
                    &$factory,
                    stringify!($check),
                    $crate::store::conformance::$check,
                );
            }
        )*
    };
}

/// Generates one `#[test]` per store conformance check, each on a fresh store from `factory`
/// (any [`StoreFactory`](crate::store::conformance::StoreFactory), e.g. a closure returning a
/// future of `Arc<dyn Store>`), so that failures are reported per behaviour. Each test runs on
/// its own multi-threaded tokio runtime; the calling crate needs no tokio attributes.
///
/// Needs the `store-conformance` feature. See [`durable::store::conformance`] for what the
/// checks cover.
///
/// ```no_run
/// use std::sync::Arc;
/// use durable::store::{Memory, Store};
///
/// durable::store_conformance_tests!(|| async { Arc::new(Memory::new()) as Arc<dyn Store> });
/// # fn main() {}
/// ```
///
/// [`durable::store::conformance`]: crate::store::conformance
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::__store_conformance_check_names!(__store_conformance_test_fns!($factory;));
    };
}

/// Every check, by name, in the order [`run_all`] runs them.
pub fn checks() -> Vec<(&'static str, Check)> {
    crate::__store_conformance_check_names!(__store_conformance_check_table!())
}

/// Runs every check, each on a fresh store from `factory`, and panics naming every check that
/// failed (each failure's own message is printed as it happens).
pub async fn run_all(factory: &impl StoreFactory) {
    let mut failed = Vec::new();
    for (name, check) in checks() {
        let store = factory.make().await;
        if let Err(panic) = AssertUnwindSafe(check(store)).catch_unwind().await {
            failed.push(format!("  {name}: {}", panic_text(&*panic)));
        }
    }
    if !failed.is_empty() {
        panic!(
            "{} store conformance check(s) failed:\n{}",
            failed.len(),
            failed.join("\n")
        );
    }
}

/// Runs one check on a fresh store from `factory`, on a new multi-threaded tokio runtime, and
/// panics naming the check when it fails. Used by [`store_conformance_tests!`]'s tests.
///
/// [`store_conformance_tests!`]: crate::store_conformance_tests
pub fn run_check<F, Fut>(factory: &impl StoreFactory, name: &str, check: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the check");
    let outcome = runtime.block_on(async {
        let store = factory.make().await;
        AssertUnwindSafe(check(store)).catch_unwind().await
    });
    if let Err(panic) = outcome {
        panic!(
            "store conformance check `{name}` failed: {}",
            panic_text(&*panic)
        );
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}
