//! Connecting a store: the pool, the schema, the listener and the announcer of wake-ups; and the
//! plumbing every operation of a handle goes through (a pooled connection, errors that name the
//! operation and the database, wake-ups).

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

use super::db::{self, Fail, describe_pg};
use super::listener::{self, Signals, Wake};
use super::{DEFAULT_POOL_SIZE, Postgres, Shared, URL_VAR, schema};
use crate::store::StoreError;

/// How long (ms) a session may sit idle inside a transaction before the server ends it. durable's
/// transactions are a few statements sent back to back; only a stalled host waits this long.
const IDLE_IN_TRANSACTION_MS: u32 = 5_000;

impl Postgres {
    /// Connects to the database at `url` (`postgres://user:password@host:port/dbname`, or the
    /// `key=value` form libpq accepts), creates or migrates the schema, and starts listening
    /// for work that other hosts queue. The handle is scoped to task hub `default`.
    ///
    /// Fails with [`StoreError::Backend`] when the URL is invalid, the database cannot be
    /// reached, or its schema was written by a newer version of durable.
    ///
    /// Must be called within a Tokio runtime, which the store's connections then live on.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), durable::store::StoreError> {
    /// let store = durable::store::Postgres::connect("postgres://durable@localhost/durable").await?;
    /// let orders = store.in_task_hub("orders");
    /// # let _ = orders;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, DEFAULT_POOL_SIZE).await
    }

    /// Like [`connect`](Self::connect), with at most `max_connections` pooled connections
    /// (16 by default; one more is held for notifications).
    pub async fn connect_with(url: &str, max_connections: usize) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Backend(format!(
                "invalid PostgreSQL connection string: {}",
                describe_pg(&e)
            ))
        })?;
        let target = target_of(&config);
        // A session left idle inside a transaction (its host paused or cut off mid-commit)
        // would hold its row locks, and with them every other host's claims and commits, for
        // as long as it lives: the server ends it instead.
        let mut config = config;
        let options = format!(
            "{} -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim());
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(15)))
            .wait_timeout(Some(Duration::from_secs(60)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| {
                StoreError::Backend(format!("postgres {target}: building the pool failed: {e}"))
            })?;
        let migrated = async {
            let mut client = pool.get().await?;
            schema::migrate(&mut client).await
        };
        migrated
            .await
            .map_err(|e| e.report("connecting and migrating the schema", &target))?;
        let signals = Arc::new(Signals::default());
        let listener = tokio::spawn(listener::listen(
            config,
            Arc::downgrade(&signals),
            target.clone(),
        ))
        .abort_handle();
        let hub = "default".to_string();
        let announcer = listener::Announcer::start(pool.clone(), signals.origin.clone());
        Ok(Postgres {
            signal: signals.for_hub(&hub),
            shared: Arc::new(Shared {
                pool,
                target,
                signals,
                listener,
                announcer,
                committer: Default::default(),
            }),
            hub,
        })
    }

    /// Connects to the database named by the `DURABLE_POSTGRES_URL` environment variable.
    pub async fn from_env() -> Result<Self, StoreError> {
        let url = std::env::var(URL_VAR).map_err(|_| {
            StoreError::Backend(format!(
                "{URL_VAR} is not set: set it to a PostgreSQL connection URL \
                 (postgres://user:password@host:port/dbname)"
            ))
        })?;
        Self::connect(&url).await
    }

    /// A handle on another task hub of the same database, sharing this handle's pool.
    pub fn in_task_hub(&self, hub: &str) -> Postgres {
        Postgres {
            shared: self.shared.clone(),
            hub: hub.to_string(),
            signal: self.shared.signals.for_hub(hub),
        }
    }

    /// The newest schema version this build of durable reads and writes.
    pub const SCHEMA_VERSION: i32 = schema::LATEST;

    /// A pooled connection for `operation`.
    pub(super) async fn connection(
        &self,
        operation: &str,
    ) -> Result<deadpool_postgres::Client, StoreError> {
        self.shared
            .pool
            .get()
            .await
            .map_err(|e| Fail::from(e).report(operation, &self.shared.target))
    }

    /// Ends `operation`: reports a failure as a [`StoreError`] that names the operation and
    /// the database, and drops a connection that broke instead of returning it to the pool
    /// (where the next operation would fail on it too).
    pub(super) fn finish<T>(
        &self,
        operation: &str,
        connection: deadpool_postgres::Client,
        result: Result<T, Fail>,
    ) -> Result<T, StoreError> {
        if let Err(Fail::Db(e)) = &result
            && db::connection_broken(e)
        {
            drop(deadpool_postgres::Object::take(connection));
        }
        result.map_err(|e| e.report(operation, &self.shared.target))
    }

    /// Tells the other processes on this database about a write that committed.
    pub(super) fn announce(&self, wake: Wake) {
        self.shared.announcer.announce(&self.hub, wake);
    }

    /// Raises this process's signals at once (other processes hear the `NOTIFY`).
    pub(super) fn wake(&self, wake: Wake) {
        wake.raise(&self.signal);
    }

    /// Raises the signals after `delay` (work released with a retry delay).
    pub(super) fn wake_later(&self, delay: Duration) {
        let signal = self.signal.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            Wake {
                orchestrations: true,
                activities: true,
                instances: false,
            }
            .raise(&signal);
        });
    }
}

/// `user@host:port/dbname` of a connection config (no password).
fn target_of(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = config
                .get_ports()
                .get(i)
                .or(config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(dir) => format!("{}:{port}", dir.display()),
            }
        })
        .collect();
    format!(
        "{}@{}/{}",
        config.get_user().unwrap_or("?"),
        if hosts.is_empty() {
            "localhost".to_string()
        } else {
            hosts.join(",")
        },
        config.get_dbname().unwrap_or("?")
    )
}
