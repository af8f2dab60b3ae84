use durable::prelude::*;

pub struct Order {
    pub id: u64,
}

#[activity]
async fn ship(_ctx: ActivityContext, order: Order) -> Result<u64, Error> {
    Ok(order.id)
}

fn main() {}
