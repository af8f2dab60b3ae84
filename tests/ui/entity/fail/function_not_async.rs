use durable::prelude::*;

#[entity]
fn tally(ctx: EntityContext) -> Result<(), Error> {
    ctx.set_result(0)
}

fn main() {}
