//! Aggregator: a fleet of web servers reports page views at the same time; every view counts
//! exactly once.
//!
//! Twenty simulated servers each send fifty `record` signals, spread over three pages, all
//! concurrently. The program adds up what it sent, lets the host work through the queue, and
//! compares that with what the `PageViews` entities hold. Then `rank_pages` reads the three
//! entities from an orchestration and ranks them.
//!
//! ```sh
//! cargo run -p durable-examples --example aggregator
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use durable::prelude::*;
use durable_examples::aggregator::{self, PageViews, rank_pages};

const PAGES: [&str; 3] = ["/", "/pricing", "/docs"];
const SERVERS: u64 = 20;
const REPORTS_PER_SERVER: u64 = 50;

#[tokio::main]
async fn main() -> Result<(), Error> {
    durable_examples::init_logging();
    let runtime = aggregator::register(Runtime::builder())
        .store(durable::store::Memory::new())
        .start()
        .await?;
    let client = runtime.client();

    // Every server reports concurrently; each report is one signal.
    let started = Instant::now();
    let mut servers = Vec::new();
    for server in 0..SERVERS {
        let client = client.clone();
        servers.push(tokio::spawn(async move {
            let mut sent: BTreeMap<&str, u64> = BTreeMap::new();
            for report in 0..REPORTS_PER_SERVER {
                // Half the reports are for the home page, a third for pricing, the rest docs.
                let page = PAGES[[0, 0, 0, 1, 1, 2][((server + report) % 6) as usize]];
                let views = 1 + (server * 7 + report) % 5;
                client
                    .signal_entity::<PageViews>(page)
                    .record(views)
                    .await?;
                *sent.entry(page).or_default() += views;
            }
            Ok::<_, Error>(sent)
        }));
    }
    let mut sent: BTreeMap<&str, u64> = BTreeMap::new();
    for server in servers {
        let from_one = server.await.map_err(|e| Error::msg(e.to_string()))??;
        for (page, views) in from_one {
            *sent.entry(page).or_default() += views;
        }
    }
    println!(
        "{SERVERS} servers sent {} reports in {:?}",
        SERVERS * REPORTS_PER_SERVER,
        started.elapsed()
    );

    // Let the host apply everything that is queued, then read the committed state.
    runtime.idle().await;
    for page in PAGES {
        let state = client
            .read_entity::<PageViews>(page)
            .await?
            .unwrap_or_default();
        let mark = if state.views == sent[page] {
            "exact"
        } else {
            "WRONG"
        };
        println!(
            "{page:<10} {:>5} views from {:>4} reports (sent {:>5}): {mark}",
            state.views, state.reports, sent[page]
        );
    }

    let pages = PAGES.map(String::from).to_vec();
    let id = client.start(rank_pages, pages).await?;
    let status = client
        .wait_for_completion(&id, Duration::from_secs(10))
        .await?;
    let ranking: Vec<aggregator::PageTotal> = status.output()?;
    let ranking: Vec<String> = ranking
        .iter()
        .map(|p| format!("{} ({})", p.page, p.views))
        .collect();
    println!("rank_pages: {}", ranking.join(" > "));

    runtime.shutdown().await;
    Ok(())
}
