//! Prometheus metrics over HTTP: `/metrics` on --metrics-listen parses as the text format,
//! and its counters, histograms and gauges move with the calls the server answers.

mod common;

use common::metrics::{scrape, value};
use common::{hand_image, pb_image, Backend};
use handmatch_core::hand_image::Aspect;
use handmatch_proto::v1 as pb;
use handmatch_server::config::Args;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_requests() {
    let url = common::database(Backend::Sqlite).await;
    let mut args = Args::for_model(common::model(1), &url);
    args.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = common::start_with(args).await.unwrap();
    let at = server.metrics_addr.expect("metrics are served");
    let mut c = common::client(&server).await;

    let before = scrape(at).await;
    assert_eq!(value(&before, "handmatch_gallery_subjects", &[]), 0.0);
    c.enroll(pb::EnrollRequest {
        subject_id: "alice".into(),
        images: vec![pb_image(hand_image(Aspect::Palmar, 0), pb::Aspect::Palmar)],
        ..Default::default()
    })
    .await
    .unwrap();
    for _ in 0..3 {
        c.identify(pb::IdentifyRequest {
            images: vec![pb_image(hand_image(Aspect::Dorsal, 0), pb::Aspect::Dorsal)],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let missing = c
        .get_subject(pb::GetSubjectRequest {
            subject_id: "nobody".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let after = scrape(at).await;

    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let identify = [("method", "HandMatch/Identify")];
    assert_eq!(
        moved("handmatch_requests_total", &[identify[0], ("code", "Ok")]),
        3.0
    );
    assert_eq!(
        moved(
            "handmatch_requests_total",
            &[("method", "HandMatch/GetSubject"), ("code", "NotFound")]
        ),
        1.0
    );
    assert_eq!(moved("handmatch_request_duration_seconds", &identify), 3.0);
    // One enrolment and three searches embedded and decoded; three searched.
    assert_eq!(moved("handmatch_decode_seconds", &[]), 4.0);
    assert_eq!(moved("handmatch_embed_seconds", &[]), 4.0);
    assert_eq!(moved("handmatch_embedding_batch_images", &[]), 4.0);
    let embedded = |session| {
        moved(
            "handmatch_embedding_requests_total",
            &[("session", session)],
        )
    };
    assert_eq!(embedded("solo") + embedded("worker"), 4.0);
    assert_eq!(moved("handmatch_search_seconds", &[]), 3.0);
    assert_eq!(value(&after, "handmatch_gallery_subjects", &[]), 1.0);
    assert_eq!(value(&after, "handmatch_gallery_templates", &[]), 1.0);
    assert!(value(&after, "handmatch_db_connections", &[]) >= 1.0);
    assert_eq!(value(&after, "handmatch_embedding_queue_depth", &[]), 0.0);
    server.shutdown().await.unwrap();
}
