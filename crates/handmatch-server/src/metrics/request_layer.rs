//! `RequestMetricsLayer`: counts every gRPC call by method and status code and times it.
//! The code is the response headers' `grpc-status` (a call that failed before answering)
//! or OK; the time runs until the response headers, which for a unary call is the
//! handler's whole work.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};

use crate::metric_names as names;

#[derive(Debug, Clone, Copy, Default)]
pub struct RequestMetricsLayer;

impl<S> Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RequestMetrics<S> {
    inner: S,
}

type Boxed<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for RequestMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Boxed<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_label(request.uri().path());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let started = Instant::now();
            let response = answer.await;
            let code = match &response {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from),
                Err(_) => tonic::Code::Unavailable,
            };
            let code = format!("{code:?}");
            metrics::counter!(names::REQUESTS, "method" => method.clone(), "code" => code)
                .increment(1);
            metrics::histogram!(names::REQUEST_SECONDS, "method" => method)
                .record(started.elapsed().as_secs_f64());
            response
        })
    }
}

/// "/handmatch.v1.HandMatch/Identify" → "HandMatch/Identify"; anything else "other", so a
/// scanner cannot create a time series per path it tries.
fn method_label(path: &str) -> String {
    let known = [
        "/handmatch.v1.HandMatch/",
        "/handmatch.v1.Admin/",
        "/grpc.health.v1.Health/",
        "/grpc.reflection.v1.ServerReflection/",
    ];
    for prefix in known {
        if let Some(method) = path.strip_prefix(prefix) {
            if !method.is_empty() && method.len() <= 64 && method.chars().all(char::is_alphanumeric)
            {
                let service = prefix.trim_matches('/').rsplit('.').next().unwrap_or("");
                return format!("{service}/{method}");
            }
        }
    }
    "other".into()
}

#[cfg(test)]
mod tests {
    use super::method_label;

    #[test]
    fn methods_are_labelled_by_service_and_name_and_nothing_else_gets_a_series() {
        assert_eq!(
            method_label("/handmatch.v1.HandMatch/Identify"),
            "HandMatch/Identify"
        );
        assert_eq!(
            method_label("/handmatch.v1.Admin/CreateKey"),
            "Admin/CreateKey"
        );
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "Health/Check");
        for junk in [
            "/",
            "/x/y",
            "/handmatch.v1.HandMatch/",
            "/handmatch.v1.HandMatch/a/b",
        ] {
            assert_eq!(method_label(junk), "other", "{junk}");
        }
    }
}
