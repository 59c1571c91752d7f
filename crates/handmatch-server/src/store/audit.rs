//! The audit trail (`audit_events`): appended in the transaction of the change it records
//! (`record`), or on its own for a call that changed nothing (`TemplateStore::audit`);
//! read back by time and subject (`TemplateStore::audit_events`).

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::error::StoreError;
use super::template_store::{now_ms, TemplateStore};

/// One call, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub request_id: String,
    /// The API key's name, or the peer's address without authentication.
    pub actor: String,
    pub rpc: String,
    pub gallery: Option<String>,
    pub subject_id: Option<String>,
    /// The gRPC code's name: "OK", "NOT_FOUND", ...
    pub result: String,
    /// Templates added or removed (0 for searches and failures).
    pub templates: i64,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub event_id: i64,
    pub at_ms: i64,
    pub event: AuditEvent,
}

/// Which events to read: newest last.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub since_ms: Option<i64>,
    pub subject_id: Option<String>,
    pub limit: u32,
}

pub(super) async fn record(
    tx: &mut Transaction<'static, Any>,
    event: &AuditEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_events \
         (at_ms, request_id, actor, rpc, gallery, subject_id, result, templates) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(now_ms())
    .bind(&event.request_id)
    .bind(&event.actor)
    .bind(&event.rpc)
    .bind(event.gallery.as_deref())
    .bind(event.subject_id.as_deref())
    .bind(&event.result)
    .bind(event.templates)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `audit` with its template count set, for a write that learns the count in its
/// transaction.
pub(super) fn counted(audit: Option<&AuditEvent>, templates: usize) -> Option<AuditEvent> {
    audit.map(|a| AuditEvent {
        templates: templates as i64,
        ..a.clone()
    })
}

impl TemplateStore {
    /// Appends `event` in a transaction of its own.
    pub async fn audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        record(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Up to `query.limit` events (oldest first) from `since_ms` on, of one subject if
    /// given.
    pub async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT event_id, at_ms, request_id, actor, rpc, gallery, subject_id, result, \
             templates FROM audit_events \
             WHERE at_ms >= $1 AND ($2 = '' OR subject_id = $2) \
             ORDER BY event_id LIMIT $3",
        )
        .bind(query.since_ms.unwrap_or(i64::MIN))
        .bind(query.subject_id.as_deref().unwrap_or(""))
        .bind(i64::from(query.limit.max(1)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_record).collect()
    }
}

fn audit_record(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        event_id: row.try_get("event_id")?,
        at_ms: row.try_get("at_ms")?,
        event: AuditEvent {
            request_id: row.try_get("request_id")?,
            actor: row.try_get("actor")?,
            rpc: row.try_get("rpc")?,
            gallery: row.try_get("gallery")?,
            subject_id: row.try_get("subject_id")?,
            result: row.try_get("result")?,
            templates: row.try_get("templates")?,
        },
    })
}
