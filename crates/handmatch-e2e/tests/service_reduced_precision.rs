//! int8 and fp16 artefacts served over real gRPC: the server loads each, says which it is,
//! and its Identify scores equal the same artefact run offline (≤ 1e-5); for int8 because
//! its artefacts embed each image on its own whatever the batching.

mod common;

use common::{hand_image, pb_image, Backend};
use handmatch_core::embed::decode::DecodeLimits;
use handmatch_core::embed::metadata::Precision;
use handmatch_core::embed::preprocess::{decode_for_model, model_input};
use handmatch_core::embed::{EmbeddingSession, RuntimeOptions};
use handmatch_core::hand_image::Aspect;
use handmatch_proto::v1 as pb;
use handmatch_server::config::Args;

fn offline_embedding(session: &mut EmbeddingSession, bytes: &[u8]) -> Vec<f32> {
    let meta = session.metadata().clone();
    let rgb = decode_for_model(bytes, &DecodeLimits::default(), &meta).unwrap();
    let input = model_input(&meta, rgb);
    session.embed_inputs(&[&input]).unwrap()[0].clone().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_int8_artefact_serves_the_scores_it_computes_offline() {
    serves_the_scores_it_computes_offline(Precision::Int8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fp16_artefact_serves_the_scores_it_computes_offline() {
    serves_the_scores_it_computes_offline(Precision::Fp16).await;
}

async fn serves_the_scores_it_computes_offline(precision: Precision) {
    let model = common::reduced_model(2, precision);
    let url = common::database(Backend::Sqlite).await;
    let server = common::start_with(Args::for_model(model.clone(), &url))
        .await
        .unwrap();
    let mut c = common::client(&server).await;
    let info = c
        .get_info(pb::GetInfoRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut session = EmbeddingSession::open(&model, &RuntimeOptions::default()).unwrap();
    assert_eq!(info.model_id, session.metadata().model_id);
    assert_eq!(
        (info.precision.as_str(), info.decode.as_str()),
        (precision.as_str(), "dct-scaled")
    );

    let subjects = ["a", "b", "c", "d"];
    let mut templates = Vec::new();
    for (s, nth) in subjects.iter().zip(0..) {
        let palm = hand_image(Aspect::Palmar, nth);
        templates.push(offline_embedding(&mut session, &palm));
        c.enroll(pb::EnrollRequest {
            subject_id: s.to_string(),
            images: vec![pb_image(palm, pb::Aspect::Palmar)],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let query = hand_image(Aspect::Dorsal, 1);
    let q = offline_embedding(&mut session, &query);
    let found = c
        .identify(pb::IdentifyRequest {
            images: vec![pb_image(query, pb::Aspect::Dorsal)],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    server.shutdown().await.unwrap();
    assert_eq!(found.candidates.len(), subjects.len());
    for cand in &found.candidates {
        let i = subjects.iter().position(|s| *s == cand.subject_id).unwrap();
        let want: f32 = q.iter().zip(&templates[i]).map(|(a, b)| a * b).sum();
        assert!(
            (cand.score - want).abs() <= 1e-5,
            "{}: served {} offline {want}",
            cand.subject_id,
            cand.score
        );
    }
}
