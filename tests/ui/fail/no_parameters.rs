use durable::prelude::*;

#[activity]
async fn ping() -> Result<(), Error> {
    Ok(())
}

fn main() {}
