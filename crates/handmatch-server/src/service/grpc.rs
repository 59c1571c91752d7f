//! The gRPC surface: translates `handmatch.v1` messages to `Matcher` calls and back, after
//! the key check (`Serving::authorize`). Until the model is loaded and warmed up every RPC
//! answers UNAVAILABLE (and health says NOT_SERVING).

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::call_audit::CallAudit;
use super::error::ServiceError;
use super::matcher::{Matcher, Search};
use super::pb_convert::{
    decision, gallery_aspect, images, operating_point, template_info, timings,
};
use super::serving::{ready, Serving, ServingCell};
use super::validate;
use crate::access::{Grant, Scope};
use crate::store::{EnrolmentNotes, TemplateStore};
use handmatch_core::training_summary::TrainingSummary;
use handmatch_proto::v1 as pb;

/// How many items of one EnrollStream are in flight at once (their embeddings can share a
/// batch); results still come back in request order.
const STREAM_CONCURRENCY: usize = 4;

/// The transport reads messages up to this many times `--max-message-bytes`, and the
/// handlers refuse those over the limit themselves: a stream then answers an oversized item
/// and goes on, where the transport's refusal would end it.
pub const TRANSPORT_MESSAGE_SLACK: usize = 2;

#[derive(Clone)]
pub struct HandMatchService {
    serving: ServingCell,
    max_message_bytes: usize,
    audit_searches: bool,
}

impl HandMatchService {
    pub fn new(serving: ServingCell, max_message_bytes: usize) -> Self {
        Self {
            serving,
            max_message_bytes,
            audit_searches: false,
        }
    }

    /// Identify and Verify are recorded in the audit trail too (writes always are).
    pub fn audit_searches(mut self, on: bool) -> Self {
        self.audit_searches = on;
        self
    }

    /// The store, once start-up has opened it (for the audit trail).
    fn store(&self) -> Option<TemplateStore> {
        self.serving.get().map(|s| s.matcher.store().clone())
    }

    fn within_limit(&self, message: &impl prost::Message) -> Result<(), ServiceError> {
        let n = message.encoded_len();
        if n > self.max_message_bytes {
            return Err(ServiceError::ResourceExhausted(format!(
                "the message is {n} bytes, over the limit of {} bytes",
                self.max_message_bytes
            )));
        }
        Ok(())
    }

    fn ready(&self) -> Result<Serving, ServiceError> {
        ready(&self.serving)
    }

    /// Ready, authenticated and authorised for `scope` on the gallery the request names:
    /// the matcher and the resolved gallery.
    async fn open<T>(
        &self,
        request: &Request<T>,
        scope: Scope,
        gallery: &str,
    ) -> Result<(Arc<Matcher>, String, Grant), ServiceError> {
        let serving = self.ready()?;
        let (gallery, grant) = serving.authorize(request, scope, gallery).await?;
        Ok((serving.matcher, gallery, grant))
    }

    async fn enroll_audited(
        &self,
        request: Request<pb::EnrollRequest>,
        audit: &mut CallAudit,
    ) -> Result<pb::EnrollResponse, ServiceError> {
        let (matcher, gallery, grant) = self
            .open(&request, Scope::Enroll, &request.get_ref().gallery)
            .await?;
        audit.authorised(&grant, &gallery);
        self.within_limit(request.get_ref())?;
        enroll(&matcher, &gallery, request.into_inner(), audit).await
    }

    async fn open_stream<T>(
        &self,
        request: &Request<T>,
    ) -> Result<(Arc<Matcher>, Grant), ServiceError> {
        let serving = self.ready()?;
        let grant = serving.grant(request).await?;
        grant.allow(Scope::Enroll, None)?;
        Ok((serving.matcher, grant))
    }

    async fn identify_audited(
        &self,
        request: Request<pb::IdentifyRequest>,
        audit: &mut CallAudit,
    ) -> Result<pb::IdentifyResponse, ServiceError> {
        let (matcher, gallery, grant) = self
            .open(&request, Scope::Identify, &request.get_ref().gallery)
            .await?;
        audit.authorised(&grant, &gallery);
        self.within_limit(request.get_ref())?;
        let req = request.into_inner();
        let search = Search {
            gallery,
            aspect: gallery_aspect(req.gallery_aspect)?,
            top_k: req.top_k,
            min_score: req.min_score,
            point: operating_point(req.operating_point)?,
        };
        let found = matcher.identify(images(req.images)?, search).await?;
        Ok(pb::IdentifyResponse {
            candidates: found
                .candidates
                .into_iter()
                .enumerate()
                .map(|(i, m)| pb::Candidate {
                    subject_id: m.subject_id,
                    score: m.score,
                    rank: i as u32 + 1,
                })
                .collect(),
            model_id: matcher.metadata().model_id.clone(),
            gallery_subjects: found.gallery_subjects as u64,
            timings: Some(timings(found.timings)),
            decision: found.decision.map(decision),
        })
    }

