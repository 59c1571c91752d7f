//! Which keys the stored templates are sealed under, and moving them to another key one
//! batch at a time (`handmatch-server templates rekey`). Each batch is its own transaction
//! and picks the rows not yet under the new key, so a rotation that stops midway (killed,
//! database lost) resumes where it stopped, and rows stay readable throughout by a server
//! given both keys.

use sqlx::Row;

use super::error::StoreError;
use super::sealing::{seal_with, SealedRow, TemplateKey};
use super::template_store::TemplateStore;

impl TemplateStore {
    /// The distinct key ids stored templates are sealed under (plaintext rows not counted).
    pub async fn sealing_key_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT key_id FROM templates WHERE key_id IS NOT NULL ORDER BY key_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Stored templates not sealed under `key_id` (plaintext ones included).
    pub async fn templates_not_under(&self, key_id: &str) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM templates WHERE key_id IS NULL OR key_id <> $1",
        )
        .bind(key_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n.max(0) as u64)
    }

    /// Re-seals up to `batch` templates that are not under `new` yet (opening each with
    /// this store's keys, or as plaintext) in one transaction; returns how many it moved,
    /// 0 once none is left.
    pub async fn rekey_batch(&self, new: &TemplateKey, batch: u32) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT template_id, gallery, subject_id, model_id, key_id, embedding \
             FROM templates WHERE key_id IS NULL OR key_id <> $1 \
             ORDER BY template_id LIMIT $2",
        )
        .bind(new.id())
        .bind(i64::from(batch.max(1)))
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let (template_id, gallery, subject_id, model_id): (i64, String, String, String) = (
                row.try_get("template_id")?,
                row.try_get("gallery")?,
                row.try_get("subject_id")?,
                row.try_get("model_id")?,
            );
            let old_key: Option<String> = row.try_get("key_id")?;
            let stored: Vec<u8> = row.try_get("embedding")?;
            let sealed_for = SealedRow {
                template_id,
                gallery: &gallery,
                subject_id: &subject_id,
                model_id: &model_id,
            };
            let plain = self.keys.open(&stored, old_key.as_deref(), sealed_for)?;
            sqlx::query("UPDATE templates SET embedding = $1, key_id = $2 WHERE template_id = $3")
                .bind(seal_with(new, &plain, sealed_for))
                .bind(new.id())
                .bind(template_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }
}
