//! Health that tells the truth about the template store: the server waits for a database
//! that is down at start (retrying with backoff, NOT_SERVING meanwhile) instead of exiting,
//! and while serving it probes the store every few seconds and reports it under its own
//! health service name. Identify keeps answering from the in-memory index while the store
//! is away; writes fail fast with UNAVAILABLE. An embedding worker that has stopped makes
//! the API itself NOT_SERVING, and so does an index that may miss other replicas' changes
//! for longer than `--max-staleness-seconds`.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::service::{HandMatchService, Matcher};
use crate::store::{StoreError, TemplateStore};
use handmatch_proto::v1::hand_match_server::HandMatchServer;

/// The health service name of the template store.
pub const STORE_SERVICE: &str = "handmatch.v1.TemplateStore";

const FIRST_RETRY: Duration = Duration::from_millis(250);
const LONGEST_RETRY: Duration = Duration::from_secs(10);
const PROBE_EVERY: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects, retrying for as long as the database is unavailable; errors that waiting will
/// not mend (a malformed URL, a failed migration) end start-up.
pub async fn connect_store(
    url: &str,
    max_connections: u32,
    health: &HealthReporter,
) -> Result<TemplateStore, StoreError> {
    let mut delay = FIRST_RETRY;
    loop {
        match TemplateStore::connect(url, max_connections).await {
            Ok(store) => {
                health
                    .set_service_status(STORE_SERVICE, ServingStatus::Serving)
                    .await;
                return Ok(store);
            }
            Err(StoreError::Unavailable(why)) => {
                health
                    .set_service_status(STORE_SERVICE, ServingStatus::NotServing)
                    .await;
                tracing::warn!("template store unavailable ({why}); retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(LONGEST_RETRY);
            }
            Err(other) => return Err(other),
        }
    }
}

/// Probes the store, the embedding worker and the index's staleness every few seconds and
/// reports what it finds, until aborted.
pub fn watch(
    matcher: Arc<Matcher>,
    health: HealthReporter,
    max_staleness: Option<Duration>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut store_was = ServingStatus::Serving;
        let mut fresh_was = true;
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            let store = probe(matcher.store()).await;
            if store != store_was {
                tracing::warn!(?store, "template store health changed");
                health.set_service_status(STORE_SERVICE, store).await;
                store_was = store;
            }
            if !matcher.embedding_worker_running() {
                tracing::error!("the embedding worker has stopped: NOT_SERVING");
                health
                    .set_not_serving::<HandMatchServer<HandMatchService>>()
                    .await;
                return;
            }
            let staleness = matcher.freshness().staleness();
            let fresh = max_staleness.is_none_or(|most| staleness <= most);
            if fresh != fresh_was {
                report_freshness(&health, fresh, staleness).await;
                fresh_was = fresh;
            }
        }
    })
}

/// A replica whose index may miss changes older than `--max-staleness-seconds` stops
/// taking searches (load balancers route by the API's status) until it has caught up.
async fn report_freshness(health: &HealthReporter, fresh: bool, staleness: Duration) {
    if fresh {
        tracing::info!("the index has caught up with the change feed: SERVING");
        health
            .set_serving::<HandMatchServer<HandMatchService>>()
            .await;
    } else {
        tracing::warn!(
            ?staleness,
            "the index may lack changes committed {staleness:?} ago: NOT_SERVING"
        );
        health
            .set_not_serving::<HandMatchServer<HandMatchService>>()
            .await;
    }
}

async fn probe(store: &TemplateStore) -> ServingStatus {
    match tokio::time::timeout(PROBE_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => ServingStatus::Serving,
        Ok(Err(e)) => {
            tracing::debug!("template store probe failed: {e}");
            ServingStatus::NotServing
        }
        Err(_) => ServingStatus::NotServing,
    }
}
