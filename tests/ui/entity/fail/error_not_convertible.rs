use durable::prelude::*;
use serde::{Deserialize, Serialize};

pub struct Overdrawn;

#[derive(Default, Serialize, Deserialize)]
pub struct Account {
    balance: u64,
}

#[entity]
impl Account {
    pub fn withdraw(&mut self, amount: u64) -> Result<u64, Overdrawn> {
        self.balance = self.balance.checked_sub(amount).ok_or(Overdrawn)?;
        Ok(self.balance)
    }
}

fn main() {}
