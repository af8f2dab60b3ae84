//! **Critical section**: move money between two accounts so that nobody ever sees it in
//! flight, missing, or doubled.
//!
//! Each [`Account`] is an entity (key: the account name). One entity alone is safe, since it
//! runs one operation at a time, but a transfer touches two, and between "take 30 from alice"
//! and "give 30 to bob" another transfer could read alice's balance and spend the same money.
//!
//! [`transfer`] therefore opens a critical section with `ctx.lock_entities([...])` over both
//! accounts first. While the section is open the two accounts run only this orchestration's
//! operations and queue everyone else's; the orchestration checks the balance, withdraws and
//! deposits, and the section closes when the guard is dropped (or the orchestration ends, in
//! any way). Locks are always taken in one global order, so two transfers in opposite
//! directions cannot deadlock, and the lock itself is durable: a host crash in the middle does
//! not release it early.
//!
//! [`audit`] locks every account it is given to read a consistent snapshot: no transfer is
//! half-done while it counts, so the total it reports is the real one.
//!
//! ```text
//! transfer(alice → bob, 30):
//!   lock [alice, bob] ──► balance(alice) ≥ 30 ? ──yes──► withdraw(alice, 30) ──► deposit(bob, 30) ──► true
//!                                              └─no───► false (nothing changes)
//!   (unlock when the guard drops)
//! ```

use std::collections::BTreeMap;

use durable::RuntimeBuilder;
use durable::prelude::*;
use serde::{Deserialize, Serialize};

/// A bank account; the entity key is the account's name. Amounts are whole cents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The balance; never negative.
    pub balance: i64,
}

#[entity]
impl Account {
    /// Adds `amount` (which must be positive) and returns the new balance.
    pub fn deposit(&mut self, amount: i64) -> Result<i64, Error> {
        if amount <= 0 {
            return Err(Error::msg(format!(
                "a deposit must be positive, not {amount}"
            )));
        }
        self.balance += amount;
        Ok(self.balance)
    }

    /// Takes `amount` (which must be positive) out and returns the new balance. Refuses, with
    /// an error and no change, when the balance does not cover it.
    pub fn withdraw(&mut self, amount: i64) -> Result<i64, Error> {
        if amount <= 0 {
            return Err(Error::msg(format!(
                "a withdrawal must be positive, not {amount}"
            )));
        }
        if amount > self.balance {
            return Err(Error::msg(format!(
                "insufficient funds: the balance is {}, the withdrawal {amount}",
                self.balance
            )));
        }
        self.balance -= amount;
        Ok(self.balance)
    }

    /// The current balance.
    pub fn balance(&self) -> i64 {
        self.balance
    }
}

/// A request to move `amount` from one account to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The account to take the money from.
    pub from: String,
    /// The account to give it to.
    pub to: String,
    /// How much; must be positive.
    pub amount: i64,
}

impl Transfer {
    /// A transfer of `amount` from `from` to `to`.
    pub fn new(from: impl Into<String>, to: impl Into<String>, amount: i64) -> Self {
        Transfer {
            from: from.into(),
            to: to.into(),
            amount,
        }
    }
}

/// Moves `t.amount` from `t.from` to `t.to` inside a critical section over both accounts.
/// Returns `true` when the money moved, `false` when `t.from` could not cover it (then nothing
/// changes). Fails on a malformed request: a non-positive amount, or the same account twice.
#[orchestrator]
pub async fn transfer(ctx: OrchestrationContext, t: Transfer) -> Result<bool, Error> {
    if t.amount <= 0 {
        return Err(Error::msg(format!(
            "a transfer must move a positive amount, not {}",
            t.amount
        )));
    }
    if t.from == t.to {
        return Err(Error::msg(format!(
            "a transfer needs two different accounts, got `{}` twice",
            t.from
        )));
    }

    let _section = ctx
        .lock_entities([
            EntityId::of::<Account>(t.from.clone()),
            EntityId::of::<Account>(t.to.clone()),
        ])
        .await?;
    // Nobody else can touch either account until `_section` drops, so the balance read here
    // still holds when the withdrawal runs.
    let available = ctx.call_entity::<Account>(t.from.clone()).balance().await?;
    if available < t.amount {
        return Ok(false);
    }
    ctx.call_entity::<Account>(t.from.clone())
        .withdraw(t.amount)
        .await?;
    ctx.call_entity::<Account>(t.to.clone())
        .deposit(t.amount)
        .await?;
    Ok(true)
}

/// What [`audit`] saw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Each account's balance, by name.
    pub balances: BTreeMap<String, i64>,
    /// The sum of the balances.
    pub total: i64,
}

impl AuditReport {
    /// The lowest balance seen (`None` for an audit of no accounts).
    pub fn lowest(&self) -> Option<i64> {
        self.balances.values().copied().min()
    }
}

/// Locks all `accounts` at once and reads their balances in parallel: a snapshot in which no
/// transfer is half-done.
#[orchestrator]
pub async fn audit(ctx: OrchestrationContext, accounts: Vec<String>) -> Result<AuditReport, Error> {
    let mut report = AuditReport::default();
    if accounts.is_empty() {
        return Ok(report);
    }
    let ids = accounts
        .iter()
        .map(|name| EntityId::of::<Account>(name.clone()));
    let _section = ctx.lock_entities(ids).await?;
    let reads = accounts
        .iter()
        .map(|name| ctx.call_entity::<Account>(name.clone()).balance());
    let balances = ctx.when_all(reads).await?;
    report.total = balances.iter().sum();
    report.balances = accounts.into_iter().zip(balances).collect();
    Ok(report)
}

/// The names of `count` accounts: `account-00`, `account-01`, …
pub fn account_names(count: usize) -> Vec<String> {
    (0..count).map(|n| format!("account-{n:02}")).collect()
}

/// A reproducible mix of `count` transfers among `accounts` (at least two), of 1 to
/// `max_amount` each. Every transfer names two different accounts; the pairs and amounts vary
/// so that transfers cross each other in both directions.
pub fn transfer_mix(accounts: &[String], count: usize, max_amount: i64) -> Vec<Transfer> {
    assert!(accounts.len() >= 2, "a transfer needs two accounts");
    assert!(max_amount >= 1, "amounts start at 1");
    // A small linear congruential generator: the same mix on every run, with no dependency.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |bound: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % bound
    };
    let n = accounts.len() as u64;
    (0..count)
        .map(|_| {
            let from = next(n);
            // Any account but `from`.
            let to = (from + 1 + next(n - 1)) % n;
            let amount = 1 + next(max_amount as u64) as i64;
            Transfer::new(
                accounts[from as usize].clone(),
                accounts[to as usize].clone(),
                amount,
            )
        })
        .collect()
}

/// Registers the [`Account`] entity, [`transfer`] and [`audit`].
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
        .register_entity::<Account>()
        .register(transfer)
        .register(audit)
}
