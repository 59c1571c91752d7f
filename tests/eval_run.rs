//! `handmatch-eval run` against the real server gives exactly the metrics that
//! `handmatch-train evaluate` computes offline for the same model, data and subjects.

mod common;

use common::Backend;
use handmatch::dataset::HandImage;
use handmatch::embed::RuntimeOptions;
use handmatch_trainer::evaluate::{embed_images, score};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_through_the_service_equal_the_offline_evaluation() {
    let data = common::hands();
    let model = common::model(0);
    let images: Vec<&HandImage> = data.images.iter().collect();
    let offline = {
        let images = images.clone();
        let model = model.clone();
        tokio::task::spawn_blocking(move || {
            let e = embed_images(&model, &images, &RuntimeOptions::default(), 16, false).unwrap();
            score(&images, &e).unwrap()
        })
        .await
        .unwrap()
    };
    let server = common::start(&model, &common::database(Backend::Sqlite).await).await;
    let mut client = common::client(&server).await;
    let online = handmatch::eval::run::run(&mut client, &images, 4)
        .await
        .unwrap();
    assert_eq!(online.gallery_subjects, 20);
    assert_eq!(online.image_to_template, offline.image_to_template);
    assert_eq!(online.template_to_template, offline.template_to_template);
    assert!(online.image_queries.iter().all(|q| q.rank.is_some()));
    // The report embeds every query and a palm thumbnail per subject, and no external file.
    let page = handmatch::eval::html_report::render(&online, &images).unwrap();
    assert_eq!(
        page.matches("data:image/jpeg;base64,").count(),
        online.image_queries.len() + 20
    );
    assert!(!page.contains("src=\"http") && !page.contains("file:"));
    assert_eq!(
        handmatch::eval::run::cleanup(&mut client, &images)
            .await
            .unwrap(),
        20
    );
    server.shutdown().await.unwrap();
}
