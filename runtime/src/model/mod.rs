//! The model: the plain data every other layer speaks — errors, history events, instance
//! status and queries, entity ids and records, retry policies and the clock. No I/O, and no
//! knowledge of stores, replay, contexts or hosts.

pub(crate) mod clock;
pub(crate) mod entity;
pub(crate) mod entity_record;
pub(crate) mod error;
pub(crate) mod future;
pub mod history;
pub(crate) mod ids;
pub(crate) mod retry;
pub(crate) mod status;
pub(crate) mod version;

pub(crate) use clock::real_sleep;
pub use clock::{Clock, ManualClock, SystemClock};
pub use entity::{EntityId, EntityName};
pub use entity_record::{CleanEntityStorageResult, EntityMetadata, EntityQuery, EntityQueryPage};
pub(crate) use entity_record::{Deferred, EntityRecord};
pub use error::{Error, ErrorKind, FailureDetails};
pub use future::{BoxFuture, BoxFutureOf};
pub(crate) use ids::Ids;
pub use retry::RetryPolicy;
pub use status::{
    InstanceId, InstanceQuery, InstanceStatus, PurgeFilter, QueryPage, RuntimeStatus,
};
pub use version::{
    MAX_VERSION_LEN, VersionFailure, VersionMatch, compare_versions, validate_version,
};
