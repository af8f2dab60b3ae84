//! Wake-ups across hosts: every write that queues work or changes a status is announced once it
//! committed, by a `NOTIFY durable_work` that a task per pool sends for many writes at a time
//! ([`Announcer`]); each store listens on a dedicated connection and raises the in-process
//! [`WorkSignal`] of the task hub named in the payload, unless the payload came from its own
//! pool.

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
    /// What either asks for.
    pub fn or(self, other: Wake) -> Wake {
        Wake {
            orchestrations: self.orchestrations || other.orchestrations,
            activities: self.activities || other.activities,
            instances: self.instances || other.instances,
        }
    }

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

    /// The notification payload for `hub` from the pool `origin`: the flags, the origin and
    /// the hub, separated by colons.
    pub fn payload(self, origin: &str, hub: &str) -> String {
        let mut payload = String::with_capacity(6 + origin.len() + hub.len());
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
        payload.push_str(origin);
        payload.push(':');
        if hub.len() <= MAX_HUB_IN_PAYLOAD {
            payload.push_str(hub);
        } else {
            payload.push('*');
        }
        payload
    }

    /// The flags, the origin and the hub (`None`: every hub) of a payload; one that does not
    /// parse wakes everything.
    fn parse(payload: &str) -> (Wake, &str, Option<&str>) {
        let mut parts = payload.splitn(3, ':');
        let (Some(flags), Some(origin), Some(hub)) = (parts.next(), parts.next(), parts.next())
        else {
            return (Wake::ALL, "", None);
        };
        let wake = Wake {
            orchestrations: flags.contains('o'),
            activities: flags.contains('a'),
            instances: flags.contains('i'),
        };
        (wake, origin, (hub != "*").then_some(hub))
    }
}

/// The signals of the task hubs that handles on one pool are scoped to.
pub(super) struct Signals {
    hubs: Mutex<HashMap<String, Weak<WorkSignal>>>,
    /// This pool's name in the notifications it sends: its own come back to its listener,
    /// which drops them (every write raises the signals in process already).
    pub(super) origin: String,
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            hubs: Default::default(),
            origin: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        }
    }
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

/// Wake-ups for other processes, sent once the writes that raised them committed, on a
/// connection of their own: the writes' transactions send no `NOTIFY` (a transaction that
/// does serializes with every other one that does, at its commit), and the wake-ups of many
/// writes go out together, one per task hub. A process that dies between a commit and its
/// wake-up leaves the work to the other hosts' polling.
pub(super) struct Announcer {
    queue: tokio::sync::mpsc::UnboundedSender<(String, Wake)>,
}

impl Announcer {
    /// Starts the task that sends the wake-ups of `origin` (a pool's name) over `pool`; it
    /// ends when the announcer is dropped.
    pub fn start(pool: deadpool_postgres::Pool, origin: String) -> Announcer {
        let (queue, pending) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(announce(pool, origin, pending));
        Announcer { queue }
    }

    /// Sends `wake` for `hub` to the other processes soon.
    pub fn announce(&self, hub: &str, wake: Wake) {
        let _ = self.queue.send((hub.to_string(), wake));
    }
}

async fn announce(
    pool: deadpool_postgres::Pool,
    origin: String,
    mut pending: tokio::sync::mpsc::UnboundedReceiver<(String, Wake)>,
) {
    let mut failures = 0u32;
    while let Some((hub, wake)) = pending.recv().await {
        let mut hubs = std::collections::BTreeMap::from([(hub, wake)]);
        while let Ok((hub, wake)) = pending.try_recv() {
            let merged = hubs.get(&hub).map_or(wake, |w| w.or(wake));
            hubs.insert(hub, merged);
        }
        let payloads: Vec<String> = hubs
            .iter()
            .map(|(hub, wake)| wake.payload(&origin, hub))
            .collect();
        let sent = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .execute(
                    "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                    &[&CHANNEL, &payloads],
                )
                .await
                .map_err(|e| describe_pg(&e))
        };
        match sent.await {
            Ok(_) => failures = 0,
            Err(error) => {
                failures += 1;
                // Other hosts find the work on their next poll.
                if failures == 1 {
                    tracing::warn!(
                        error = ?error,
                        "sending wake-ups to other hosts failed; they poll meanwhile"
                    );
                }
            }
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
                    let (wake, origin, hub) = Wake::parse(&payload);
                    if origin != signals.origin {
                        signals.raise(wake, hub);
                    }
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

#[cfg(test)]
mod tests {
    use super::Wake;

    #[test]
    fn a_payload_names_its_flags_origin_and_hub() {
        let wake = Wake {
            orchestrations: true,
            activities: false,
            instances: true,
        };
        let payload = wake.payload("pool1", "hub:with:colons");
        assert_eq!(payload, "oi:pool1:hub:with:colons");
        let (parsed, origin, hub) = Wake::parse(&payload);
        assert!(parsed.orchestrations && !parsed.activities && parsed.instances);
        assert_eq!(origin, "pool1");
        assert_eq!(hub, Some("hub:with:colons"));
    }

    #[test]
    fn a_long_hub_wakes_every_hub_and_garbage_wakes_everything() {
        let long = "h".repeat(super::MAX_HUB_IN_PAYLOAD + 1);
        let payload = Wake::ALL.payload("p", &long);
        let (_, _, hub) = Wake::parse(&payload);
        assert_eq!(hub, None);
        let (wake, origin, hub) = Wake::parse("nonsense");
        assert!(wake.orchestrations && wake.activities && wake.instances);
        assert_eq!((origin, hub), ("", None));
    }
}
