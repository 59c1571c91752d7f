//! Enrollment: many templates, one transaction, idempotent per (subject, image, model).

use sqlx::{Any, Row, Transaction};

use super::audit::{self, AuditEvent};
use super::changes::{self, ChangeKind, NewChange};
use super::embedding::{self, VALUE_BYTES};
use super::error::StoreError;
use super::records::{aspect_code, side_code, EnrollOutcome, NewTemplate};
use super::sealing::{SealedRow, TemplateKeys, SEAL_OVERHEAD};
use super::template_store::{now_ms, TemplateStore};

/// What an enrolment writes beside its templates, in the same transaction.
#[derive(Debug, Clone, Default)]
pub struct EnrolmentNotes {
    /// The subject's consent (kept until a later enrolment names another).
    pub consent_reference: Option<String>,
    /// The call's audit event; its template count is filled in.
    pub audit: Option<AuditEvent>,
}

impl TemplateStore {
    /// Stores `items` under `model_id` in one transaction: all of them or none. An item whose
    /// (subject_id, image_sha256, model_id) is already stored keeps its template (the stored
    /// embedding is not replaced) and comes back with `created: false`. Subjects are created as
    /// needed. Outcomes are in input order; returns after the commit.
    ///
    /// Every embedding of a model must have the same, non-zero dimension and finite values,
    /// and `image_sha256` must be 64 hex digits (stored lowercase); otherwise `InvalidInput`,
    /// as for ids beyond the schema's limits (1 to 128 characters).
    pub async fn enroll(
        &self,
        model_id: &str,
        items: &[NewTemplate],
    ) -> Result<Vec<EnrollOutcome>, StoreError> {
        self.enroll_with(model_id, items, &EnrolmentNotes::default())
            .await
    }

    /// [`Self::enroll`], writing `notes` in the same transaction: the consent reference on
    /// the subject (every item's), the audit event (with the number of templates added).
    pub async fn enroll_with(
        &self,
        model_id: &str,
        items: &[NewTemplate],
        notes: &EnrolmentNotes,
    ) -> Result<Vec<EnrollOutcome>, StoreError> {
        let Some(first) = items.first() else {
            return Ok(Vec::new());
        };
        let dimension = first.embedding.len();
        let hashes = items
            .iter()
            .enumerate()
            .map(|(i, item)| validate(item, dimension).map_err(|e| e.context(item_label(i, item))))
            .collect::<Result<Vec<_>, _>>()?;

        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        let mut outcomes = Vec::with_capacity(items.len());
        for (i, (item, sha)) in items.iter().zip(&hashes).enumerate() {
            let outcome = async {
                insert_subject(&mut tx, item, notes.consent_reference.as_deref(), now).await?;
                if i == 0 {
                    // After the first write, not before: a SQLite transaction that reads first
                    // and writes second fails outright (SQLITE_BUSY_SNAPSHOT) if another
                    // writer commits in between, where one that writes first simply waits.
                    check_model_dimension(&mut tx, model_id, dimension).await?;
                }
                insert_template(&mut tx, &self.keys, model_id, item, sha, now).await
            }
            .await
            .map_err(|e| e.context(item_label(i, item)))?;
            outcomes.push(outcome);
        }
        let added: Vec<i64> = outcomes
            .iter()
            .filter(|o| o.created)
            .map(|o| o.template_id)
            .collect();
        // A repeat of an enrolment changes nothing a search can see: no feed row.
        if !added.is_empty() {
            let change = NewChange {
                kind: ChangeKind::Enrolled,
                subject: Some((&first.gallery, &first.subject_id)),
                model_id: Some(model_id),
                template_ids: &added,
            };
            changes::record(&mut tx, self.backend, change).await?;
        }
        if let Some(event) = audit::counted(notes.audit.as_ref(), added.len()) {
            audit::record(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

fn item_label(index: usize, item: &NewTemplate) -> String {
    format!(
        "item {index} (subject {:?} of gallery {:?})",
        item.subject_id, item.gallery
    )
}

/// Checks what the schema cannot express; returns the canonical (lowercase) hash.
fn validate(item: &NewTemplate, dimension: usize) -> Result<String, StoreError> {
    let sha = &item.image_sha256;
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::InvalidInput(format!(
            "image_sha256 {sha:?} is not 64 hex digits"
        )));
    }
    if item.embedding.is_empty() {
        return Err(StoreError::InvalidInput("embedding is empty".into()));
    }
    if item.embedding.len() != dimension {
        return Err(StoreError::InvalidInput(format!(
            "embedding has {} values where the batch's first has {dimension}",
            item.embedding.len()
        )));
    }
    if let Some(i) = item.embedding.iter().position(|v| !v.is_finite()) {
        return Err(StoreError::InvalidInput(format!(
            "embedding value {i} is {}",
            item.embedding[i]
        )));
    }
    Ok(sha.to_ascii_lowercase())
}

/// Creates the subject, or marks it enrolled now (retention counts from the last
/// enrolment); a consent reference given replaces the one stored.
async fn insert_subject(
    tx: &mut Transaction<'static, Any>,
    item: &NewTemplate,
    consent_reference: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO subjects \
         (gallery, subject_id, created_at_ms, last_enrolled_at_ms, consent_reference) \
         VALUES ($1, $2, $3, $3, $4) \
         ON CONFLICT (gallery, subject_id) DO UPDATE SET \
           last_enrolled_at_ms = excluded.last_enrolled_at_ms, \
           consent_reference = COALESCE(excluded.consent_reference, subjects.consent_reference)",
    )
    .bind(&item.gallery)
    .bind(&item.subject_id)
    .bind(now)
    .bind(consent_reference)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A model's templates all share one dimension: the in-memory index compares them pairwise.
async fn check_model_dimension(
    tx: &mut Transaction<'static, Any>,
    model_id: &str,
    dimension: usize,
) -> Result<(), StoreError> {
    // A sealed row's blob is its plaintext's length plus the seal's.
    let stored_bytes: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT CAST(length(embedding) - CASE WHEN key_id IS NULL THEN 0 ELSE {SEAL_OVERHEAD} END \
         AS BIGINT) FROM templates WHERE model_id = $1 LIMIT 1"
    ))
    .bind(model_id)
    .fetch_optional(&mut **tx)
    .await?;
    match stored_bytes {
        Some(bytes) if bytes != (dimension * VALUE_BYTES) as i64 => {
            Err(StoreError::InvalidInput(format!(
                "embedding has {dimension} values but model {model_id:?} stores {}",
                bytes / VALUE_BYTES as i64
            )))
        }
        _ => Ok(()),
    }
}

