//! **Aggregator**: many senders report into one piece of state, and nothing is lost or counted
//! twice.
//!
//! Each web server in a fleet sees some page views and reports them, often at the same moment
//! as the others. Adding them up in a database row would need a transaction per report; here
//! every page is a [`PageViews`] entity instead, addressed by the page's path
//! (`@pageviews@/pricing`), and each report is a one-way signal:
//! `client.signal_entity::<PageViews>("/pricing").record(3)`.
//!
//! The entity runs its operations strictly one at a time, so concurrent signals never race:
//! they queue, are applied in a batch with a single commit, and the stored total is exact.
//! Senders do not wait for the entity to run; the signal resolves once it is durably queued.
//!
//! Reading is done two ways: a client reads the last committed state with
//! `client.read_entity::<PageViews>(path)`, and an orchestration calls the entity two-way.
//! [`rank_pages`] calls several pages in parallel and ranks them by views.
//!
//! ```text
//! server A ──record(3)──┐
//! server B ──record(1)──┼──► @pageviews@/pricing  (one operation at a time) ──► views: exact
//! server C ──record(7)──┘
//! ```

use durable::RuntimeBuilder;
use durable::prelude::*;
use serde::{Deserialize, Serialize};

/// The view statistics of one page; the entity's key is the page's path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageViews {
    /// Views recorded since the page was created or last reset.
    pub views: u64,
    /// How many reports were applied (one per `record` signal).
    pub reports: u64,
}

#[entity]
impl PageViews {
    /// Adds a report of `views` views (a server flushing its local count).
    pub fn record(&mut self, views: u64) {
        self.views += views;
        self.reports += 1;
    }

    /// The number of views recorded so far.
    pub fn total(&self) -> u64 {
        self.views
    }

    /// Starts counting again from zero (e.g. at the start of a reporting period).
    pub fn reset(&mut self) {
        *self = PageViews::default();
    }
}

/// One page and its view count, as [`rank_pages`] returns them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageTotal {
    /// The page's path (the entity's key).
    pub page: String,
    /// Its views.
    pub views: u64,
}

/// Reads the totals of `pages` in parallel (one two-way entity call each) and returns them
/// ranked, most viewed first; ties keep the order the pages were given in. A page nobody
/// reported on counts as zero views (reading does not create it).
#[orchestrator]
pub async fn rank_pages(
    ctx: OrchestrationContext,
    pages: Vec<String>,
) -> Result<Vec<PageTotal>, Error> {
    let reads = pages
        .iter()
        .map(|page| ctx.call_entity::<PageViews>(page.clone()).total());
    let totals = ctx.when_all(reads).await?;
    let mut ranked: Vec<PageTotal> = pages
        .into_iter()
        .zip(totals)
        .map(|(page, views)| PageTotal { page, views })
        .collect();
    // A stable sort, so equal totals stay in input order.
    ranked.sort_by_key(|p| std::cmp::Reverse(p.views));
    Ok(ranked)
}

/// Registers the [`PageViews`] entity and [`rank_pages`].
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder.register_entity::<PageViews>().register(rank_pages)
}
