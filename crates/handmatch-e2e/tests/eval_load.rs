//! The load generator against the real server on loopback: it stops by itself, counts every
//! status code, reports latency per RPC, and leaves the gallery as it found it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Backend;
use handmatch_core::hand_image::Aspect;
use handmatch_eval::client::pb_image;
use handmatch_eval::load::{self, LoadConfig, LoadImages, Rpc};
use handmatch_proto::v1 as pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_mixed_load_reports_per_rpc_and_cleans_up() {
    let data = common::hands();
    let server = common::start(&common::model(0), &common::database(Backend::Sqlite).await).await;
    let mut client = common::eval_client(&server).await;
    let palmar: Vec<_> = data
        .images
        .iter()
        .filter(|i| i.aspect == Aspect::Palmar)
        .take(10)
        .collect();
    for (n, img) in palmar.iter().enumerate() {
        client
            .enroll(pb::EnrollRequest {
                subject_id: format!("s{n}"),
                images: vec![pb_image(img).unwrap()],
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let images = Arc::new(LoadImages {
        queries: data
            .images
            .iter()
            .filter(|i| i.aspect == Aspect::Dorsal)
            .take(8)
            .map(|i| pb_image(i).unwrap())
            .collect(),
        gallery: palmar.iter().map(|i| pb_image(i).unwrap()).collect(),
    });
    let cfg = LoadConfig {
        gallery: String::new(),
        consent_reference: String::new(),
        concurrency: 3,
        duration: Duration::from_secs(2),
        max_requests: 400,
        mix: "identify=3,enroll=1,delete=1".parse().unwrap(),
        seed: 7,
    };
    let started = Instant::now();
    let report = load::run(client.clone(), images, &cfg).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the run must stop by itself"
    );
    assert!(report.requests > 0 && report.requests <= 400);
    let total: u64 = report.rpcs.values().map(|s| s.requests).sum();
    assert_eq!(total, report.requests);
    for (rpc, stats) in &report.rpcs {
        assert_eq!(stats.codes.values().sum::<u64>(), stats.requests, "{rpc:?}");
        assert_eq!(
            stats.codes.get("Ok"),
            Some(&stats.requests),
            "{rpc:?}: {:?}",
            stats.codes
        );
        assert!(stats.p50_ms <= stats.p99_ms && stats.p99_ms <= stats.max_ms);
    }
    assert!(report.rpcs.contains_key(&Rpc::Identify));
    assert!(report.table().contains("| Identify |"));
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["rpcs"]["identify"]["p99_ms"].is_number(), "{json}");
    // Whatever the workers enrolled, they deleted.
    let info = client
        .get_info(pb::GetInfoRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((info.gallery_subjects, info.gallery_templates), (10, 10));
    server.shutdown().await.unwrap();
}
