//! The service: request checks, image preparation, the `Matcher` operations, the gRPC
//! surface and the one error type.

pub mod error;
pub mod grpc;
pub mod images;
pub mod matcher;
pub mod operating_point;
pub mod validate;

pub use error::ServiceError;
pub use grpc::HandMatchService;
pub use matcher::Matcher;
