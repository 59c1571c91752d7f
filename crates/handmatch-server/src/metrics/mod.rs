//! Prometheus metrics. Code anywhere records through the `metrics` facade (a no-op until a
//! recorder is installed); a server started with `--metrics-listen` installs the process's
//! recorder (`recorder`), counts and times every call (`request_layer`) and serves the text
//! format on `/metrics`, refreshing its gauges at each scrape (`endpoint`).

mod endpoint;
mod recorder;
mod request_layer;

pub use endpoint::serve;
pub use recorder::install;
pub use request_layer::RequestMetricsLayer;

/// Every metric's name, in one place.
pub mod names {
    pub const REQUESTS: &str = "handmatch_requests_total";
    pub const REQUEST_SECONDS: &str = "handmatch_request_duration_seconds";
    pub const DECODE_SECONDS: &str = "handmatch_decode_seconds";
    pub const EMBED_SECONDS: &str = "handmatch_embed_seconds";
    pub const SEARCH_SECONDS: &str = "handmatch_search_seconds";
    pub const EMBED_BATCH_IMAGES: &str = "handmatch_embedding_batch_images";
    pub const QUEUE_DEPTH: &str = "handmatch_embedding_queue_depth";
    pub const GALLERY_SUBJECTS: &str = "handmatch_gallery_subjects";
    pub const GALLERY_TEMPLATES: &str = "handmatch_gallery_templates";
    pub const STORE_ERRORS: &str = "handmatch_store_errors_total";
    pub const DB_CONNECTIONS_IN_USE: &str = "handmatch_db_connections_in_use";
    pub const DB_CONNECTIONS: &str = "handmatch_db_connections";
    pub const CHANGE_FEED_STALENESS: &str = "handmatch_change_feed_staleness_seconds";
}