/// Inserts the template unless its image is already enrolled. A sealed embedding is bound
/// to its template id, which the insert assigns: the row goes in with zeros of the sealed
/// length and gets its ciphertext in the same transaction, so no plaintext is written.
async fn insert_template(
    tx: &mut Transaction<'static, Any>,
    keys: &TemplateKeys,
    model_id: &str,
    item: &NewTemplate,
    sha: &str,
    now: i64,
) -> Result<EnrollOutcome, StoreError> {
    let plain = embedding::encode(&item.embedding);
    let key_id = keys.current_id();
    let first_blob = match key_id {
        Some(_) => vec![0u8; plain.len() + SEAL_OVERHEAD],
        None => plain.clone(),
    };
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO templates \
         (gallery, subject_id, model_id, aspect, side, image_sha256, embedding, created_at_ms, \
          key_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (gallery, subject_id, image_sha256, model_id) DO NOTHING \
         RETURNING template_id",
    )
    .bind(&item.gallery)
    .bind(&item.subject_id)
    .bind(model_id)
    .bind(aspect_code(item.aspect))
    .bind(side_code(item.side))
    .bind(sha)
    .bind(first_blob)
    .bind(now)
    .bind(key_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(template_id) = inserted {
        if key_id.is_some() {
            let row = SealedRow {
                template_id,
                gallery: &item.gallery,
                subject_id: &item.subject_id,
                model_id,
            };
            sqlx::query("UPDATE templates SET embedding = $1 WHERE template_id = $2")
                .bind(keys.seal(plain, row))
                .bind(template_id)
                .execute(&mut **tx)
                .await?;
        }
        return Ok(EnrollOutcome {
            template_id,
            created: true,
        });
    }
    let existing = sqlx::query(
        "SELECT template_id FROM templates \
         WHERE gallery = $1 AND subject_id = $2 AND image_sha256 = $3 AND model_id = $4",
    )
    .bind(&item.gallery)
    .bind(&item.subject_id)
    .bind(sha)
    .bind(model_id)
    .fetch_optional(&mut **tx)
    .await?;
    match existing {
        Some(row) => Ok(EnrollOutcome {
            template_id: row.try_get("template_id")?,
            created: false,
        }),
        // Possible only under Postgres' READ COMMITTED: the conflicting row was deleted by a
        // concurrent transaction between our insert and this read.
        None => Err(StoreError::Unavailable(
            "the existing template was deleted concurrently; retry".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Aspect, HandSide};

    fn item(sha: &str, embedding: Vec<f32>) -> NewTemplate {
        NewTemplate {
            gallery: "default".into(),
            subject_id: "s".into(),
            aspect: Aspect::Dorsal,
            side: HandSide::Unknown,
            image_sha256: sha.into(),
            embedding,
        }
    }

    #[test]
    fn validation_canonicalises_the_hash_and_names_each_problem() {
        let upper = "AB".repeat(32);
        assert_eq!(
            validate(&item(&upper, vec![1.0]), 1).unwrap(),
            "ab".repeat(32)
        );

        let problems = [
            (item("abc", vec![1.0]), "64 hex digits"),
            (item(&"g".repeat(64), vec![1.0]), "64 hex digits"),
            (item(&upper, vec![]), "empty"),
            (item(&upper, vec![1.0, 2.0]), "2 values"),
            (item(&upper, vec![f32::NAN]), "NaN"),
        ];
        for (bad, says) in problems {
            let err = validate(&bad, 1).unwrap_err();
            assert!(matches!(err, StoreError::InvalidInput(_)), "{err}");
            assert!(err.to_string().contains(says), "{err} should say {says}");
        }
    }
}
