//! Prometheus metrics. Code anywhere records through the `metrics` facade (a no-op until a
//! recorder is installed); a server started with `--metrics-listen` installs the process's
//! recorder (`recorder`), counts and times every call (`request_layer`) and serves the text
//! format on `/metrics`, refreshing its gauges at each scrape (`endpoint`). The names are
//! in `crate::metric_names`, where recording code finds them without depending on this
//! module.

mod endpoint;
mod recorder;
mod request_layer;

pub use endpoint::serve;
pub use recorder::install;
pub use request_layer::RequestMetricsLayer;
