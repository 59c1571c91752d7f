//! The service layer's one error type, and the one place where errors become gRPC codes.

use tonic::{Code, Status};

use crate::access::AccessError;
use crate::store::StoreError;
use handmatch_core::embed::queue::QueueError;
use handmatch_core::embed::EmbedError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidArgument(msg.into())
    }

    pub fn code(&self) -> Code {
        match self {
            ServiceError::InvalidArgument(_) => Code::InvalidArgument,
            ServiceError::Unauthenticated(_) => Code::Unauthenticated,
            ServiceError::PermissionDenied(_) => Code::PermissionDenied,
            ServiceError::NotFound(_) => Code::NotFound,
            ServiceError::AlreadyExists(_) => Code::AlreadyExists,
            ServiceError::FailedPrecondition(_) => Code::FailedPrecondition,
            ServiceError::ResourceExhausted(_) => Code::ResourceExhausted,
            ServiceError::Unavailable(_) => Code::Unavailable,
            ServiceError::Internal(_) => Code::Internal,
        }
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        if e.code() == Code::Internal {
            tracing::error!("internal error: {e}");
        }
        Status::new(e.code(), e.to_string())
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        metrics::counter!(crate::metric_names::STORE_ERRORS, "kind" => e.kind()).increment(1);
        match e {
            StoreError::Unavailable(m) => {
                ServiceError::Unavailable(format!("template store unavailable: {m}"))
            }
            StoreError::NotFound {
                gallery,
                subject_id,
            } => ServiceError::NotFound(format!(
                "subject {subject_id:?} is not enrolled in gallery {gallery:?}"
            )),
            e @ StoreError::NoSuchKey(_) => ServiceError::NotFound(e.to_string()),
            StoreError::AlreadyExists(m) => ServiceError::AlreadyExists(m),
            StoreError::InvalidInput(m) => ServiceError::InvalidArgument(m),
            other => ServiceError::Internal(format!("template store: {other}")),
        }
    }
}

impl From<QueueError> for ServiceError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Overloaded { .. } => ServiceError::ResourceExhausted(e.to_string()),
            QueueError::Stopped => ServiceError::Unavailable(e.to_string()),
            QueueError::Embed(e @ EmbedError::NoHand { .. }) => {
                ServiceError::InvalidArgument(e.to_string())
            }
            QueueError::Embed(e) => ServiceError::Internal(format!("embedding failed: {e}")),
        }
    }
}

impl From<AccessError> for ServiceError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Unauthenticated(m) => ServiceError::Unauthenticated(m),
            AccessError::PermissionDenied(m) => ServiceError::PermissionDenied(m),
            AccessError::InvalidRequest(m) => ServiceError::InvalidArgument(m),
            AccessError::Store(e) => e.into(),
        }
    }
}
