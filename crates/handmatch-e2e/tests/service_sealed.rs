//! A server with a template key, over real gRPC: what it enrols is sealed in the database
//! and found again after a restart with the key; without the key (or with another) the
//! server refuses to start on that database, naming the key it lacks.

mod common;

use common::{hand_image, pb_image, Backend};
use handmatch_core::hand_image::Aspect;
use handmatch_proto::v1 as pb;
use handmatch_server::config::Args;
use handmatch_server::store::TemplateKey;
use sqlx::Row;

fn args(url: &str, key: Option<&std::path::Path>) -> Args {
    let mut args = Args::for_model(common::model(1), url);
    args.protection.template_key_file = key.map(|k| k.to_path_buf());
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_gallery_serves_with_its_key_and_refuses_to_start_without() {
    let url = common::database(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let (key, other) = (
        dir.path().join("template.key"),
        dir.path().join("other.key"),
    );
    std::fs::write(&key, [3u8; 32]).unwrap();
    std::fs::write(&other, [4u8; 32]).unwrap();
    let key_id = TemplateKey::from_file(&key).unwrap().id().to_string();

    let server = common::start_with(args(&url, Some(&key))).await.unwrap();
    let mut c = common::client(&server).await;
    c.enroll(pb::EnrollRequest {
        subject_id: "alice".into(),
        images: vec![pb_image(hand_image(Aspect::Palmar, 0), pb::Aspect::Palmar)],
        ..Default::default()
    })
    .await
    .unwrap();
    server.shutdown().await.unwrap();

    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let row = sqlx::query("SELECT key_id FROM templates")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        row.get::<Option<String>, _>(0).as_deref(),
        Some(key_id.as_str())
    );
    pool.close().await;

    for (name, key) in [("no key", None), ("another key", Some(other.as_path()))] {
        let refused = common::start_with(args(&url, key)).await.err();
        let message = refused.map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(message.contains(&key_id), "{name}: {message:?}");
    }

    let server = common::start_with(args(&url, Some(&key))).await.unwrap();
    let mut c = common::client(&server).await;
    let found = c
        .identify(pb::IdentifyRequest {
            images: vec![pb_image(hand_image(Aspect::Dorsal, 0), pb::Aspect::Dorsal)],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.candidates[0].subject_id, "alice");
    server.shutdown().await.unwrap();
}
