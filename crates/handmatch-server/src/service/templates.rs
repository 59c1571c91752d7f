//! `Templates`: the durable template store and the in-memory per-gallery indexes, kept in
//! step. Writes go to the store first and reach the index only after their transaction
//! committed, under one write lock, so a template is searchable only when it is durable. Each write runs in a
//! task of its own that the request merely awaits: a client that gives up (deadline,
//! cancellation) drops the request future, but not the commit nor the index update after it.
//! Other replicas' writes arrive through the change feed (`crate::sync`) as
//! `refresh_subjects` or, for a replica too far behind, `reload`.

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use super::error::ServiceError;
use crate::index::{GalleryIndexes, IndexFreshness, IndexSettings, IndexedTemplate};
use crate::store::{
    AuditEvent, EnrollOutcome, EnrolmentNotes, NewTemplate, StoreError, TemplateRecord,
    TemplateStore,
};

/// Longest a write waits for the one before it, and longest the store may take to answer
/// one: a database that hangs turns into UNAVAILABLE instead of a queue of stuck writes.
const WRITE_WAIT: Duration = Duration::from_secs(15);

pub struct Templates {
    store: TemplateStore,
    model_id: String,
    dim: usize,
    settings: IndexSettings,
    index: RwLock<GalleryIndexes>,
    freshness: IndexFreshness,
    write_lock: tokio::sync::Mutex<()>,
}

