//! Log lines written with `tracing` inside an orchestrator appear once, not again on every
//! replay. (Its own test binary: it installs a global subscriber.)

use std::io::Write;
use std::sync::{Arc, Mutex};

use durable::prelude::*;
use durable::testing::TestRuntime;
use durable_tests::finished;

#[activity]
async fn step(_ctx: ActivityContext, n: u32) -> Result<u32, Error> {
    Ok(n)
}

#[orchestrator]
async fn chatty(ctx: OrchestrationContext, steps: u32) -> Result<u32, Error> {
    tracing::info!("chatty: started");
    for n in 0..steps {
        ctx.call_activity(step, n).await?;
        tracing::info!("chatty: finished step {n}");
    }
    Ok(steps)
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn orchestrator_logs_are_not_repeated_on_replay() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let rt = TestRuntime::start(
        Runtime::builder()
            .register(chatty)
            .register(step)
            .always_replay(true),
    )
    .await
    .unwrap();
    let id = rt.client().start(chatty, 4).await.unwrap();
    finished(&rt, &id).await;
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("chatty:")).collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].contains("chatty: started"));
    assert!(lines[4].contains("chatty: finished step 3"));
}
