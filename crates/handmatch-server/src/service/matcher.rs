//! `Matcher`: the service's operations, independent of gRPC: checks, embedding, and the
//! searches and writes of one gallery at a time (`templates`). Gallery names reach it
//! validated (`validate::gallery`) and authorised.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::Array2;

use super::admission::{Admission, AdmissionLimits};
use super::error::ServiceError;
use super::fingerprint::ImageFingerprints;
use super::images::{prepare, request_cost};
use super::operating_point::{Decision, OperatingPoint};
use super::page_token;
use super::templates::Templates;
use super::validate;
use crate::index::{GalleryIndex, IndexFreshness, IndexSettings, Match};
use crate::metric_names as names;
use crate::store::{
    AuditEvent, EnrollOutcome, EnrolmentNotes, HandSide, NewTemplate, SubjectConsent,
    SubjectSummary, TemplateRecord, TemplateStore,
};
use handmatch_core::embed::decode::DecodeLimits;
use handmatch_core::embed::metadata::ArtefactMetadata;
use handmatch_core::embed::queue::EmbedQueue;
use handmatch_core::embed::ExecutionProviderKind;
use handmatch_core::hand_image::Aspect;
use handmatch_core::template::mean_template;

/// One image of a request.
pub struct RequestImage {
    pub data: Vec<u8>,
    /// Required for enrolment; ignored for queries.
    pub aspect: Option<Aspect>,
    pub side: HandSide,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub decode: Duration,
    pub embed: Duration,
    pub search: Duration,
}

/// What Identify searches, and how.
pub struct Search {
    pub gallery: String,
    /// Which templates to compare against.
    pub aspect: Aspect,
    pub top_k: Option<u32>,
    pub min_score: Option<f32>,
    pub point: Option<OperatingPoint>,
}

pub struct Identification {
    pub candidates: Vec<Match>,
    /// With an operating point: whether the best candidate is a match.
    pub decision: Option<Decision>,
    pub gallery_subjects: usize,
    pub timings: Timings,
}

pub struct Verification {
    pub score: f32,
    pub threshold: Option<f32>,
    pub timings: Timings,
}

pub struct MatcherLimits {
    pub decode: DecodeLimits,
    pub admission: AdmissionLimits,
    pub max_images_per_request: usize,
    pub verify_threshold: Option<f32>,
    /// Enroll refuses a request without a consent reference.
    pub require_consent: bool,
    /// Subjects last enrolled longer ago than this are purged (`crate::retention`).
    pub retention: Option<Duration>,
    /// How the index stores and searches rows.
    pub index: IndexSettings,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GalleryStats {
    pub subjects: usize,
    pub templates: usize,
}

pub struct Matcher {
    queue: EmbedQueue,
    templates: Arc<Templates>,
    admission: Admission,
    limits: MatcherLimits,
    fingerprints: ImageFingerprints,
}

impl Matcher {
    /// Loads the model's templates from the store into a fresh index.
    pub async fn open(
        queue: EmbedQueue,
        store: TemplateStore,
        limits: MatcherLimits,
    ) -> Result<Arc<Self>, ServiceError> {
        let meta = queue.metadata();
        let fingerprints = ImageFingerprints::open(&store).await?;
        let templates =
            Templates::load(store, &meta.model_id, meta.embedding_dim, limits.index).await?;
        Ok(Arc::new(Self {
            queue,
            templates,
            admission: Admission::new(limits.admission),
            limits,
            fingerprints,
        }))
    }

    pub fn metadata(&self) -> &ArtefactMetadata {
        self.queue.metadata()
    }

    pub fn provider(&self) -> ExecutionProviderKind {
        self.queue.provider()
    }

    /// What GetSubject shows of each enrolled image.
    pub fn fingerprints(&self) -> &ImageFingerprints {
        &self.fingerprints
    }

    pub fn verify_threshold(&self) -> Option<f32> {
        self.limits.verify_threshold
    }

    /// The sizes of one gallery (zero for a gallery nobody enrolled in).
    pub fn gallery_stats(&self, gallery: &str) -> GalleryStats {
        let indexes = self.templates.index();
        indexes
            .gallery(gallery)
            .map_or_else(GalleryStats::default, |g| GalleryStats {
                subjects: g.subject_count(),
                templates: g.template_count(),
            })
    }

    /// Runs `f` on the gallery's index under the read lock; `None` for an empty gallery.
    fn with_gallery<T>(&self, gallery: &str, f: impl FnOnce(&GalleryIndex) -> T) -> Option<T> {
        self.templates.index().gallery(gallery).map(f)
    }

