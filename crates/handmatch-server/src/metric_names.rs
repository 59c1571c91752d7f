//! Every Prometheus metric's name, in one place: recorded anywhere through the `metrics`
//! facade, rendered by `crate::metrics`.

pub const REQUESTS: &str = "handmatch_requests_total";
pub const REQUEST_SECONDS: &str = "handmatch_request_duration_seconds";
pub const DECODE_SECONDS: &str = "handmatch_decode_seconds";
pub const EMBED_SECONDS: &str = "handmatch_embed_seconds";
pub const SEARCH_SECONDS: &str = "handmatch_search_seconds";
pub const EMBED_BATCH_IMAGES: &str = "handmatch_embedding_batch_images";
pub const EMBED_SESSION_REQUESTS: &str = "handmatch_embedding_requests_total";
pub const QUEUE_DEPTH: &str = "handmatch_embedding_queue_depth";
pub const GALLERY_SUBJECTS: &str = "handmatch_gallery_subjects";
pub const GALLERY_TEMPLATES: &str = "handmatch_gallery_templates";
pub const STORE_ERRORS: &str = "handmatch_store_errors_total";
pub const DB_CONNECTIONS_IN_USE: &str = "handmatch_db_connections_in_use";
pub const DB_CONNECTIONS: &str = "handmatch_db_connections";
pub const CHANGE_FEED_STALENESS: &str = "handmatch_change_feed_staleness_seconds";
