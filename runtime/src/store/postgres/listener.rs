//! Wake-ups across hosts: every write that queues work or changes a status sends a
//! `NOTIFY durable_work` in its transaction, and each store listens on a dedicated connection
//! and raises the in-process [`WorkSignal`] of the task hub named in the payload.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use super::db::describe_pg;
use crate::store::WorkSignal;

/// The channel every store notifies and listens on.
pub(super) const CHANNEL: &str = "durable_work";

/// Hub names longer than this are not sent in payloads (PostgreSQL caps payloads at 8000
/// bytes); a payload without a hub wakes every hub.
const MAX_HUB_IN_PAYLOAD: usize = 1000;

/// How often the listening connection is checked, so a silently dropped connection is noticed.
const HEALTH_CHECK: Duration = Duration::from_secs(30);

/// What a notification says needs attention.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Wake {
    /// Orchestration messages were queued or an instance was released.
    pub orchestrations: bool,
    /// Activities were queued or released.
    pub activities: bool,
    /// An instance's status changed.
    pub instances: bool,
}

impl Wake {
    /// Everything.
    pub const ALL: Wake = Wake {
        orchestrations: true,
        activities: true,
        instances: true,
    };

    /// Raises the signals this asks for.
    pub fn raise(self, signal: &WorkSignal) {
        if self.orchestrations {
            signal.orchestration_work();
        }
        if self.activities {
            signal.activity_work();
        }
        if self.instances {
            signal.instance_changed();
        }
    }

    /// The notification payload for `hub`: the flags, a colon, and the hub.
    pub fn payload(self, hub: &str) -> String {
        let mut payload = String::with_capacity(4 + hub.len());
        for (on, flag) in [
            (self.orchestrations, 'o'),
            (self.activities, 'a'),
            (self.instances, 'i'),
        ] {
            if on {
                payload.push(flag);
            }
        }
        payload.push(':');
        if hub.len() <= MAX_HUB_IN_PAYLOAD {
            payload.push_str(hub);
        } else {
            payload.push('*');
        }
        payload
    }

    fn parse(payload: &str) -> (Wake, Option<&str>) {
        let (flags, hub) = payload.split_once(':').unwrap_or(("oai", "*"));
        let wake = Wake {
            orchestrations: flags.contains('o'),
            activities: flags.contains('a'),
            instances: flags.contains('i'),
        };
        (wake, (hub != "*").then_some(hub))
    }
}

/// The signals of the task hubs that handles on one pool are scoped to.
#[derive(Default)]
pub(super) struct Signals {
    hubs: Mutex<HashMap<String, Weak<WorkSignal>>>,
}

impl Signals {
    /// The signal of `hub`, shared by every handle on it.
    pub fn for_hub(&self, hub: &str) -> Arc<WorkSignal> {
        let mut hubs = self.hubs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(signal) = hubs.get(hub).and_then(Weak::upgrade) {
            return signal;
        }
        hubs.retain(|_, signal| signal.strong_count() > 0);
        let signal = Arc::new(WorkSignal::default());
        hubs.insert(hub.to_string(), Arc::downgrade(&signal));
        signal
    }

    fn raise(&self, wake: Wake, hub: Option<&str>) {
        let targets: Vec<Arc<WorkSignal>> = {
            let hubs = self.hubs.lock().unwrap_or_else(|p| p.into_inner());
            match hub {
                Some(hub) => hubs.get(hub).and_then(Weak::upgrade).into_iter().collect(),
                None => hubs.values().filter_map(Weak::upgrade).collect(),
            }
        };
        for signal in targets {
            wake.raise(&signal);
        }
    }
}

/// Listens for notifications until `signals` is dropped, reconnecting after failures.
pub(super) async fn listen(config: tokio_postgres::Config, signals: Weak<Signals>, target: String) {
    let mut failures = 0u32;
    loop {
        match listen_once(&config, &signals).await {
            Ok(()) => return,
            Err(error) => {
                failures += 1;
                let retry = Duration::from_millis(100 << failures.min(7));
                tracing::warn!(
                    error = ?error.to_string(), database = %target, ?retry,
                    "the PostgreSQL store's notification listener lost its connection; \
                     dispatchers fall back to polling until it reconnects"
                );
                tokio::time::sleep(retry).await;
            }
        }
    }
}

/// One connection's worth of listening: `Ok` when the store was dropped, `Err` when the
/// connection failed.
async fn listen_once(
    config: &tokio_postgres::Config,
    signals: &Weak<Signals>,
) -> Result<(), String> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| describe_pg(&e))?;
    let (tx, mut notifications) = tokio::sync::mpsc::unbounded_channel();
    // The connection delivers notifications only while polled; it ends when `client` drops.
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            let forward = match message {
                Ok(AsyncMessage::Notification(n)) => Ok(n.payload().to_string()),
                Ok(_) => continue,
                Err(e) => Err(describe_pg(&e)),
            };
            let failed = forward.is_err();
            if tx.send(forward).is_err() || failed {
                return;
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| describe_pg(&e))?;
    // Anything queued while this listener was not connected has not been announced.
    if let Some(signals) = signals.upgrade() {
        signals.raise(Wake::ALL, None);
    }
    let mut health = tokio::time::interval(HEALTH_CHECK);
    health.tick().await;
    loop {
        tokio::select! {
            received = notifications.recv() => match received {
                None => return Err("the connection closed".to_string()),
                Some(Err(error)) => return Err(error),
                Some(Ok(payload)) => {
                    let Some(signals) = signals.upgrade() else { return Ok(()) };
                    let (wake, hub) = Wake::parse(&payload);
                    signals.raise(wake, hub);
                }
            },
            _ = health.tick() => {
                if signals.strong_count() == 0 {
                    return Ok(());
                }
                let check = tokio::time::timeout(Duration::from_secs(10), client.simple_query(""));
                match check.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(describe_pg(&e)),
                    Err(_) => return Err("the connection stopped answering".to_string()),
                }
            }
        }
    }
}
