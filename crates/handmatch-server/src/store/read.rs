//! Reading templates back: per subject, per model (to build the in-memory index), and the
//! paged subject listing.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::embedding;
use super::error::StoreError;
use super::records::{aspect_from_code, side_from_code, SubjectSummary, TemplateRecord};
use super::sealing::{SealedRow, TemplateKeys};
use super::template_store::TemplateStore;
use handmatch_proto::limits::MAX_PAGE_SIZE;

/// Qualified with `t`, the alias every query gives `templates`.
const TEMPLATE_COLUMNS: &str =
    "t.template_id, t.gallery, t.subject_id, t.aspect, t.side, t.image_sha256, \
     t.embedding, t.created_at_ms, t.key_id";

/// Templates per statement when loading a model's templates.
const LOAD_PAGE: u32 = 10_000;

impl TemplateStore {
    /// The templates for `model_id` of the gallery's subject, embeddings included, ordered by
    /// template_id; `None` if the subject does not exist in that gallery (`Some(empty)` if it
    /// has templates of other models only).
    pub async fn subject(
        &self,
        gallery: &str,
        subject_id: &str,
        model_id: &str,
    ) -> Result<Option<Vec<TemplateRecord>>, StoreError> {
        // One statement (so one snapshot) answers both "does the subject exist" and "its
        // templates": a subject without templates of this model yields a single row of NULLs.
        let rows = sqlx::query(&format!(
            "SELECT {TEMPLATE_COLUMNS} FROM subjects s \
             LEFT JOIN templates t \
               ON t.gallery = s.gallery AND t.subject_id = s.subject_id AND t.model_id = $3 \
             WHERE s.gallery = $1 AND s.subject_id = $2 ORDER BY t.template_id"
        ))
        .bind(gallery)
        .bind(subject_id)
        .bind(model_id)
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        if first.try_get::<Option<i64>, _>("template_id")?.is_none() {
            return Ok(Some(Vec::new()));
        }
        records(&self.keys, &rows, model_id).map(Some)
    }

    /// Every template of `model_id`, of every gallery, ordered by template_id.
    pub async fn load_templates(&self, model_id: &str) -> Result<Vec<TemplateRecord>, StoreError> {
        let mut all = Vec::new();
        self.each_template(model_id, |t| {
            all.push(t);
            Ok::<_, StoreError>(())
        })
        .await?;
        Ok(all)
    }

