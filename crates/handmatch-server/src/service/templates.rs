//! `Templates`: the durable template store and the in-memory per-gallery indexes, kept in
//! step. Writes go to the store first and reach the index only after their transaction
//! committed, under one write lock, so a template is searchable only when it is durable. Each write runs in a
//! task of its own that the request merely awaits: a client that gives up (deadline,
//! cancellation) drops the request future, but not the commit nor the index update after it.

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use super::error::ServiceError;
use crate::index::{GalleryIndexes, IndexedTemplate};
use crate::store::{EnrollOutcome, NewTemplate, StoreError, TemplateStore};

/// Longest a write waits for the one before it, and longest the store may take to answer
/// one: a database that hangs turns into UNAVAILABLE instead of a queue of stuck writes.
const WRITE_WAIT: Duration = Duration::from_secs(15);

pub struct Templates {
    store: TemplateStore,
    index: RwLock<GalleryIndexes>,
    write_lock: tokio::sync::Mutex<()>,
}

impl Templates {
    /// Loads `model_id`'s templates, of every gallery, from the store into fresh indexes.
    pub async fn load(
        store: TemplateStore,
        model_id: &str,
        dim: usize,
    ) -> Result<Arc<Self>, ServiceError> {
        let mut index = GalleryIndexes::new(dim);
        let records = store.load_templates(model_id).await?;
        let count = records.len();
        for r in records {
            if r.embedding.len() != dim {
                return Err(ServiceError::Internal(format!(
                    "template {} has {} dimensions, the model gives {dim}",
                    r.template_id,
                    r.embedding.len(),
                )));
            }
            index.insert(
                &r.gallery,
                &r.subject_id,
                [IndexedTemplate {
                    template_id: r.template_id,
                    aspect: r.aspect,
                    embedding: r.embedding,
                }],
            );
        }
        tracing::info!(
            templates = count,
            subjects = index.totals().0,
            "galleries loaded"
        );
        Ok(Arc::new(Self {
            store,
            index: RwLock::new(index),
            write_lock: tokio::sync::Mutex::new(()),
        }))
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
    ) -> Result<Vec<EnrollOutcome>, ServiceError> {
        let templates = self.clone();
        detached(async move {
            let _write = templates.write_turn().await?;
            let outcomes = answered(templates.store.enroll(&model_id, &items)).await?;
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
    ) -> Result<u64, ServiceError> {
        let templates = self.clone();
        detached(async move {
            let _write = templates.write_turn().await?;
            templates.index_mut().remove_subject(&gallery, &subject_id);
            answered(templates.store.delete_subject(&gallery, &subject_id)).await
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
