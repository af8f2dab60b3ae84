use durable::prelude::*;

#[entity]
async fn tally(ctx: EntityContext) -> Result<i64, Error> {
    ctx.input::<i64>()
}

fn main() {}