    /// Calls `each` on every template of `model_id`, of every gallery, by template_id:
    /// what the in-memory indexes are loaded from. Reads pages of [`LOAD_PAGE`], each its
    /// own short statement, so a million-subject gallery neither meets the statement
    /// timeout nor is held in memory twice; writes committed between pages reach the index
    /// through the change feed, whose head is read before the first page.
    pub async fn each_template<E: From<StoreError>>(
        &self,
        model_id: &str,
        mut each: impl FnMut(TemplateRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        let (mut after, mut dimension) = (0, None);
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {TEMPLATE_COLUMNS} FROM templates t \
                 WHERE t.model_id = $1 AND t.template_id > $2 ORDER BY t.template_id LIMIT $3"
            ))
            .bind(model_id)
            .bind(after)
            .bind(i64::from(LOAD_PAGE))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::from)?;
            for row in &rows {
                let record = checked_record(&self.keys, row, model_id, &mut dimension)?;
                after = record.template_id;
                each(record)?;
            }
            if rows.len() < LOAD_PAGE as usize {
                return Ok(());
            }
        }
    }

    /// One page of the gallery's subjects having at least one template of `model_id`, by subject_id
    /// ascending (bytewise, on both backends), starting after `after`. Returns the page and,
    /// if more subjects follow, the last subject_id of the page to pass as the next `after`.
    /// `page_size` is capped at [`MAX_PAGE_SIZE`]; 0 is `InvalidInput`.
    pub async fn list_subjects(
        &self,
        model_id: &str,
        gallery: &str,
        page_size: u32,
        after: Option<&str>,
    ) -> Result<(Vec<SubjectSummary>, Option<String>), StoreError> {
        if page_size == 0 {
            return Err(StoreError::InvalidInput("page size 0".into()));
        }
        let page_size = page_size.min(MAX_PAGE_SIZE) as usize;
        // Every subject_id is at least one character long (schema CHECK), so "" sorts
        // before all of them and serves as "from the start".
        let rows = sqlx::query(
            "SELECT subject_id, \
               COUNT(*) FILTER (WHERE aspect = 1) AS dorsal, \
               COUNT(*) FILTER (WHERE aspect = 2) AS palmar \
             FROM templates \
             WHERE model_id = $1 AND gallery = $2 AND subject_id > $3 \
             GROUP BY subject_id ORDER BY subject_id LIMIT $4",
        )
        .bind(model_id)
        .bind(gallery)
        .bind(after.unwrap_or(""))
        // One extra row tells whether another page follows.
        .bind(page_size as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let more = rows.len() > page_size;
        let page = rows
            .iter()
            .take(page_size)
            .map(|row| {
                Ok(SubjectSummary {
                    subject_id: row.try_get("subject_id")?,
                    dorsal_templates: count(row, "dorsal")?,
                    palmar_templates: count(row, "palmar")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = more
            .then(|| page.last().map(|s| s.subject_id.clone()))
            .flatten();
        Ok((page, next))
    }

    /// (model_id, template count) for every model that has templates, by model_id.
    pub async fn models(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT model_id, COUNT(*) AS templates FROM templates \
             GROUP BY model_id ORDER BY model_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let templates: i64 = row.try_get("templates")?;
                Ok((row.try_get("model_id")?, templates.max(0) as u64))
            })
            .collect()
    }
}

fn count(row: &AnyRow, column: &str) -> Result<u32, StoreError> {
    let n: i64 = row.try_get(column)?;
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("{column} count {n} out of range")))
}

/// Decodes rows of [`TEMPLATE_COLUMNS`], insisting on one embedding dimension throughout.
fn records(
    keys: &TemplateKeys,
    rows: &[AnyRow],
    model_id: &str,
) -> Result<Vec<TemplateRecord>, StoreError> {
    let mut dimension = None;
    rows.iter()
        .map(|row| checked_record(keys, row, model_id, &mut dimension))
        .collect()
}

/// One row of [`TEMPLATE_COLUMNS`], whose dimension must be `dimension` (set by the first).
fn checked_record(
    keys: &TemplateKeys,
    row: &AnyRow,
    model_id: &str,
    dimension: &mut Option<usize>,
) -> Result<TemplateRecord, StoreError> {
    let template_id: i64 = row.try_get("template_id")?;
    let record = record(keys, row, template_id, model_id)
        .map_err(|e| e.context(format!("template {template_id}")))?;
    let expected = *dimension.get_or_insert(record.embedding.len());
    if record.embedding.len() != expected {
        return Err(StoreError::Corrupt(format!(
            "template {template_id} of model {model_id:?} has {} values where earlier \
             templates have {expected}",
            record.embedding.len()
        )));
    }
    Ok(record)
}

fn record(
    keys: &TemplateKeys,
    row: &AnyRow,
    template_id: i64,
    model_id: &str,
) -> Result<TemplateRecord, StoreError> {
    let stored: Vec<u8> = row.try_get("embedding")?;
    let key_id: Option<String> = row.try_get("key_id")?;
    let gallery: String = row.try_get("gallery")?;
    let subject_id: String = row.try_get("subject_id")?;
    let sealed_for = SealedRow {
        template_id,
        gallery: &gallery,
        subject_id: &subject_id,
        model_id,
    };
    let blob = keys.open(&stored, key_id.as_deref(), sealed_for)?;
    Ok(TemplateRecord {
        template_id,
        gallery,
        subject_id,
        aspect: aspect_from_code(row.try_get("aspect")?)?,
        side: side_from_code(row.try_get("side")?)?,
        image_sha256: row.try_get("image_sha256")?,
        embedding: embedding::decode(&blob).map_err(StoreError::Corrupt)?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}
