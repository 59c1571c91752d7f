//! `--index-precision f16` over real gRPC: a server keeping its rows in f16 ranks the same
//! gallery as one in f32, every score within 2e-3 (and `--search-threads` changes nothing).

mod common;

use common::{hand_image, pb_image, Backend};
use handmatch_core::hand_image::Aspect;
use handmatch_proto::v1 as pb;
use handmatch_server::config::Args;
use handmatch_server::index::IndexPrecision;

async fn ranking(url: &str, precision: IndexPrecision, threads: u16) -> Vec<(String, f32)> {
    let mut args = Args::for_model(common::model(1), url);
    args.index_precision = precision;
    args.search_threads = threads;
    let server = common::start_with(args).await.unwrap();
    let mut c = common::client(&server).await;
    let found = c
        .identify(common::dorsal_query())
        .await
        .unwrap()
        .into_inner();
    server.shutdown().await.unwrap();
    common::ranking(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_f16_index_ranks_as_the_f32_one_within_its_rounding() {
    let url = common::database(Backend::Sqlite).await;
    let server = common::start_with(Args::for_model(common::model(1), &url))
        .await
        .unwrap();
    let mut c = common::client(&server).await;
    for (s, nth) in ["a", "b", "c", "d", "e", "f"].iter().zip(0..) {
        c.enroll(pb::EnrollRequest {
            subject_id: s.to_string(),
            images: vec![
                pb_image(hand_image(Aspect::Palmar, nth), pb::Aspect::Palmar),
                pb_image(hand_image(Aspect::Palmar, nth + 6), pb::Aspect::Palmar),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    server.shutdown().await.unwrap();

    let f32_answer = ranking(&url, IndexPrecision::F32, 1).await;
    assert_eq!(f32_answer.len(), 6);
    assert_eq!(ranking(&url, IndexPrecision::F32, 2).await, f32_answer);
    let f16_answer = ranking(&url, IndexPrecision::F16, 1).await;
    for (s, score) in &f32_answer {
        let (_, half) = f16_answer.iter().find(|(h, _)| h == s).unwrap();
        assert!((score - half).abs() <= 2e-3, "{s}: f32 {score}, f16 {half}");
    }
}
