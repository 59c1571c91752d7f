//! The service: request checks, image preparation, the `Matcher` operations, the gRPC
//! surface and the one error type.

pub mod admission;
pub mod error;
pub mod gallery;
pub mod grpc;
pub mod images;
pub mod matcher;
pub mod operating_point;
pub mod page_token;
pub mod validate;

pub use error::ServiceError;
pub use grpc::HandMatchService;
pub use matcher::Matcher;
