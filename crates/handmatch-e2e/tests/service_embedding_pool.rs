//! The embedding pool: int8 artefacts get one by default on a CPU; through the service
//! (`--embed-workers 2`), a request that finds the server idle runs in the solo session
//! over all threads, requests that overlap run in the workers' sessions side by side, and
//! every session ranks and scores alike.

mod common;

use common::metrics::{scrape, value};
use common::{hand_image, pb_image, Backend};
use handmatch_core::hand_image::Aspect;
use handmatch_proto::v1 as pb;
use handmatch_server::config::Args;
use tokio::task::JoinSet;

/// Scores may differ between sessions of different thread counts only by float rounding.
const SCORE_TOLERANCE: f32 = 1e-5;
const CONCURRENT: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pooled_sessions_run_side_by_side_and_score_alike() {
    let url = common::database(Backend::Sqlite).await;
    let mut args = Args::for_model(common::model(1), &url);
    args.embed_workers = 2;
    args.max_batch_size = 1;
    args.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = common::start_with(args).await.unwrap();
    let at = server.metrics_addr.expect("metrics are served");
    let mut c = common::client(&server).await;
    for (nth, subject) in ["alice", "bob", "carol"].into_iter().enumerate() {
        c.enroll(pb::EnrollRequest {
            subject_id: subject.into(),
            images: vec![pb_image(
                hand_image(Aspect::Palmar, nth),
                pb::Aspect::Palmar,
            )],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let embedded = |s: &prometheus_parse::Scrape, session| {
        value(
            s,
            "handmatch_embedding_requests_total",
            &[("session", session)],
        )
    };
    let idle = scrape(at).await;
    assert_eq!(
        (embedded(&idle, "solo"), embedded(&idle, "worker")),
        (3.0, 0.0),
        "one enrolment at a time: each runs alone, in the solo session"
    );
    let alone = common::ranking(
        c.identify(common::dorsal_query())
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(alone.len(), 3);

    let mut calls = JoinSet::new();
    for _ in 0..CONCURRENT {
        let mut c = c.clone();
        calls.spawn(async move { c.identify(common::dorsal_query()).await });
    }
    while let Some(answer) = calls.join_next().await {
        let under_load = common::ranking(answer.unwrap().unwrap().into_inner());
        assert_eq!(under_load.len(), alone.len());
        for ((who, score), (alone_who, alone_score)) in under_load.iter().zip(&alone) {
            assert_eq!(
                who, alone_who,
                "the same ranking under load: {under_load:?} vs {alone:?}"
            );
            assert!(
                (score - alone_score).abs() <= SCORE_TOLERANCE,
                "{who}: {score} under load vs {alone_score} alone"
            );
        }
    }
    let loaded = scrape(at).await;
    let solo = embedded(&loaded, "solo") - embedded(&idle, "solo");
    let worker = embedded(&loaded, "worker");
    assert_eq!(solo + worker, CONCURRENT as f64 + 1.0);
    assert!(
        worker >= 1.0,
        "{CONCURRENT} concurrent requests, yet none ran beside another ({solo} alone)"
    );
    server.shutdown().await.unwrap();
}

#[test]
fn automatic_layout_pools_int8_artefacts_on_a_cpu_only() {
    use handmatch_core::embed::metadata::Precision;
    use handmatch_core::embed::{EmbeddingPool, PoolLayout, RuntimeOptions};
    let cpu = RuntimeOptions {
        device: handmatch_core::embed::Device::Cpu,
        ..Default::default()
    };
    let cores = PoolLayout::cores();
    let int8 = EmbeddingPool::open(&common::reduced_model(1, Precision::Int8), &cpu, 0).unwrap();
    assert_eq!(int8.layout(), PoolLayout::resolve(0, 0, cores, true));
    assert_eq!(int8.layout().solo_threads.is_some(), cores > 1);
    let fp32 = EmbeddingPool::open(&common::model(1), &cpu, 0).unwrap();
    assert_eq!(fp32.layout(), PoolLayout::resolve(1, 0, cores, false));
    let asked = EmbeddingPool::open(&common::model(1), &cpu, 2).unwrap();
    assert_eq!(asked.layout().workers, 2);
}
