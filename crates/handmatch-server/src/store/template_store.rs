//! The store itself: connecting (with migrations and the SQLite settings) and the pool.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

use super::error::StoreError;
use super::migrate;
use super::sealing::TemplateKeys;
use super::target::{Backend, Target};

/// How long `connect` waits for the first connection, and any later request for a pooled
/// one, before calling the database unavailable. Short, so a dead database turns into a quick
/// UNAVAILABLE instead of requests piling up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The server-side bound on one Postgres statement (COMMIT included).
const STATEMENT_TIMEOUT: &str = "SET statement_timeout = '10s'";

#[derive(Clone)]
pub struct TemplateStore {
    pub(super) pool: AnyPool,
    pub(super) backend: Backend,
    /// The database's URL, for the change listener's own connection; may carry a password,
    /// so never printed.
    pub(super) url: std::sync::Arc<str>,
    /// What embeddings are sealed and opened with (none: plaintext).
    pub(super) keys: TemplateKeys,
    /// Subject deletions committed through this store (and its clones).
    pub(super) deletions: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for TemplateStore {
    // By hand: nothing that could hold connection details gets printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateStore")
            .field("backend", &self.backend.as_str())
            .field("connections", &self.pool.size())
            .field("sealing_key", &self.keys.current_id())
            .finish()
    }
}

impl TemplateStore {
    /// Connects (postgres://… or sqlite://…) and runs the migrations. A SQLite file and its
    /// parent folders are created if missing. Errors name the database without credentials.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let target = Target::resolve(url)?;
        let backend = target.backend;
        let options = AnyConnectOptions::from_str(&target.url).map_err(|e| {
            StoreError::InvalidInput(format!("invalid database URL {}: {e}", target.display))
        })?;
        let cannot_connect =
            |e: StoreError| e.context(format!("cannot connect to {}", target.display));

        // One connection first, outside any pool: the pool retries a refused connection until
        // its timeout and then reports only "timed out", while this reports the actual cause.
        let mut first =
            tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect_with(&options))
                .await
                .map_err(|_| {
                    StoreError::Unavailable(format!("no answer within {CONNECT_TIMEOUT:?}"))
                })
                .and_then(|connected| connected.map_err(StoreError::from))
                .map_err(cannot_connect)?;
        if backend == Backend::Sqlite {
            // WAL lets readers (searches, listings) run while an enrollment commits. It is a
            // property of the file, and switching needs an exclusive lock the busy timeout
            // does not wait for, so do it once here, before the pool opens more connections.
            first
                .execute("PRAGMA journal_mode = WAL")
                .await
                .map_err(StoreError::from)
                .map_err(cannot_connect)?;
        }
        // Failing to say goodbye politely to a connection we are done with changes nothing.
        let _ = first.close().await;

        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(CONNECT_TIMEOUT)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // SQLite forgets foreign keys per connection; without them ON DELETE
                        // CASCADE silently leaves orphan templates. sqlx happens to default
                        // this on; the store does not rely on that.
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        // A deleted subject's bytes are overwritten with zeros rather than
                        // left in free pages (and the WAL is checkpointed after a deletion).
                        conn.execute("PRAGMA secure_delete = ON").await?;
                    } else {
                        conn.execute(STATEMENT_TIMEOUT).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(StoreError::from)
            .map_err(cannot_connect)?;

        migrate::run(&pool, backend)
            .await
            .map_err(|e| e.context(format!("migrating {}", target.display)))?;
        tracing::info!(backend = backend.as_str(), database = %target.display, "template store ready");
        Ok(TemplateStore {
            pool,
            backend,
            url: target.url.into(),
            keys: TemplateKeys::default(),
            deletions: Default::default(),
        })
    }

    /// This store sealing new templates with `keys`' current key and opening rows with any
    /// of them.
    pub fn with_template_keys(mut self, keys: TemplateKeys) -> Self {
        self.keys = keys;
        self
    }

    pub fn template_keys(&self) -> &TemplateKeys {
        &self.keys
    }

    /// "postgres" or "sqlite".
    pub fn backend(&self) -> &'static str {
        self.backend.as_str()
    }

    /// (open, idle) connections of the pool.
    pub fn connections(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// A cheap round trip (SELECT 1) for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pool.execute("SELECT 1").await?;
        Ok(())
    }

    /// Closes every connection, waiting for those in use to come back. Clones of this store
    /// fail with `Unavailable` afterwards. Lets a SQLite file be checkpointed and released
    /// before the process exits or the file is reopened.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(super) fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}
