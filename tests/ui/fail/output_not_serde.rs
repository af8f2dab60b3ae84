use durable::prelude::*;

pub struct Receipt {
    pub id: u64,
}

#[activity]
async fn ship(_ctx: ActivityContext, id: u64) -> Result<Receipt, Error> {
    Ok(Receipt { id })
}

fn main() {}
