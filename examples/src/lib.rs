//! Runnable examples of every `durable` pattern, one module per pattern.
//!
//! Each module holds the pattern's activities, orchestrators and entities as ordinary `pub`
//! items, plus a `register` function that adds them to a [`RuntimeBuilder`]. The programs
//! under `examples/` run one pattern each (`cargo run -p durable-examples --example chaining`), the
//! `durable-demo` binary hosts them all behind the HTTP management API (and runs them as
//! scenarios with `durable-demo scenarios`), and the integration tests in `durable-tests` drive
//! them on a manual clock.
//!
//! | module | pattern |
//! |---|---|
//! | [`chaining`] | call activities one after the other, feeding nothing but order between them |
//! | [`fan_out_fan_in`] | run one activity per work item in parallel, then combine the results |
//! | [`monitor`] | poll a condition on a durable timer until it holds or a deadline passes |
//! | [`approval`] | wait for a person's decision, with a durable timeout that escalates |
//! | [`eternal_counter`] | a loop that never grows its history, thanks to `continue_as_new` |
//! | [`sub_orchestrations`] | a parent that delegates whole workflows to child orchestrations |
//! | [`retries`] | retry policies: a flaky activity that recovers, and one that never does |
//! | [`aggregator`] | an entity that sums the reports of many concurrent senders, exactly |
//! | [`entity_to_entity`] | an entity that signals another entity when its value crosses a line |
//! | [`bank`] | transfers between account entities inside a critical section (`lock_entities`) |
//! | [`reminders`] | an entity that schedules a signal to itself, delivered at a later time |
//! | [`counter`] | the smallest entity: one number to add to, read and reset |

#![warn(missing_docs)]

use durable::RuntimeBuilder;

pub mod aggregator;
pub mod approval;
pub mod bank;
#[doc(hidden)]
pub mod bench;
pub mod chaining;
pub mod counter;
pub mod entity_to_entity;
pub mod eternal_counter;
pub mod fan_out_fan_in;
pub mod monitor;
pub mod reminders;
pub mod retries;
pub mod sub_orchestrations;

/// Registers the orchestrators, activities and entities of every example module.
///
/// ```
/// use durable::prelude::*;
///
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// let runtime = durable_examples::register_all(Runtime::builder())
///     .store(durable::store::Memory::new())
///     .start()
///     .await?;
/// # runtime.shutdown().await;
/// # Ok(()) }
/// ```
pub fn register_all(builder: RuntimeBuilder) -> RuntimeBuilder {
    let builder = chaining::register(builder);
    let builder = fan_out_fan_in::register(builder);
    let builder = monitor::register(builder);
    let builder = approval::register(builder);
    let builder = eternal_counter::register(builder);
    let builder = sub_orchestrations::register(builder);
    let builder = retries::register(builder);
    let builder = aggregator::register(builder);
    let builder = entity_to_entity::register(builder);
    let builder = bank::register(builder);
    let builder = reminders::register(builder);
    counter::register(builder)
}

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default: warnings only), so the
/// example programs can show the runtime's own logs on request, e.g. `RUST_LOG=durable=debug`.
pub fn init_logging() {
    init_logging_with("warn");
}

/// Like [`init_logging`], with `default` as the filter when `RUST_LOG` is not set (e.g.
/// `"warn,durable=info"`: the runtime's and the examples' info lines, warnings from the rest).
pub fn init_logging_with(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A second call (e.g. from a test harness) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours for a terminal, plain text for a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
