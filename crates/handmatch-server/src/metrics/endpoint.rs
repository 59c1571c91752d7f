//! The `/metrics` endpoint (Prometheus text format) on `--metrics-listen`, apart from the
//! gRPC port. Gauges that describe state (gallery size, queue depth, database pool,
//! staleness) are read at each scrape.

use std::net::SocketAddr;

use anyhow::Context;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::metric_names as names;
use crate::service::ServingCell;

#[derive(Clone)]
struct Scrape {
    handle: &'static PrometheusHandle,
    serving: ServingCell,
}

/// Binds `addr` and serves `/metrics` until the task is aborted; returns the bound address
/// (port 0 picks one) and the task.
pub async fn serve(
    addr: SocketAddr,
    handle: &'static PrometheusHandle,
    serving: ServingCell,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state(Scrape { handle, serving });
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the metrics endpoint stopped: {e}");
        }
    });
    tracing::info!(%bound, "serving Prometheus metrics on /metrics");
    Ok((bound, task))
}

async fn render(State(scrape): State<Scrape>) -> String {
    if let Some(serving) = scrape.serving.get() {
        let m = &serving.matcher;
        let (subjects, templates) = m.index_totals();
        metrics::gauge!(names::GALLERY_SUBJECTS).set(subjects as f64);
        metrics::gauge!(names::GALLERY_TEMPLATES).set(templates as f64);
        metrics::gauge!(names::QUEUE_DEPTH).set(m.queue_depth() as f64);
        let (open, idle) = m.store().connections();
        metrics::gauge!(names::DB_CONNECTIONS).set(f64::from(open));
        metrics::gauge!(names::DB_CONNECTIONS_IN_USE)
            .set((open as usize).saturating_sub(idle) as f64);
        metrics::gauge!(names::CHANGE_FEED_STALENESS).set(m.freshness().staleness().as_secs_f64());
    }
    scrape.handle.render()
}