    /// (subjects, templates) in the index, over every gallery.
    pub fn index_totals(&self) -> (usize, usize) {
        self.templates.index().totals()
    }

    /// Requests waiting for an embedding worker.
    pub fn queue_depth(&self) -> usize {
        self.queue.depth()
    }

    pub fn embedding_worker_running(&self) -> bool {
        self.queue.is_running()
    }

    pub fn store(&self) -> &TemplateStore {
        self.templates.store()
    }

    /// The store and indexes, for the change feed's follower.
    pub fn templates(&self) -> &Arc<Templates> {
        &self.templates
    }

    /// How far this replica's index follows the store's change feed.
    pub fn freshness(&self) -> &IndexFreshness {
        self.templates.freshness()
    }

    /// Decodes and embeds; returns one unit-length row per image.
    async fn embed(
        &self,
        images: Vec<Vec<u8>>,
        timings: &mut Timings,
    ) -> Result<(Array2<f32>, Vec<String>), ServiceError> {
        validate::image_count(images.len(), self.limits.max_images_per_request)?;
        let meta = self.queue.shared_metadata();
        // Held until the embeddings are back: the prepared pixels live that long.
        let _admitted = self.admission.admit(request_cost(&images, &meta))?;
        let prepared = prepare(images, &self.limits.decode, &meta, &self.admission).await?;
        timings.decode = prepared.decode_time;
        let start = Instant::now();
        let (embeddings, worker) = self.queue.embed(prepared.crops).await?;
        timings.embed = start.elapsed();
        metrics::histogram!(names::DECODE_SECONDS).record(timings.decode.as_secs_f64());
        metrics::histogram!(names::EMBED_SECONDS).record(timings.embed.as_secs_f64());
        metrics::histogram!(names::EMBED_BATCH_IMAGES).record(worker.batch_images as f64);
        let session = if worker.solo { "solo" } else { "worker" };
        metrics::counter!(names::EMBED_SESSION_REQUESTS, "session" => session).increment(1);
        Ok((embeddings, prepared.sha256))
    }

    /// The query: the normalised mean of the images' embeddings.
    async fn query(
        &self,
        images: Vec<RequestImage>,
        timings: &mut Timings,
    ) -> Result<Vec<f32>, ServiceError> {
        let (embeddings, _) = self
            .embed(images.into_iter().map(|i| i.data).collect(), timings)
            .await?;
        let dim = embeddings.ncols();
        Ok(mean_template(
            embeddings
                .rows()
                .into_iter()
                .map(|r| r.to_slice().expect("rows are contiguous")),
            dim,
        )
        .expect("at least one image"))
    }

    pub async fn enroll(
        &self,
        gallery: &str,
        subject_id: &str,
        images: Vec<RequestImage>,
        notes: EnrolmentNotes,
    ) -> Result<Vec<EnrollOutcome>, ServiceError> {
        validate::subject_id(subject_id)?;
        validate::consent_reference(
            notes.consent_reference.as_deref(),
            self.limits.require_consent,
        )?;
        let mut sides = Vec::with_capacity(images.len());
        for (i, img) in images.iter().enumerate() {
            let aspect = img.aspect.ok_or_else(|| {
                ServiceError::invalid(format!("images[{i}].aspect is required: DORSAL or PALMAR"))
            })?;
            sides.push((aspect, img.side));
        }
        let mut timings = Timings::default();
        let (embeddings, sha256) = self
            .embed(images.into_iter().map(|i| i.data).collect(), &mut timings)
            .await?;
        let items: Vec<NewTemplate> = embeddings
            .rows()
            .into_iter()
            .zip(sha256)
            .zip(&sides)
            .map(|((row, sha), &(aspect, side))| NewTemplate {
                gallery: gallery.to_string(),
                subject_id: subject_id.to_string(),
                aspect,
                side,
                image_sha256: sha,
                embedding: row.to_vec(),
            })
            .collect();
        let model_id = self.metadata().model_id.clone();
        self.templates.enroll(model_id, items, notes).await
    }

