//! The activity context.

/// The context an `#[activity]` receives: which orchestration called it, and a stable
/// idempotency key for making side effects safe to repeat (activities run at least once).
#[derive(Clone, Debug)]
pub struct ActivityContext {
    pub(crate) instance_id: String,
    pub(crate) execution_id: String,
    pub(crate) name: String,
    pub(crate) task_id: i64,
    pub(crate) attempt: u32,
}

impl ActivityContext {
    /// A context for calling an activity's body directly, e.g. in a unit test.
    pub fn for_test(instance_id: &str) -> Self {
        ActivityContext {
            instance_id: instance_id.to_string(),
            execution_id: "test".to_string(),
            name: "test".to_string(),
            task_id: 0,
            attempt: 1,
        }
    }

    /// The calling orchestration's instance id.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The activity's registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The step of the calling orchestration that scheduled this call.
    pub fn task_id(&self) -> i64 {
        self.task_id
    }

    /// Which delivery of this call this is (1 for the first; more after a crash or lease loss).
    pub fn delivery(&self) -> u32 {
        self.attempt
    }

    /// A key that is the same for every delivery of this one scheduled call, and different for
    /// every other call: pass it to downstream systems to make side effects idempotent.
    pub fn idempotency_key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.instance_id, self.execution_id, self.task_id
        )
    }
}