    async fn verify_audited(
        &self,
        request: Request<pb::VerifyRequest>,
        audit: &mut CallAudit,
    ) -> Result<pb::VerifyResponse, ServiceError> {
        let (matcher, gallery, grant) = self
            .open(&request, Scope::Verify, &request.get_ref().gallery)
            .await?;
        audit.authorised(&grant, &gallery);
        self.within_limit(request.get_ref())?;
        let req = request.into_inner();
        let aspect = gallery_aspect(req.gallery_aspect)?;
        let v = matcher
            .verify(
                &gallery,
                &req.subject_id,
                images(req.images)?,
                aspect,
                req.threshold,
            )
            .await?;
        Ok(pb::VerifyResponse {
            score: v.score,
            r#match: v.threshold.map(|t| v.score >= t),
            threshold: v.threshold,
            model_id: matcher.metadata().model_id.clone(),
            timings: Some(timings(v.timings)),
        })
    }

    async fn delete_audited(
        &self,
        request: Request<pb::DeleteSubjectRequest>,
        audit: &mut CallAudit,
    ) -> Result<pb::DeleteSubjectResponse, ServiceError> {
        let (matcher, gallery, grant) = self
            .open(&request, Scope::Delete, &request.get_ref().gallery)
            .await?;
        audit.authorised(&grant, &gallery);
        let subject_id = request.into_inner().subject_id;
        let deleted = matcher
            .delete(&gallery, &subject_id, Some(audit.on_success()))
            .await?;
        Ok(pb::DeleteSubjectResponse {
            templates_deleted: deleted,
        })
    }
}

async fn enroll(
    matcher: &Matcher,
    gallery: &str,
    req: pb::EnrollRequest,
    audit: &CallAudit,
) -> Result<pb::EnrollResponse, ServiceError> {
    let notes = EnrolmentNotes {
        consent_reference: Some(req.consent_reference).filter(|c| !c.is_empty()),
        audit: Some(audit.on_success()),
    };
    let outcomes = matcher
        .enroll(gallery, &req.subject_id, images(req.images)?, notes)
        .await?;
    Ok(pb::EnrollResponse {
        subject_id: req.subject_id,
        templates: outcomes
            .into_iter()
            .map(|o| pb::EnrolledTemplate {
                template_id: o.template_id,
                created: o.created,
            })
            .collect(),
        model_id: matcher.metadata().model_id.clone(),
    })
}

/// One stream item: its gallery checked against the stream's grant, then enrolled.
async fn enroll_item(
    matcher: &Matcher,
    grant: &Grant,
    item: pb::EnrollRequest,
    audit: &mut CallAudit,
) -> Result<pb::EnrollResponse, ServiceError> {
    let gallery = validate::gallery(&item.gallery)?;
    grant.allow(Scope::Enroll, Some(&gallery))?;
    audit.authorised(grant, &gallery);
    enroll(matcher, &gallery, item, audit).await
}

type EnrollStreamOut = Pin<Box<dyn Stream<Item = Result<pb::EnrollStreamResult, Status>> + Send>>;

#[tonic::async_trait]
impl pb::hand_match_server::HandMatch for HandMatchService {
    async fn enroll(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let r = request.get_ref();
        let mut audit = CallAudit::start(&request, "Enroll", Some(&r.gallery), Some(&r.subject_id));
        let result = self.enroll_audited(request, &mut audit).await;
        audit.finish(self.store().as_ref(), &result, true).await;
        Ok(Response::new(result?))
    }

    type EnrollStreamStream = EnrollStreamOut;

    async fn enroll_stream(
        &self,
        request: Request<Streaming<pb::EnrollRequest>>,
    ) -> Result<Response<Self::EnrollStreamStream>, Status> {
        // The key is checked once for the stream, each item's gallery as it comes; each
        // item is an event of its own in the audit trail.
        let audit = CallAudit::start(&request, "EnrollStream", None, None);
        let (matcher, grant) = match self.open_stream(&request).await {
            Ok(opened) => opened,
            Err(e) => {
                audit.failed(self.store().as_ref(), &e).await;
                return Err(e.into());
            }
        };
        let audit = Arc::new(audit);
        let input = request.into_inner();
        let service = self.clone();
        let output = input
            .enumerate()
            .map(move |(index, item)| {
                let (matcher, grant) = (matcher.clone(), grant.clone());
                let (service, audit) = (service.clone(), audit.clone());
                async move {
                    let item = item?; // a transport error ends the stream
                    let mut audit = audit.item(index, &item.gallery, &item.subject_id);
                    let enrolled = match service.within_limit(&item) {
                        Ok(()) => enroll_item(&matcher, &grant, item, &mut audit).await,
                        Err(e) => Err(e),
                    };
                    audit
                        .finish(service.store().as_ref(), &enrolled, true)
                        .await;
                    let result = match enrolled {
                        Ok(r) => pb::enroll_stream_result::Result::Enrolled(r),
                        Err(e) => pb::enroll_stream_result::Result::Error(pb::Error {
                            code: e.code() as i32,
                            message: e.to_string(),
                        }),
                    };
                    Ok(pb::EnrollStreamResult {
                        index: index as u64,
                        result: Some(result),
                    })
                }
            })
            .buffered(STREAM_CONCURRENCY);
        Ok(Response::new(Box::pin(output)))
    }

