//! `--vacuum-after-delete` (Postgres): a task that VACUUMs the template tables shortly after
//! deletions, coalescing a burst of them into one run.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::store::TemplateStore;

/// How often the task looks for new deletions.
const EVERY: Duration = Duration::from_secs(2);

pub fn spawn(store: TemplateStore) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut vacuumed_at = store.deletions();
        loop {
            tokio::time::sleep(EVERY).await;
            let deletions = store.deletions();
            if deletions == vacuumed_at {
                continue;
            }
            match store.vacuum_deleted_rows().await {
                Ok(()) => {
                    tracing::info!(
                        deletions = deletions - vacuumed_at,
                        "vacuumed after deletions"
                    );
                    vacuumed_at = deletions;
                }
                Err(e) => tracing::warn!("VACUUM after deletions failed ({e}); retrying"),
            }
        }
    })
}
