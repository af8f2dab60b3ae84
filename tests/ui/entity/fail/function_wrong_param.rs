use durable::prelude::*;

#[entity]
async fn tally(amount: i64) -> Result<(), Error> {
    let _ = amount;
    Ok(())
}

#[entity]
async fn counter(ctx: EntityContext, amount: i64) -> Result<(), Error> {
    ctx.set_result(amount)
}

fn main() {}
