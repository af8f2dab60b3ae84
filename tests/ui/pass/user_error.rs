//! A function may return its own error type: any `std::error::Error`, or a type with a
//! `From` conversion into `durable::Error`.

use std::fmt;

use durable::prelude::*;

#[derive(Debug)]
struct NotFound(String);

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no record for `{}`", self.0)
    }
}

impl std::error::Error for NotFound {}

#[activity]
async fn lookup(_ctx: ActivityContext, key: String) -> Result<u32, NotFound> {
    Err(NotFound(key))
}

/// Not a `std::error::Error`, but converts into `durable::Error` by hand.
enum Rejected {
    TooLarge(u64),
}

impl From<Rejected> for Error {
    fn from(rejected: Rejected) -> Self {
        match rejected {
            Rejected::TooLarge(n) => Error::msg(format!("{n} is too large")),
        }
    }
}

#[orchestrator]
async fn check(_ctx: OrchestrationContext, n: u64) -> Result<u64, Rejected> {
    if n > 10 {
        Err(Rejected::TooLarge(n))
    } else {
        Ok(n)
    }
}

fn main() {
    let _ = Runtime::builder().register(lookup).register(check);
}
