//! The retention task: every `check_every`, subjects last enrolled longer ago than the
//! retention period are purged, each in a transaction that rechecks its age (a subject
//! enrolled again meanwhile stays) and appends an audit event (actor "retention"). Every
//! replica may run it; a subject purged by one is simply gone for the others.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;

use crate::service::templates::Templates;
use crate::service::ServiceError;
use crate::store::AuditEvent;

/// Subjects looked up per read of the store.
const BATCH: u32 = 500;

#[derive(Debug, Clone, Copy)]
pub struct RetentionConfig {
    pub max_age: Duration,
    pub check_every: Duration,
}

/// Purges until aborted: once at start, then every `check_every`.
pub fn spawn(templates: Arc<Templates>, config: RetentionConfig) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match purge_expired(&templates, config.max_age).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(subjects = n, "retention: purged expired subjects"),
                Err(e) => tracing::warn!("retention: purge stopped ({e}); retrying later"),
            }
            tokio::time::sleep(config.check_every).await;
        }
    })
}

/// Purges every subject last enrolled before now − `max_age`; returns how many went.
pub async fn purge_expired(
    templates: &Arc<Templates>,
    max_age: Duration,
) -> Result<u64, ServiceError> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let before_ms = now_ms.saturating_sub(max_age.as_millis() as i64);
    let run = format!("retention-{now_ms}");
    let mut purged = 0;
    loop {
        let expired = templates
            .store()
            .subjects_enrolled_before(before_ms, BATCH)
            .await?;
        let mut progressed = false;
        for (gallery, subject_id) in expired {
            let audit = purge_event(&run, &gallery, &subject_id);
            if templates
                .purge_expired(gallery, subject_id, before_ms, audit)
                .await?
            {
                purged += 1;
                progressed = true;
            }
        }
        if !progressed {
            return Ok(purged);
        }
    }
}

fn purge_event(run: &str, gallery: &str, subject_id: &str) -> AuditEvent {
    AuditEvent {
        request_id: run.to_string(),
        actor: "retention".into(),
        rpc: "RetentionPurge".into(),
        gallery: Some(gallery.to_string()),
        subject_id: Some(subject_id.to_string()),
        result: "Ok".into(),
        templates: 0,
    }
}
