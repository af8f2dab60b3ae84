use std::collections::{HashMap, HashSet};

use durable::prelude::*;

#[activity]
async fn notify(_ctx: ActivityContext, user: String) -> Result<(), Error> {
    let _ = user;
    Ok(())
}

#[orchestrator]
async fn notify_all(ctx: OrchestrationContext, users: Vec<String>) -> Result<(), Error> {
    let mut sent: HashMap<String, bool> = HashMap::new();
    let unique = users.into_iter().collect::<HashSet<_>>();
    for user in unique {
        ctx.call_activity(notify, user.clone()).await?;
        sent.insert(user, true);
    }
    Ok(())
}

fn main() {
    let _ = Runtime::builder().register(notify).register(notify_all);
}