impl Templates {
    /// Loads `model_id`'s templates, of every gallery, from the store into fresh indexes.
    pub async fn load(
        store: TemplateStore,
        model_id: &str,
        dim: usize,
        settings: IndexSettings,
    ) -> Result<Arc<Self>, ServiceError> {
        let loaded = load_indexes(&store, model_id, dim, settings).await?;
        Ok(Arc::new(Self {
            store,
            model_id: model_id.to_string(),
            dim,
            settings,
            index: RwLock::new(loaded.index),
            freshness: IndexFreshness::new(loaded.feed_seq, loaded.asked_at),
            write_lock: tokio::sync::Mutex::new(()),
        }))
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn freshness(&self) -> &IndexFreshness {
        &self.freshness
    }

    /// Makes each subject's index entry what the store holds now. Under the write lock, so
    /// that a local deletion cannot slip between this read and its application and be
    /// undone by it.
    pub async fn refresh_subjects(
        &self,
        subjects: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ServiceError> {
        let _write = self.write_turn().await?;
        for (gallery, subject_id) in subjects {
            let stored = answered(self.store.subject(&gallery, &subject_id, &self.model_id))
                .await?
                .unwrap_or_default();
            let templates = stored.into_iter().map(indexed).collect();
            self.index_mut()
                .replace_subject(&gallery, &subject_id, templates);
        }
        Ok(())
    }

    /// Replaces the whole index with the store's templates (a replica that missed pruned
    /// changes); the feed position moves to where the store stood before the load.
    pub async fn reload(&self) -> Result<(), ServiceError> {
        let _write = self.write_turn().await?;
        let loaded = load_indexes(&self.store, &self.model_id, self.dim, self.settings).await?;
        *self.index_mut() = loaded.index;
        self.freshness.reset_to(loaded.feed_seq, loaded.asked_at);
        Ok(())
    }

    pub fn store(&self) -> &TemplateStore {
        &self.store
    }

    /// The index for searching. A panic while the lock was held cannot leave it half
    /// updated (every update is one call that does not panic midway), so a poisoned lock
    /// is still a consistent index, not a reason for a permanent outage.
    pub fn index(&self) -> RwLockReadGuard<'_, GalleryIndexes> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn index_mut(&self) -> RwLockWriteGuard<'_, GalleryIndexes> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores the templates, then makes them searchable; runs to the end even if the
    /// caller stops waiting.
    pub async fn enroll(
        self: &Arc<Self>,
        model_id: String,
        items: Vec<NewTemplate>,
        notes: EnrolmentNotes,
    ) -> Result<Vec<EnrollOutcome>, ServiceError> {
        let templates = self.clone();
        detached(async move {
            let _write = templates.write_turn().await?;
            let stored = templates.store.enroll_with(&model_id, &items, &notes);
            let outcomes = answered(stored).await?;
            let Some((gallery, subject_id)) = items
                .first()
                .map(|i| (i.gallery.clone(), i.subject_id.clone()))
            else {
                return Ok(outcomes);
            };
            templates.index_mut().insert(
                &gallery,
                &subject_id,
                outcomes.iter().zip(items).map(|(o, item)| IndexedTemplate {
                    template_id: o.template_id,
                    aspect: item.aspect,
                    embedding: item.embedding,
                }),
            );
            Ok(outcomes)
        })
        .await
    }

    /// Takes the subject out of the index, then deletes it from the store. Out of the index
    /// first, so that it is matched no more from the moment the erasure starts, whatever
    /// the store then does: commit slowly, find nothing, fail, or fail after committing.
    /// (A store that failed still holds it; it comes back into the index at the next start
    /// unless the client's retry deletes it. An erasure must not fail open.)
    pub async fn delete(
        self: &Arc<Self>,
        gallery: String,
        subject_id: String,
        audit: Option<AuditEvent>,
    ) -> Result<u64, ServiceError> {
        let templates = self.clone();
        detached(async move {
            let _write = templates.write_turn().await?;
            templates.index_mut().remove_subject(&gallery, &subject_id);
            let deleted =
                templates
                    .store
                    .delete_subject_audited(&gallery, &subject_id, audit.as_ref());
            answered(deleted).await
        })
        .await
    }

    /// Deletes the subject if it was last enrolled before `before_ms` (checked in the
    /// deleting transaction), then drops it from the index; false if it was enrolled again
    /// meanwhile or is gone already. Runs to the end even if the caller stops waiting.
    pub async fn purge_expired(
        self: &Arc<Self>,
        gallery: String,
        subject_id: String,
        before_ms: i64,
        audit: AuditEvent,
    ) -> Result<bool, ServiceError> {
        let templates = self.clone();
        detached(async move {
            let _write = templates.write_turn().await?;
            let deleted = templates.store.delete_subject_enrolled_before(
                &gallery,
                &subject_id,
                before_ms,
                Some(&audit),
            );
            match answered(deleted).await {
                Ok(_) => {
                    templates.index_mut().remove_subject(&gallery, &subject_id);
                    Ok(true)
                }
                Err(ServiceError::NotFound(_)) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn write_turn(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, ServiceError> {
        tokio::time::timeout(WRITE_WAIT, self.write_lock.lock())
            .await
            .map_err(|_| {
                ServiceError::Unavailable(format!(
                    "the template store has been busy with another write for over {WRITE_WAIT:?}; \
                     retry later"
                ))
            })
    }
}

struct Loaded {
    index: GalleryIndexes,
    /// The feed's head, read before the templates.
    feed_seq: i64,
    /// When the head was asked for: every change committed before is in `index`.
    asked_at: Instant,
}

/// Reads the feed's head, then every template: changes committed after the head was read
/// are applied again by the feed, which is harmless (each reloads its subject's state).
async fn load_indexes(
    store: &TemplateStore,
    model_id: &str,
    dim: usize,
    settings: IndexSettings,
) -> Result<Loaded, ServiceError> {
    let asked_at = Instant::now();
    let head = store.change_head().await?;
    let mut index = GalleryIndexes::with_settings(dim, settings);
    let mut progress = LoadProgress::new();
    store
        .each_template(model_id, |record| {
            if record.embedding.len() != dim {
                return Err(ServiceError::Internal(format!(
                    "template {} has {} dimensions, the model gives {dim}",
                    record.template_id,
                    record.embedding.len(),
                )));
            }
            let (gallery, subject_id) = (record.gallery.clone(), record.subject_id.clone());
            index.insert(&gallery, &subject_id, [indexed(record)]);
            progress.one_more(&index);
            Ok(())
        })
        .await?;
    progress.done(&index, head);
    Ok(Loaded {
        index,
        feed_seq: head,
        asked_at,
    })
}

fn indexed(record: TemplateRecord) -> IndexedTemplate {
    IndexedTemplate {
        template_id: record.template_id,
        aspect: record.aspect,
        embedding: record.embedding,
    }
}

/// A log line every [`LoadProgress::EVERY`] templates while a large gallery loads.
struct LoadProgress {
    started: Instant,
    templates: u64,
}

impl LoadProgress {
    const EVERY: u64 = 100_000;

    fn new() -> Self {
        Self {
            started: Instant::now(),
            templates: 0,
        }
    }

    fn one_more(&mut self, index: &GalleryIndexes) {
        self.templates += 1;
        if self.templates % Self::EVERY == 0 {
            let rate = self.templates as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(
                templates = self.templates,
                subjects = index.totals().0,
                per_second = rate as u64,
                "loading galleries"
            );
        }
    }

    fn done(&self, index: &GalleryIndexes, feed_seq: i64) {
        tracing::info!(
            templates = self.templates,
            subjects = index.totals().0,
            feed_seq,
            seconds = self.started.elapsed().as_secs_f64(),
            "galleries loaded"
        );
    }
}

/// The store's answer, or UNAVAILABLE when it takes longer than `WRITE_WAIT`.
async fn answered<T>(call: impl Future<Output = Result<T, StoreError>>) -> Result<T, ServiceError> {
    match tokio::time::timeout(WRITE_WAIT, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ServiceError::Unavailable(format!(
            "the template store did not answer within {WRITE_WAIT:?}"
        ))),
    }
}

/// Runs `work` as its own task and waits for it.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, ServiceError>> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::spawn(work)
        .await
        .map_err(|e| ServiceError::Internal(format!("a template write failed: {e}")))?
}
