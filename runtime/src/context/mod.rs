//! What user code receives and calls: the orchestration, activity and entity contexts, the
//! proxies generated entity code talks through, and the traits the macros implement.
//!
//! Contexts sit on the replay core (an orchestration context is a handle on its executor's
//! state) and the store's message types (an entity context collects the messages its operation
//! sends); they know nothing of registries, clients or hosts.

pub(crate) mod activity;
pub(crate) mod entity;
pub(crate) mod function;
pub(crate) mod orchestration;

pub use activity::ActivityContext;
pub use entity::{Dispatched, Entity, EntityContext, EntityFunction};
pub use function::{Activity, IntoOutcome, Orchestrator};
pub use orchestration::{
    ContinueAsNewFuture, CriticalSection, EventWait, OrchestrationContext, SubOrchestration, Task,
    Timer,
};
