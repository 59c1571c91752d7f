//! Retention and consent: what a subject consented under and when it was last enrolled
//! (`subject_consent`), and which subjects a retention period has expired
//! (`subjects_enrolled_before`; they go through `delete_subject_enrolled_before`).

use sqlx::Row;

use super::error::StoreError;
use super::template_store::TemplateStore;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectConsent {
    pub consent_reference: Option<String>,
    pub created_at_ms: i64,
    pub last_enrolled_at_ms: i64,
}

impl TemplateStore {
    /// `None` if the gallery has no such subject.
    pub async fn subject_consent(
        &self,
        gallery: &str,
        subject_id: &str,
    ) -> Result<Option<SubjectConsent>, StoreError> {
        let row = sqlx::query(
            "SELECT consent_reference, created_at_ms, \
             COALESCE(last_enrolled_at_ms, created_at_ms) AS last_enrolled_at_ms \
             FROM subjects WHERE gallery = $1 AND subject_id = $2",
        )
        .bind(gallery)
        .bind(subject_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SubjectConsent {
                consent_reference: r.try_get("consent_reference")?,
                created_at_ms: r.try_get("created_at_ms")?,
                last_enrolled_at_ms: r.try_get("last_enrolled_at_ms")?,
            })
        })
        .transpose()
    }

    /// Up to `limit` (gallery, subject) last enrolled before `before_ms`, oldest first.
    pub async fn subjects_enrolled_before(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT gallery, subject_id FROM subjects \
             WHERE COALESCE(last_enrolled_at_ms, created_at_ms) < $1 \
             ORDER BY COALESCE(last_enrolled_at_ms, created_at_ms), gallery, subject_id \
             LIMIT $2",
        )
        .bind(before_ms)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("gallery")?, r.try_get("subject_id")?)))
            .collect()
    }
}
