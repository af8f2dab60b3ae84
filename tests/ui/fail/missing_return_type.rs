use durable::prelude::*;

#[activity]
async fn log(_ctx: ActivityContext, line: String) {
    println!("{line}");
}

fn main() {}