    pub async fn identify(
        &self,
        images: Vec<RequestImage>,
        search: Search,
    ) -> Result<Identification, ServiceError> {
        let Search {
            gallery,
            aspect,
            top_k,
            min_score,
            point,
        } = search;
        let top_k = validate::top_k(top_k)?;
        let min_score = validate::score("min_score", min_score)?;
        let threshold = point.map(|p| p.threshold(self.metadata())).transpose()?;
        let empty = || {
            ServiceError::FailedPrecondition(format!(
                "gallery {gallery:?} has no {} templates: enroll subjects first",
                aspect.as_str()
            ))
        };
        if self
            .with_gallery(&gallery, |g| g.subjects_with(aspect))
            .unwrap_or(0)
            == 0
        {
            return Err(empty());
        }
        let mut timings = Timings::default();
        let query = self.query(images, &mut timings).await?;
        let start = Instant::now();
        // Unfiltered first: the decision is about the best candidate whatever min_score says.
        let (mut candidates, gallery_subjects) = self
            .with_gallery(&gallery, |g| {
                (
                    g.search(&query, aspect, top_k, None),
                    g.subjects_with(aspect),
                )
            })
            .ok_or_else(empty)?;
        let decision = point
            .zip(threshold)
            .zip(candidates.first())
            .map(|((p, t), best)| Decision::new(p, t, best.clone()));
        candidates.retain(|m| min_score.is_none_or(|t| m.score >= t));
        timings.search = start.elapsed();
        metrics::histogram!(names::SEARCH_SECONDS).record(timings.search.as_secs_f64());
        Ok(Identification {
            candidates,
            decision,
            gallery_subjects,
            timings,
        })
    }

    pub async fn verify(
        &self,
        gallery: &str,
        subject_id: &str,
        images: Vec<RequestImage>,
        aspect: Aspect,
        threshold: Option<f32>,
    ) -> Result<Verification, ServiceError> {
        validate::subject_id(subject_id)?;
        let threshold = validate::score("threshold", threshold)?.or(self.limits.verify_threshold);
        let not_found = || {
            ServiceError::NotFound(format!(
                "subject {subject_id:?} has no {} templates in gallery {gallery:?}",
                aspect.as_str()
            ))
        };
        if self.with_gallery(gallery, |g| g.has(subject_id, aspect)) != Some(true) {
            return Err(not_found());
        }
        let mut timings = Timings::default();
        let query = self.query(images, &mut timings).await?;
        let start = Instant::now();
        let score = self
            .with_gallery(gallery, |g| g.score(subject_id, &query, aspect))
            .flatten()
            .ok_or_else(not_found)?;
        timings.search = start.elapsed();
        metrics::histogram!(names::SEARCH_SECONDS).record(timings.search.as_secs_f64());
        Ok(Verification {
            score,
            threshold,
            timings,
        })
    }

    pub async fn delete(
        &self,
        gallery: &str,
        subject_id: &str,
        audit: Option<AuditEvent>,
    ) -> Result<u64, ServiceError> {
        validate::subject_id(subject_id)?;
        self.templates
            .delete(gallery.to_string(), subject_id.to_string(), audit)
            .await
    }

    pub async fn subject(
        &self,
        gallery: &str,
        subject_id: &str,
    ) -> Result<Vec<TemplateRecord>, ServiceError> {
        validate::subject_id(subject_id)?;
        let model_id = &self.metadata().model_id;
        match self.store().subject(gallery, subject_id, model_id).await? {
            Some(t) if !t.is_empty() => Ok(t),
            _ => Err(ServiceError::NotFound(format!(
                "subject {subject_id:?} is not enrolled in gallery {gallery:?}"
            ))),
        }
    }

    /// What the subject consented under, when it was last enrolled, and (with a retention
    /// period) when it will be purged.
    pub async fn consent(
        &self,
        gallery: &str,
        subject_id: &str,
    ) -> Result<(SubjectConsent, Option<i64>), ServiceError> {
        let consent = self
            .store()
            .subject_consent(gallery, subject_id)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "subject {subject_id:?} is not enrolled in gallery {gallery:?}"
                ))
            })?;
        let expires = self.limits.retention.map(|r| {
            consent
                .last_enrolled_at_ms
                .saturating_add(r.as_millis() as i64)
        });
        Ok((consent, expires))
    }

    pub fn retention(&self) -> Option<Duration> {
        self.limits.retention
    }

    /// A page of subjects and the token of the next (empty after the last).
    pub async fn list(
        &self,
        gallery: &str,
        page_size: Option<u32>,
        page_token: &str,
    ) -> Result<(Vec<SubjectSummary>, String), ServiceError> {
        let page_size = validate::page_size(page_size)?;
        let after = page_token::decode(page_token)?;
        let (page, next) = self
            .store()
            .list_subjects(
                &self.metadata().model_id,
                gallery,
                page_size,
                after.as_deref(),
            )
            .await?;
        Ok((
            page,
            next.as_deref().map(page_token::encode).unwrap_or_default(),
        ))
    }
}
