//! `ChangeListener`: a wake-up on every commit to the change feed, through Postgres
//! LISTEN/NOTIFY on a connection of its own. Only a hint to read the feed now: the feed
//! itself is the truth, so a notification lost while the connection was down only delays
//! a replica until its next poll.

use std::time::Duration;

use sqlx::postgres::PgListener;

use super::error::StoreError;
use super::target::Backend;
use super::template_store::TemplateStore;

/// The channel `gallery_changes`' trigger notifies (migration 0004).
const CHANNEL: &str = "handmatch_gallery_changes";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct ChangeListener {
    listener: PgListener,
}

/// What waiting on the listener ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// A change was committed.
    Changed,
    /// The connection was lost and has been re-established: notifications sent meanwhile
    /// are gone, so read the feed.
    Reconnected,
}

impl TemplateStore {
    /// A listener on the feed's notifications; `None` on SQLite, which has none.
    pub async fn listen_for_changes(&self) -> Result<Option<ChangeListener>, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let connect = async {
            let mut listener = PgListener::connect(&self.url).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let listener = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "the change listener did not connect within {CONNECT_TIMEOUT:?}"
                ))
            })??;
        Ok(Some(ChangeListener { listener }))
    }
}

impl ChangeListener {
    /// Waits for the next notification (reconnecting as needed). An error means the
    /// database could not be reached again; the caller falls back to polling.
    pub async fn next(&mut self) -> Result<Wakeup, StoreError> {
        match self.listener.try_recv().await? {
            Some(_) => Ok(Wakeup::Changed),
            None => Ok(Wakeup::Reconnected),
        }
    }
}
