//! The access layer's errors; the service maps them to gRPC codes (in its `error` module).

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// No key, a malformed key, an unknown or a revoked one.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid key without the scope or the gallery.
    #[error("{0}")]
    PermissionDenied(String),
    /// A key administration request that breaks a rule (no scope, bad name, ...).
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