    async fn identify(
        &self,
        request: Request<pb::IdentifyRequest>,
    ) -> Result<Response<pb::IdentifyResponse>, Status> {
        let mut audit =
            CallAudit::start(&request, "Identify", Some(&request.get_ref().gallery), None);
        let result = self.identify_audited(request, &mut audit).await;
        if self.audit_searches {
            audit.finish(self.store().as_ref(), &result, false).await;
        }
        Ok(Response::new(result?))
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let r = request.get_ref();
        let mut audit = CallAudit::start(&request, "Verify", Some(&r.gallery), Some(&r.subject_id));
        let result = self.verify_audited(request, &mut audit).await;
        if self.audit_searches {
            audit.finish(self.store().as_ref(), &result, false).await;
        }
        Ok(Response::new(result?))
    }

    async fn delete_subject(
        &self,
        request: Request<pb::DeleteSubjectRequest>,
    ) -> Result<Response<pb::DeleteSubjectResponse>, Status> {
        let r = request.get_ref();
        let mut audit = CallAudit::start(
            &request,
            "DeleteSubject",
            Some(&r.gallery),
            Some(&r.subject_id),
        );
        let result = self.delete_audited(request, &mut audit).await;
        audit.finish(self.store().as_ref(), &result, true).await;
        Ok(Response::new(result?))
    }

    async fn get_subject(
        &self,
        request: Request<pb::GetSubjectRequest>,
    ) -> Result<Response<pb::Subject>, Status> {
        let (matcher, gallery, _) = self
            .open(&request, Scope::Read, &request.get_ref().gallery)
            .await?;
        let subject_id = request.into_inner().subject_id;
        let templates = matcher.subject(&gallery, &subject_id).await?;
        let (consent, expires_at_ms) = matcher.consent(&gallery, &subject_id).await?;
        Ok(Response::new(pb::Subject {
            subject_id,
            templates: templates
                .into_iter()
                .map(|t| template_info(t, matcher.fingerprints()))
                .collect(),
            gallery,
            consent_reference: consent.consent_reference.unwrap_or_default(),
            last_enrolled_at_ms: consent.last_enrolled_at_ms,
            expires_at_ms: expires_at_ms.unwrap_or(0),
        }))
    }

    async fn list_subjects(
        &self,
        request: Request<pb::ListSubjectsRequest>,
    ) -> Result<Response<pb::ListSubjectsResponse>, Status> {
        let (matcher, gallery, _) = self
            .open(&request, Scope::Read, &request.get_ref().gallery)
            .await?;
        let req = request.into_inner();
        let (page, next_page_token) = matcher
            .list(&gallery, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListSubjectsResponse {
            subjects: page
                .into_iter()
                .map(|s| pb::SubjectSummary {
                    subject_id: s.subject_id,
                    dorsal_templates: s.dorsal_templates,
                    palmar_templates: s.palmar_templates,
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn get_info(
        &self,
        request: Request<pb::GetInfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        let (matcher, gallery, _) = self
            .open(&request, Scope::Read, &request.get_ref().gallery)
            .await?;
        let meta = matcher.metadata();
        let gallery = matcher.gallery_stats(&gallery);
        let fresh = matcher.freshness();
        Ok(Response::new(pb::InfoResponse {
            model_id: meta.model_id.clone(),
            backbone: meta.backbone.clone(),
            embedding_dim: meta.embedding_dim as u32,
            input_size: meta.input_size,
            execution_provider: matcher.provider().to_string(),
            gallery_subjects: gallery.subjects as u64,
            gallery_templates: gallery.templates as u64,
            server_version: env!("CARGO_PKG_VERSION").into(),
            verify_threshold: matcher.verify_threshold(),
            training: meta
                .training
                .as_ref()
                .map(TrainingSummary::to_json)
                .unwrap_or_default(),
            applied_change_seq: fresh.applied(),
            pending_changes: fresh.pending(),
            staleness_ms: u64::try_from(fresh.staleness().as_millis()).unwrap_or(u64::MAX),
            precision: meta.precision.as_str().into(),
            decode: meta.decode.as_str().into(),
        }))
    }
}
