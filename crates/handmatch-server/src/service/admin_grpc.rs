//! The `Admin` gRPC service: API key management for keys with the `admin` scope, through
//! the same `access::key_admin` operations as the CLI.

use tonic::{Request, Response, Status};

use super::call_audit::CallAudit;
use super::error::ServiceError;
use super::serving::{ready, ServingCell};
use super::validate;
use crate::access::key_admin::{self, KeyInfo, KeyRequest};
use crate::access::{GalleryAccess, Grant, Scope};
use crate::store::{AuditEvent, AuditQuery, AuditRecord, TemplateStore};
use handmatch_proto::v1 as pb;

#[derive(Clone)]
pub struct AdminService {
    serving: ServingCell,
}

impl AdminService {
    pub fn new(serving: ServingCell) -> Self {
        Self { serving }
    }

    /// The store, once the caller is known to hold an `admin` key.
    async fn admin<T>(&self, request: &Request<T>) -> Result<TemplateStore, ServiceError> {
        Ok(self.admin_grant(request).await?.0)
    }

    async fn admin_grant<T>(
        &self,
        request: &Request<T>,
    ) -> Result<(TemplateStore, Grant), ServiceError> {
        let serving = ready(&self.serving)?;
        let grant = serving.grant(request).await?;
        grant.allow(Scope::Admin, None)?;
        Ok((serving.matcher.store().clone(), grant))
    }

    fn store(&self) -> Option<TemplateStore> {
        self.serving.get().map(|s| s.matcher.store().clone())
    }

    /// Runs a key change, recording it in the audit trail: in the change's transaction
    /// when it succeeds, on its own when it fails.
    async fn audited<T, F, Fut>(
        &self,
        mut audit: CallAudit,
        change: F,
        request: &Request<impl Sized>,
    ) -> Result<T, ServiceError>
    where
        F: FnOnce(TemplateStore, AuditEvent) -> Fut,
        Fut: std::future::Future<Output = Result<T, ServiceError>>,
    {
        let result = match self.admin_grant(request).await {
            Ok((store, grant)) => {
                audit.authorised(&grant, "");
                change(store, audit.on_success()).await
            }
            Err(e) => Err(e),
        };
        audit.finish(self.store().as_ref(), &result, true).await;
        result
    }

    async fn create_key_audited(
        &self,
        request: Request<pb::CreateKeyRequest>,
        audit: CallAudit,
    ) -> Result<pb::CreateKeyResponse, ServiceError> {
        let change = |store: TemplateStore, event: AuditEvent| {
            let req = request.get_ref().clone();
            async move {
                let key_request = KeyRequest {
                    name: req.name,
                    scopes: req.scopes,
                    galleries: req.galleries,
                    all_galleries: req.all_galleries,
                };
                let (key, info) = key_admin::create_key(&store, key_request, Some(&event)).await?;
                tracing::info!(name = %info.name, "API key created over gRPC");
                Ok(pb::CreateKeyResponse {
                    key,
                    info: Some(key_info(info)),
                })
            }
        };
        self.audited(audit, change, &request).await
    }

    async fn revoke_key_audited(
        &self,
        request: Request<pb::RevokeKeyRequest>,
        audit: CallAudit,
    ) -> Result<pb::ApiKeyInfo, ServiceError> {
        let name = request.get_ref().name.clone();
        let change = |store: TemplateStore, event: AuditEvent| async move {
            let info = key_admin::revoke_key(&store, &name, Some(&event)).await?;
            tracing::info!(name = %info.name, "API key revoked over gRPC");
            Ok(key_info(info))
        };
        self.audited(audit, change, &request).await
    }
}

pub fn key_info(k: KeyInfo) -> pb::ApiKeyInfo {
    let (galleries, all_galleries) = match k.galleries {
        GalleryAccess::All => (Vec::new(), true),
        GalleryAccess::Only(names) => (names.into_iter().collect(), false),
    };
    pb::ApiKeyInfo {
        name: k.name,
        scopes: k.scopes.iter().map(|s| s.as_str().to_string()).collect(),
        galleries,
        all_galleries,
        created_at_ms: k.created_at_ms,
        last_used_at_ms: k.last_used_at_ms,
        revoked_at_ms: k.revoked_at_ms,
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::CreateKeyResponse>, Status> {
        let name = request.get_ref().name.clone();
        let audit = CallAudit::start(&request, "CreateKey", None, Some(&name));
        let result = self.create_key_audited(request, audit).await;
        Ok(Response::new(result?))
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let store = self.admin(&request).await?;
        let keys = key_admin::list_keys(&store)
            .await
            .map_err(ServiceError::from)?;
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys.into_iter().map(key_info).collect(),
        }))
    }

    async fn revoke_key(
        &self,
        request: Request<pb::RevokeKeyRequest>,
    ) -> Result<Response<pb::ApiKeyInfo>, Status> {
        let name = request.get_ref().name.clone();
        let audit = CallAudit::start(&request, "RevokeKey", None, Some(&name));
        let result = self.revoke_key_audited(request, audit).await;
        Ok(Response::new(result?))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let store = self.admin(&request).await?;
        let req = request.into_inner();
        let query = AuditQuery {
            since_ms: (req.since_ms != 0).then_some(req.since_ms),
            subject_id: Some(req.subject_id).filter(|s| !s.is_empty()),
            limit: validate::listing_size("limit", req.limit)?,
        };
        let events = store
            .audit_events(&query)
            .await
            .map_err(ServiceError::from)?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: events.into_iter().map(audit_event).collect(),
        }))
    }
}

fn audit_event(r: AuditRecord) -> pb::AuditEvent {
    let e = r.event;
    pb::AuditEvent {
        event_id: r.event_id,
        at_ms: r.at_ms,
        request_id: e.request_id,
        actor: e.actor,
        rpc: e.rpc,
        gallery: e.gallery.unwrap_or_default(),
        subject_id: e.subject_id.unwrap_or_default(),
        result: e.result,
        templates: e.templates,
    }
}
