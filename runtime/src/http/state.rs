//! What every handler shares: the client and the options, and the polling advice it gives.

use std::sync::Arc;

use super::HttpOptions;
use crate::client::Client;

/// How long a poller should wait before asking again, in seconds: `Retry-After` on the `202`
/// of a start, and on the `202` of a status poll (the values Durable Functions sends).
pub(super) const RETRY_AFTER_START: u32 = 10;
pub(super) const RETRY_AFTER_POLL: u32 = 5;

/// The state every handler receives.
#[derive(Clone)]
pub(super) struct AppState {
    pub(super) client: Client,
    pub(super) options: Arc<HttpOptions>,
}
