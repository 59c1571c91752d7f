//! Removing subjects (every model's templates go with them) and whole models, and what
//! deleted rows leave behind (`erase_freed_pages`, `vacuum_deleted_rows`).

use std::sync::atomic::Ordering;

use sqlx::Executor;

use super::audit::{self, AuditEvent};
use super::changes::{self, ChangeKind, NewChange};
use super::error::StoreError;
use super::target::Backend;
use super::template_store::TemplateStore;

impl TemplateStore {
    /// Deletes the gallery's subject and all its templates, of every model; returns how many
    /// templates went. `NotFound` if the subject does not exist in that gallery.
    pub async fn delete_subject(&self, gallery: &str, subject_id: &str) -> Result<u64, StoreError> {
        self.delete_subject_audited(gallery, subject_id, None).await
    }

    /// [`Self::delete_subject`], appending `audit` (with the number of templates deleted)
    /// to the audit trail in the same transaction.
    pub async fn delete_subject_audited(
        &self,
        gallery: &str,
        subject_id: &str,
        audit: Option<&AuditEvent>,
    ) -> Result<u64, StoreError> {
        self.delete_subject_if(gallery, subject_id, i64::MAX, audit)
            .await
    }

    /// [`Self::delete_subject_audited`] if the subject was last enrolled before
    /// `before_ms` (retention), checked in the deleting transaction: a subject enrolled
    /// again meanwhile is `NotFound` and stays.
    pub async fn delete_subject_enrolled_before(
        &self,
        gallery: &str,
        subject_id: &str,
        before_ms: i64,
        audit: Option<&AuditEvent>,
    ) -> Result<u64, StoreError> {
        self.delete_subject_if(gallery, subject_id, before_ms, audit)
            .await
    }

    async fn delete_subject_if(
        &self,
        gallery: &str,
        subject_id: &str,
        enrolled_before_ms: i64,
        audit: Option<&AuditEvent>,
    ) -> Result<u64, StoreError> {
        const LAST_ENROLLED_BEFORE: &str = "COALESCE(last_enrolled_at_ms, created_at_ms) < $3";
        let mut tx = self.pool.begin().await?;
        // Deleted explicitly rather than by the cascade, whose rows no driver counts.
        let templates: Vec<i64> = sqlx::query_scalar(&format!(
            "DELETE FROM templates WHERE gallery = $1 AND subject_id = $2 AND EXISTS \
             (SELECT 1 FROM subjects WHERE gallery = $1 AND subject_id = $2 \
              AND {LAST_ENROLLED_BEFORE}) RETURNING template_id"
        ))
        .bind(gallery)
        .bind(subject_id)
        .bind(enrolled_before_ms)
        .fetch_all(&mut *tx)
        .await?;
        let subjects = sqlx::query(&format!(
            "DELETE FROM subjects WHERE gallery = $1 AND subject_id = $2 \
             AND {LAST_ENROLLED_BEFORE}"
        ))
        .bind(gallery)
        .bind(subject_id)
        .bind(enrolled_before_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if subjects == 0 {
            // Nothing was deleted either (templates cannot outlive their subject); dropping
            // the transaction rolls it back.
            return Err(StoreError::NotFound {
                gallery: gallery.to_string(),
                subject_id: subject_id.to_string(),
            });
        }
        let change = NewChange {
            kind: ChangeKind::SubjectDeleted,
            subject: Some((gallery, subject_id)),
            model_id: None,
            template_ids: &templates,
        };
        changes::record(&mut tx, self.backend, change).await?;
        if let Some(event) = audit::counted(audit, templates.len()) {
            audit::record(&mut tx, &event).await?;
        }
        tx.commit().await?;
        self.deletions.fetch_add(1, Ordering::Relaxed);
        self.erase_freed_pages().await;
        Ok(templates.len() as u64)
    }

    /// Deletes every template of `model_id`, and the subjects left with no template of any
    /// model; returns how many templates went (0 for an unknown model).
    pub async fn delete_model(&self, model_id: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let templates = sqlx::query("DELETE FROM templates WHERE model_id = $1")
            .bind(model_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // Subjects exist only to own templates, so any subject without one is debris, not
        // just those this model's deletion emptied.
        sqlx::query(
            "DELETE FROM subjects WHERE NOT EXISTS \
             (SELECT 1 FROM templates t \
              WHERE t.gallery = subjects.gallery AND t.subject_id = subjects.subject_id)",
        )
        .execute(&mut *tx)
        .await?;
        if templates > 0 {
            let change = NewChange {
                kind: ChangeKind::ModelDeleted,
                subject: None,
                model_id: Some(model_id),
                template_ids: &[],
            };
            changes::record(&mut tx, self.backend, change).await?;
        }
        tx.commit().await?;
        Ok(templates)
    }

    /// Subject deletions committed through this store since it was opened.
    pub fn deletions(&self) -> u64 {
        self.deletions.load(Ordering::Relaxed)
    }

    /// Postgres: VACUUM the tables that held deleted subjects, so their dead rows become
    /// free space (to be overwritten) instead of staying until autovacuum comes. It does
    /// not overwrite the bytes; only VACUUM FULL, which locks the tables, rewrites them.
    /// SQLite needs none: its deletions overwrite in place (`erase_freed_pages`).
    pub async fn vacuum_deleted_rows(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            // A simple-protocol statement outside any transaction, as VACUUM requires.
            self.pool
                .execute("VACUUM templates, subjects, gallery_changes")
                .await?;
        }
        Ok(())
    }

    /// SQLite: with `secure_delete` the deletion zeroed the rows in its new page versions,
    /// but the WAL still holds the old ones until a checkpoint copies the new pages into the
    /// file; TRUNCATE then empties the WAL. The deletion has committed either way, so a
    /// checkpoint held back by readers is only logged (the next one completes it).
    async fn erase_freed_pages(&self) {
        if self.backend != Backend::Sqlite {
            return;
        }
        let done: Result<(i64, i64, i64), sqlx::Error> =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await;
        match done {
            Ok((0, _, _)) => {}
            Ok((busy, log, copied)) => tracing::warn!(
                busy,
                log,
                copied,
                "the WAL checkpoint after a deletion was held back by readers"
            ),
            Err(e) => tracing::warn!("the WAL checkpoint after a deletion failed: {e}"),
        }
    }
}
