//! The process's one Prometheus recorder (the `metrics` facade allows one), installed by
//! the first server that serves metrics; later servers in the same process share it.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::metric_names as names;

/// Seconds: from a fast decode to a slow CPU batch.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder once; returns the handle that renders it.
pub fn install() -> anyhow::Result<&'static PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle);
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(names::EMBED_BATCH_IMAGES.into()),
            BATCH_BUCKETS,
        )?
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        anyhow::bail!("another metrics recorder is installed in this process");
    }
    describe();
    Ok(HANDLE.get_or_init(|| handle))
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(names::REQUESTS, "gRPC calls by method and status code");
    describe_histogram!(
        names::REQUEST_SECONDS,
        Unit::Seconds,
        "gRPC call latency by method (until the response headers)"
    );
    describe_histogram!(
        names::DECODE_SECONDS,
        Unit::Seconds,
        "image decoding and preprocessing per request"
    );
    describe_histogram!(
        names::EMBED_SECONDS,
        Unit::Seconds,
        "embedding per request, queueing included"
    );
    describe_histogram!(
        names::SEARCH_SECONDS,
        Unit::Seconds,
        "gallery search per Identify or Verify"
    );
    describe_histogram!(
        names::EMBED_BATCH_IMAGES,
        "images in the embedding batch a request rode in"
    );
    describe_counter!(
        names::EMBED_SESSION_REQUESTS,
        "requests embedded, by the session that ran their batch: `solo` (alone, over all \
         threads) or `worker` (beside other batches)"
    );
    describe_gauge!(
        names::QUEUE_DEPTH,
        "requests waiting for an embedding worker"
    );
    describe_gauge!(
        names::GALLERY_SUBJECTS,
        "enrolled subjects in the index, every gallery"
    );
    describe_gauge!(
        names::GALLERY_TEMPLATES,
        "enrolled templates in the index, every gallery"
    );
    describe_counter!(
        names::STORE_ERRORS,
        "template store calls that failed, by kind"
    );
    describe_gauge!(names::DB_CONNECTIONS_IN_USE, "database connections in use");
    describe_gauge!(names::DB_CONNECTIONS, "database connections open");
    describe_gauge!(
        names::CHANGE_FEED_STALENESS,
        "how long ago the index last held every committed change"
    );
}
