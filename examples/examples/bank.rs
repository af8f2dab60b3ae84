//! Critical sections: 200 concurrent transfers among 10 accounts, and the total never moves.
//!
//! Every account opens with 1,000. The program starts 200 `transfer` orchestrations at once,
//! in both directions between the same pairs, some asking for more than the account holds.
//! Half-way through starting them it also starts an `audit`, which locks all ten accounts and
//! counts: even with transfers in flight it sees the full 10,000. At the end the transfers
//! have either moved money or refused, no account is negative, and the total is unchanged.
//!
//! ```sh
//! cargo run -p durable-examples --example bank
//! ```

use std::time::{Duration, Instant};

use durable::prelude::*;
use durable_examples::bank::{self, Account, account_names, audit, transfer, transfer_mix};

const ACCOUNTS: usize = 10;
const OPENING_BALANCE: i64 = 1_000;
const TRANSFERS: usize = 200;

#[tokio::main]
async fn main() -> Result<(), Error> {
    durable_examples::init_logging();
    let runtime = bank::register(Runtime::builder())
        .store(durable::store::Memory::new())
        .start()
        .await?;
    let client = runtime.client();
    let wait = Duration::from_secs(30);

    let accounts = account_names(ACCOUNTS);
    for name in &accounts {
        client
            .signal_entity::<Account>(name.as_str())
            .deposit(OPENING_BALANCE)
            .await?;
    }
    println!(
        "opened {ACCOUNTS} accounts with {OPENING_BALANCE} each: {} in total",
        OPENING_BALANCE * ACCOUNTS as i64
    );

    let started = Instant::now();
    let mut ids = Vec::new();
    let mut audit_id = None;
    for (n, t) in transfer_mix(&accounts, TRANSFERS, 600)
        .into_iter()
        .enumerate()
    {
        ids.push(client.start(transfer, t).await?);
        if n == TRANSFERS / 2 {
            audit_id = Some(client.start(audit, accounts.clone()).await?);
        }
    }
    println!("started {TRANSFERS} transfers (and one audit half-way through)");

    let (mut moved, mut refused) = (0, 0);
    for id in &ids {
        let status = client.wait_for_completion(id, wait).await?;
        match status.output::<bool>()? {
            true => moved += 1,
            false => refused += 1,
        }
    }
    println!(
        "all {TRANSFERS} finished in {:?}: {moved} moved money, {refused} refused for lack of funds",
        started.elapsed()
    );

    if let Some(id) = audit_id {
        let report: bank::AuditReport = client.wait_for_completion(&id, wait).await?.output()?;
        println!("audit during the transfers: total {}", report.total);
    }
    let id = client.start(audit, accounts.clone()).await?;
    let report: bank::AuditReport = client.wait_for_completion(&id, wait).await?.output()?;
    for (name, balance) in &report.balances {
        println!("  {name} {balance:>6}");
    }
    println!(
        "audit after the transfers: total {} (lowest balance {})",
        report.total,
        report.lowest().unwrap_or_default()
    );

    // An overdraft is refused and changes nothing.
    let (from, to) = (&accounts[0], &accounts[1]);
    let amount = report.balances[from] + 1;
    let id = client
        .start(transfer, bank::Transfer::new(from, to, amount))
        .await?;
    let moved: bool = client.wait_for_completion(&id, wait).await?.output()?;
    println!(
        "overdraft: {from} -> {to}, {amount}: moved = {moved}; balances still {} and {}",
        balance(&client, from).await?,
        balance(&client, to).await?
    );

    runtime.shutdown().await;
    Ok(())
}

/// The committed balance of an account (0 if it was never opened).
async fn balance(client: &Client, name: &str) -> Result<i64, Error> {
    let account = client.read_entity::<Account>(name).await?;
    Ok(account.unwrap_or_default().balance)
}
