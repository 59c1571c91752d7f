//! The follower: reads the change feed after the last change it applied, in order, and
//! brings the index's view of each changed subject to what the store holds now. Applying
//! "the store's current state of this subject" rather than the change itself makes every
//! application idempotent and keeps a deleted subject deleted: a later read can only see
//! a later state. A replica that finds the feed pruned past its position reloads.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::wakeups;
use crate::service::templates::Templates;
use crate::service::ServiceError;
use crate::store::{ChangeKind, GalleryChange};

/// Changes read from the feed at once.
const BATCH: u32 = 1000;
/// How often a replica prunes the feed (every replica may; the work is idempotent).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Longest wait between two reads of the feed, notifications or not.
    pub poll_interval: Duration,
    /// Wake on the database's change notifications (Postgres).
    pub notifications: bool,
    /// Feed rows older than this are pruned; `None` keeps them.
    pub retention: Option<Duration>,
}

/// Follows the feed until aborted. The listener task, if any, ends with it.
pub fn spawn(templates: Arc<Templates>, config: SyncConfig) -> JoinHandle<()> {
    tokio::spawn(async move {
        let wake = Arc::new(Notify::new());
        let listener = config
            .notifications
            .then(|| wakeups::listen(templates.store().clone(), wake.clone()));
        let _stop_listener = AbortOnDrop(listener);
        let mut failing = false;
        let mut pruned_at = Instant::now();
        loop {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(config.poll_interval) => {}
            }
            match catch_up(&templates).await {
                Ok(()) if failing => {
                    tracing::info!(
                        seq = templates.freshness().applied(),
                        "change feed read again"
                    );
                    failing = false;
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    tracing::warn!("cannot read the change feed ({e}); the index may fall behind");
                    failing = true;
                }
                Err(_) => {}
            }
            if let Some(retention) = config.retention {
                if pruned_at.elapsed() >= PRUNE_EVERY {
                    pruned_at = Instant::now();
                    prune(&templates, retention).await;
                }
            }
        }
    })
}

struct AbortOnDrop(Option<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Applies every change after the index's position, batch by batch, until the feed has
/// nothing more.
async fn catch_up(templates: &Templates) -> Result<(), ServiceError> {
    let fresh = templates.freshness();
    loop {
        let asked_at = Instant::now();
        let after = fresh.applied();
        let read = templates.store().changes_after(after, BATCH).await?;
        if read.pruned_through > after {
            tracing::warn!(
                applied = after,
                pruned_through = read.pruned_through,
                "the change feed was pruned past this replica's position: reloading the index"
            );
            templates.reload().await?;
            continue;
        }
        let Some(last) = read.changes.last().map(|c| c.seq) else {
            fresh.complete_as_of(asked_at);
            return Ok(());
        };
        fresh.saw(last);
        if read
            .changes
            .iter()
            .any(|c| drops_model(c, templates.model_id()))
        {
            tracing::warn!("this model's templates were deleted elsewhere: reloading the index");
            templates.reload().await?;
            continue;
        }
        templates
            .refresh_subjects(changed_subjects(&read.changes))
            .await?;
        fresh.applied_through(last);
        if read.changes.len() < BATCH as usize {
            fresh.complete_as_of(asked_at);
            return Ok(());
        }
    }
}

fn drops_model(change: &GalleryChange, model_id: &str) -> bool {
    change.kind == ChangeKind::ModelDeleted && change.model_id.as_deref() == Some(model_id)
}

/// Each subject once: refreshing it once reflects all of its changes in the batch.
fn changed_subjects(changes: &[GalleryChange]) -> BTreeSet<(String, String)> {
    changes.iter().filter_map(|c| c.subject.clone()).collect()
}

async fn prune(templates: &Templates, retention: Duration) {
    match templates.store().prune_changes(retention).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "pruned the change feed"),
        Err(e) => tracing::debug!("could not prune the change feed: {e}"),
    }
}
