//! The `Admin` gRPC service: API key management for keys with the `admin` scope, through
//! the same `access::key_admin` operations as the CLI.

use tonic::{Request, Response, Status};

use super::error::ServiceError;
use super::serving::{ready, ServingCell};
use crate::access::key_admin::{self, KeyInfo, KeyRequest};
use crate::access::{GalleryAccess, Scope};
use crate::store::TemplateStore;
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
        let serving = ready(&self.serving)?;
        serving.grant(request).await?.allow(Scope::Admin, None)?;
        Ok(serving.matcher.store().clone())
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
        let store = self.admin(&request).await?;
        let req = request.into_inner();
        let (key, info) = key_admin::create_key(
            &store,
            KeyRequest {
                name: req.name,
                scopes: req.scopes,
                galleries: req.galleries,
                all_galleries: req.all_galleries,
            },
        )
        .await
        .map_err(ServiceError::from)?;
        tracing::info!(name = %info.name, "API key created over gRPC");
        Ok(Response::new(pb::CreateKeyResponse {
            key,
            info: Some(key_info(info)),
        }))
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
        let store = self.admin(&request).await?;
        let name = request.into_inner().name;
        let info = key_admin::revoke_key(&store, &name)
            .await
            .map_err(ServiceError::from)?;
        tracing::info!(name = %info.name, "API key revoked over gRPC");
        Ok(Response::new(key_info(info)))
    }
}
