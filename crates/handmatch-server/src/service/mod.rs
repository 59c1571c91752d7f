//! The service: request checks, image preparation, the `Matcher` operations, the gRPC
//! surfaces (`HandMatch`, `Admin`) and the one error type.

pub mod admin_grpc;
pub mod admission;
pub mod call_audit;
pub mod error;
pub mod fingerprint;
pub mod grpc;
pub mod images;
pub mod matcher;
pub mod operating_point;
pub mod page_token;
mod pb_convert;
pub mod serving;
pub mod templates;
pub mod validate;

pub use error::ServiceError;
pub use grpc::HandMatchService;
pub use matcher::Matcher;
pub use serving::{Serving, ServingCell};
