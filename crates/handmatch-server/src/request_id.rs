//! Request ids: every call gets one (the caller's `x-request-id`, else a new UUID), sent
//! back in the response metadata, carried by every log line of the call (a tracing span)
//! and by its audit event.

use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{GrpcMakeClassifier, TraceLayer};

pub use crate::service::call_audit::REQUEST_ID;

/// Outermost: gives the request its id.
pub fn set_layer() -> SetRequestIdLayer<MakeRequestUuid> {
    SetRequestIdLayer::x_request_id(MakeRequestUuid)
}

/// Copies the id into the response.
pub fn propagate_layer() -> PropagateRequestIdLayer {
    PropagateRequestIdLayer::x_request_id()
}

type SpanOf = fn(&http::Request<tonic::body::Body>) -> tracing::Span;

/// A span per call named by its id and method, so every log line of the call carries
/// them. Failures are the handlers' to log (a NOT_FOUND is no server error).
pub fn span_layer() -> TraceLayer<GrpcMakeClassifier, SpanOf, (), (), (), (), ()> {
    TraceLayer::new_for_grpc()
        .make_span_with(request_span as SpanOf)
        .on_request(())
        .on_response(())
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

fn request_span(request: &http::Request<tonic::body::Body>) -> tracing::Span {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", id, rpc = %request.uri().path())
}
