//! Asking a server's gRPC health service, and waiting for a status.

use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// The status of `service` (Unknown when the check itself fails).
pub async fn status(channel: Channel, service: &str) -> i32 {
    match HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
    {
        Ok(r) => r.into_inner().status,
        Err(_) => ServingStatus::Unknown as i32,
    }
}

pub async fn wait_for(channel: &Channel, service: &str, want: ServingStatus, within: Duration) {
    let until = Instant::now() + within;
    loop {
        let now = status(channel.clone(), service).await;
        if now == want as i32 {
            return;
        }
        assert!(
            Instant::now() < until,
            "{service} still {now} after {within:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
