//! Durability across restarts: templates are found again, deletions stay deleted, and a
//! database holding another model's templates needs an explicit decision.

mod common;

use common::Backend;
use handmatch_core::hand_image::{Aspect, HandImage};
use handmatch_proto::v1 as pb;
use handmatch_server::config::{Args, OnModelMismatch};
use tonic::Code;

fn palmar_request(subject: &str, imgs: &[&HandImage]) -> pb::EnrollRequest {
    pb::EnrollRequest {
        subject_id: subject.into(),
        images: imgs
            .iter()
            .map(|i| pb::Image {
                data: std::fs::read(&i.path).unwrap(),
                aspect: pb::Aspect::Palmar as i32,
                side: 0,
            })
            .collect(),
        ..Default::default()
    }
}

// Long on purpose: one scenario, read top to bottom; each step depends on the state the
// previous ones left, so splitting it would hide that state.
async fn restart_keeps_templates_and_deletions(backend: Backend) {
    let data = common::hands();
    let db = common::database(backend).await;
    let model = common::model(0);
    let subjects: Vec<String> = data
        .subjects()
        .keys()
        .take(5)
        .map(|s| s.to_string())
        .collect();
    let palmar = |s: &str| -> Vec<&HandImage> {
        data.images
            .iter()
            .filter(|i| i.subject == s && i.aspect == Aspect::Palmar)
            .collect()
    };
    let deleted = subjects[2].clone();

    let server = common::start(&model, &db).await;
    let mut client = common::client(&server).await;
    let mut first_ids = Vec::new();
    for s in &subjects {
        let r = client
            .enroll(palmar_request(s, &palmar(s)))
            .await
            .unwrap()
            .into_inner();
        first_ids.push(r.templates);
    }
    let gone = client
        .delete_subject(pb::DeleteSubjectRequest {
            subject_id: deleted.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gone.templates_deleted as usize, palmar(&deleted).len());
    server.shutdown().await.unwrap();

    let server = common::start(&model, &db).await;
    let mut client = common::client(&server).await;
    let info = client
        .get_info(pb::GetInfoRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.gallery_subjects, 4);
    let query = data
        .images
        .iter()
        .find(|i| i.subject == deleted && i.aspect == Aspect::Dorsal)
        .unwrap();
    let answer = client
        .identify(pb::IdentifyRequest {
            images: vec![pb::Image {
                data: std::fs::read(&query.path).unwrap(),
                aspect: pb::Aspect::Dorsal as i32,
                side: 0,
            }],
            top_k: Some(100),
            gallery_aspect: 0,
            min_score: None,
            operating_point: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let returned: Vec<&str> = answer
        .candidates
        .iter()
        .map(|c| c.subject_id.as_str())
        .collect();
    assert_eq!(returned.len(), 4);
    assert!(
        !returned.contains(&deleted.as_str()),
        "a deleted subject came back: {returned:?}"
    );
    let err = client
        .get_subject(pb::GetSubjectRequest {
            subject_id: deleted.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Enrolment stays idempotent across the restart: same ids, nothing new.
    let again = client
        .enroll(palmar_request(&subjects[0], &palmar(&subjects[0])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        again
            .templates
            .iter()
            .map(|t| t.template_id)
            .collect::<Vec<_>>(),
        first_ids[0]
            .iter()
            .map(|t| t.template_id)
            .collect::<Vec<_>>()
    );
    assert!(again.templates.iter().all(|t| !t.created));
    server.shutdown().await.unwrap();

    // Another model on the same database: refused, unless told what to do.
    let other = common::model(1);
    let err = common::start_with(Args::for_model(&other, &db))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("templates of another model") && err.contains("--on-model-mismatch"),
        "{err}"
    );
    let mut args = Args::for_model(&other, &db);
    args.on_model_mismatch = OnModelMismatch::Ignore;
    let server = common::start_with(args).await.unwrap();
    let mut client = common::client(&server).await;
    let info = client
        .get_info(pb::GetInfoRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        info.gallery_subjects, 0,
        "another model's templates are never loaded"
    );
    server.shutdown().await.unwrap();
    // The first model still finds its own templates: ignore deleted nothing.
    let server = common::start(&model, &db).await;
    let mut client = common::client(&server).await;
    assert_eq!(
        client
            .get_info(pb::GetInfoRequest::default())
            .await
            .unwrap()
            .into_inner()
            .gallery_subjects,
        4
    );
    server.shutdown().await.unwrap();
    let mut args = Args::for_model(&other, &db);
    args.on_model_mismatch = OnModelMismatch::Delete;
    common::start_with(args)
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    let server = common::start(&model, &db).await;
    let mut client = common::client(&server).await;
    assert_eq!(
        client
            .get_info(pb::GetInfoRequest::default())
            .await
            .unwrap()
            .into_inner()
            .gallery_subjects,
        0
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_sqlite() {
    restart_keeps_templates_and_deletions(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_postgres() {
    restart_keeps_templates_and_deletions(Backend::Postgres).await;
}
