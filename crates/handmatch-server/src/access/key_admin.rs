//! Creating, listing and revoking keys: one implementation behind both the
//! `handmatch-server keys` CLI and the Admin RPCs.

use super::api_key::generate;
use super::error::AccessError;
use super::grant::GalleryAccess;
use super::scope::{parse_scopes, Scope};
use crate::store::{check_name, ApiKeyRecord, AuditEvent, NewApiKey, TemplateStore};

/// What a new key may do.
pub struct KeyRequest {
    pub name: String,
    pub scopes: Vec<String>,
    pub galleries: Vec<String>,
    pub all_galleries: bool,
}

/// A key as shown to administrators: everything but the secret's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub galleries: GalleryAccess,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

impl From<ApiKeyRecord> for KeyInfo {
    fn from(r: ApiKeyRecord) -> Self {
        Self {
            scopes: parse_scopes(&r.scopes).unwrap_or_default(),
            galleries: GalleryAccess::from_stored(&r.galleries),
            name: r.name,
            created_at_ms: r.created_at_ms,
            last_used_at_ms: r.last_used_at_ms,
            revoked_at_ms: r.revoked_at_ms,
        }
    }
}

/// Creates the key; returns the key itself (shown this once) and its description.
pub async fn create_key(
    store: &TemplateStore,
    request: KeyRequest,
    audit: Option<&AuditEvent>,
) -> Result<(String, KeyInfo), AccessError> {
    let invalid = AccessError::InvalidRequest;
    check_name("key name", &request.name).map_err(invalid)?;
    let scopes = parse_scopes(&request.scopes).map_err(invalid)?;
    if scopes.is_empty() {
        return Err(invalid(
            "a key needs at least one scope: enroll, identify, verify, delete, read, admin".into(),
        ));
    }
    let galleries = match (request.all_galleries, request.galleries.is_empty()) {
        (true, true) => GalleryAccess::All,
        (true, false) => {
            return Err(invalid(
                "name galleries or allow all galleries, not both".into(),
            ))
        }
        (false, true) => {
            return Err(invalid(
                "a key needs at least one gallery, or all galleries".into(),
            ))
        }
        (false, false) => {
            for g in &request.galleries {
                check_name("gallery", g).map_err(invalid)?;
            }
            GalleryAccess::Only(request.galleries.into_iter().collect())
        }
    };
    let key = generate();
    let record = store
        .create_api_key(
            &NewApiKey {
                name: request.name,
                key_id: key.key_id,
                secret_sha256: key.secret_sha256,
                scopes: scopes.iter().map(|s| s.as_str().to_string()).collect(),
                galleries: galleries.to_stored(),
            },
            audit,
        )
        .await?;
    Ok((key.token, record.into()))
}

pub async fn list_keys(store: &TemplateStore) -> Result<Vec<KeyInfo>, AccessError> {
    Ok(store
        .api_keys()
        .await?
        .into_iter()
        .map(KeyInfo::from)
        .collect())
}

pub async fn revoke_key(
    store: &TemplateStore,
    name: &str,
    audit: Option<&AuditEvent>,
) -> Result<KeyInfo, AccessError> {
    Ok(store.revoke_api_key(name, audit).await?.into())
}
