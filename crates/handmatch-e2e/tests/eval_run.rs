//! `handmatch-eval run` against the real server with a model trained by `fit` on synthetic
//! hands gives exactly the metrics that `handmatch-train evaluate` computes offline for the
//! same model, data and subjects; with non-mated subjects it reports open-set FPIR/FNIR at
//! the model's own thresholds.

mod common;

use std::sync::OnceLock;

use common::Backend;
use handmatch_core::dataset::split::{Fractions, SubjectSplit};
use handmatch_core::embed::RuntimeOptions;
use handmatch_core::hand_image::HandImage;
use handmatch_core::template::dot;
use handmatch_eval::run::{model_thresholds, run, RunOptions};
use handmatch_trainer::evaluate::{embed_images, score};
use handmatch_trainer::finetune::{FineTuneConfig, TrainLayers};
use handmatch_trainer::pipeline::{run_fit, FineTuneSettings, FitJob};
use handmatch_trainer::training::{FitConfig, HeadKind};

/// A head trained for a few epochs on the synthetic subjects, exported as an artefact.
fn trained_model() -> &'static std::path::Path {
    static MODEL: OnceLock<(tempfile::TempDir, std::path::PathBuf)> = OnceLock::new();
    let (_, path) = MODEL.get_or_init(|| {
        let mut config = FitConfig::reference_triplet();
        config.epochs = 3;
        config.validate_every = 1;
        config.p = 4;
        fit_on_synthetic_hands(config, None)
    });
    path
}

/// A closed-form LDA head on the same features.
fn lda_model() -> &'static std::path::Path {
    static MODEL: OnceLock<(tempfile::TempDir, std::path::PathBuf)> = OnceLock::new();
    let (_, path) = MODEL.get_or_init(|| {
        let mut config = FitConfig::reference_triplet();
        config.head = HeadKind::Lda;
        config.embedding_dim = 8;
        fit_on_synthetic_hands(config, None)
    });
    path
}

/// The random DINOv2 fine-tuned end to end for two epochs (its last block and final norm),
/// then an LDA head on the tuned network's features.
fn fine_tuned_model() -> &'static std::path::Path {
    static MODEL: OnceLock<(tempfile::TempDir, std::path::PathBuf)> = OnceLock::new();
    let (_, path) = MODEL.get_or_init(|| {
        let mut config = FitConfig::reference_triplet();
        config.head = HeadKind::Lda;
        config.embedding_dim = 8;
        let tuning = FineTuneSettings {
            config: FineTuneConfig {
                epochs: 2,
                p: 4,
                embedding_dim: 16,
                train_layers: TrainLayers::Last(1),
                ..FineTuneConfig::default()
            },
            resume: false,
        };
        fit_on_synthetic_hands(config, Some(tuning))
    });
    path
}

/// `config`'s head (after fine-tuning when asked) fitted on the synthetic subjects.
fn fit_on_synthetic_hands(
    config: FitConfig,
    fine_tune: Option<FineTuneSettings>,
) -> (tempfile::TempDir, std::path::PathBuf) {
    {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("ckpt");
        handmatch_export::random_init::write(
            handmatch_export::random_init::Arch::Dinov2Tiny,
            1,
            &ckpt,
        )
        .unwrap();
        let data = common::hands();
        let fractions = Fractions {
            train: 0.6,
            val: 0.2,
            test: 0.2,
        };
        let split = SubjectSplit::new(data, fractions, 0).unwrap();
        let report = run_fit(&FitJob {
            backbone: handmatch_export::backbone::BackboneSpec::checkpoint(ckpt),
            image_size: common::IMAGE_SIZE,
            data,
            split: &split,
            out: dir.path().join("run"),
            cache: dir.path().join("features.safetensors"),
            views: 2,
            config,
            selection: None,
            runtime: RuntimeOptions::default(),
            batch_size: 32,
            progress: false,
            precision: Default::default(),
            fine_tune,
        })
        .unwrap();
        (dir, report.model)
    }
}

fn options(non_mated: f64, thresholds: Vec<(f32, String)>) -> RunOptions {
    RunOptions {
        gallery: String::new(),
        consent_reference: String::new(),
        concurrency: 4,
        non_mated,
        seed: 1,
        thresholds,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_through_the_service_equal_the_offline_evaluation() {
    let data = common::hands();
    let model = tokio::task::spawn_blocking(|| trained_model().to_path_buf())
        .await
        .unwrap();
    let images: Vec<&HandImage> = data.images.iter().collect();
    let offline = {
        let images = images.clone();
        let model = model.clone();
        tokio::task::spawn_blocking(move || {
            let e = embed_images(&model, &images, &RuntimeOptions::default(), 16, false).unwrap();
            score(&e.images, &e.embeddings).unwrap()
        })
        .await
        .unwrap()
    };
    let server = common::start(&model, &common::database(Backend::Sqlite).await).await;
    let mut client = common::eval_client(&server).await;
    let online = run(&mut client, &images, &options(0.0, Vec::new()))
        .await
        .unwrap();
    assert_eq!(online.gallery_subjects, 20);
    assert_eq!(online.image_to_template, offline.image_to_template);
    assert_eq!(online.template_to_template, offline.template_to_template);
    assert!(online.image_queries.iter().all(|q| q.rank.is_some()));
    assert!(online.open_set.is_none());
    // The report embeds every query and a palm thumbnail per subject, and no external file.
    let page = handmatch_eval::html_report::render(&online, &images).unwrap();
    assert_eq!(
        page.matches("data:image/jpeg;base64,").count(),
        online.image_queries.len() + 20
    );
    assert!(!page.contains("src=\"http") && !page.contains("file:"));
    assert_eq!(
        handmatch_eval::run::cleanup(&mut client, "", &images)
            .await
            .unwrap(),
        20
    );

    // Open set: 30 % of the subjects are queried but never enrolled, at the model's thresholds.
    let info = client
        .get_info(handmatch_proto::v1::GetInfoRequest::default())
        .await
        .unwrap()
        .into_inner();
    let thresholds = model_thresholds(&info.training).unwrap();
    assert_eq!(thresholds.len(), 2, "{}", info.training);
    let open = run(&mut client, &images, &options(0.3, thresholds))
        .await
        .unwrap();
    let set = open.open_set.as_ref().unwrap();
    assert_eq!(set.non_mated_subjects.len(), 6);
    assert_eq!(open.gallery_subjects, 14);
    let non_mated_images = images
        .iter()
        .filter(|i| {
            i.aspect == handmatch_core::hand_image::Aspect::Dorsal
                && set.non_mated_subjects.contains(&i.subject)
        })
        .count();
    for p in &set.points {
        assert_eq!(p.non_mated_searches, non_mated_images);
        assert_eq!(p.mated_searches, open.image_queries.len());
        assert!((0.0..=1.0).contains(&p.fpir) && (0.0..=1.0).contains(&p.fnir));
        let fp = set
            .non_mated_scores
            .iter()
            .filter(|s| **s >= p.threshold)
            .count();
        assert!((p.fpir - fp as f64 / non_mated_images as f64).abs() < 1e-12);
    }
    server.shutdown().await.unwrap();
}

/// A trained artefact served over gRPC scores exactly as `evaluate` embeds (≤ 1e-5).
#[test]
fn the_service_serves_the_embeddings_that_evaluate_used() {
    served_scores_equal_evaluate(trained_model());
}

/// The same for a linear (LDA) head: the artefact format and the server need nothing else.
#[test]
fn an_lda_head_is_served_with_the_embeddings_that_evaluate_used() {
    served_scores_equal_evaluate(lda_model());
}

/// And for an artefact whose backbone was fine-tuned: the tuned checkpoint is what it serves.
#[test]
fn a_fine_tuned_backbone_is_served_with_the_embeddings_that_evaluate_used() {
    let model = fine_tuned_model();
    let meta = handmatch_core::embed::backbone_session::BackboneSession::open(
        model,
        &RuntimeOptions::default(),
    )
    .unwrap()
    .custom_metadata(handmatch_core::embed::metadata::keys::TRAINING)
    .unwrap();
    assert!(meta.contains("fine_tune"), "{meta}");
    served_scores_equal_evaluate(model);
}

fn served_scores_equal_evaluate(model: &std::path::Path) {
    let images: Vec<&HandImage> = common::hands().images.iter().collect();
    let embeddings = embed_images(model, &images, &RuntimeOptions::default(), 8, false)
        .unwrap()
        .embeddings;

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = common::database(Backend::Sqlite).await;
        let server = common::start(model, &db).await;
        let mut client = common::eval_client(&server).await;
        use handmatch_proto::v1 as pb;
        // Enrol single images, so each subject's template is exactly one embedding.
        let gallery: Vec<usize> = (0..images.len())
            .filter(|&i| images[i].aspect == handmatch_core::hand_image::Aspect::Palmar)
            .take(5)
            .collect();
        for (n, &g) in gallery.iter().enumerate() {
            client
                .enroll(pb::EnrollRequest {
                    subject_id: format!("g{n}"),
                    images: vec![handmatch_eval::client::pb_image(images[g]).unwrap()],
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        let mut compared = 0;
        for (q, img) in images
            .iter()
            .enumerate()
            .filter(|(_, i)| i.aspect == handmatch_core::hand_image::Aspect::Dorsal)
            .take(6)
        {
            let answer = client
                .identify(pb::IdentifyRequest {
                    images: vec![handmatch_eval::client::pb_image(img).unwrap()],
                    top_k: Some(10),
                    gallery_aspect: 0,
                    min_score: None,
                    operating_point: 0,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            for c in answer.candidates {
                let n: usize = c.subject_id[1..].parse().unwrap();
                let expected = dot(&embeddings[q], &embeddings[gallery[n]]);
                assert!(
                    (c.score - expected).abs() <= 1e-5,
                    "{} vs {expected}",
                    c.score
                );
                compared += 1;
            }
        }
        assert_eq!(compared, 30);
        server.shutdown().await.unwrap();
    });
}

/// Identify with an operating point decides at the model's own threshold for it: the best
/// candidate is a match exactly when its score reaches that threshold, also when
/// `min_score` leaves it out of the candidates; an unknown point and a model without
/// thresholds are refused with the field named.
#[test]
fn identify_decides_at_the_models_operating_point() {
    use handmatch_proto::v1 as pb;
    let model = lda_model();
    let meta = handmatch_core::embed::EmbeddingSession::open(model, &RuntimeOptions::default())
        .unwrap()
        .metadata()
        .clone();
    let at_1pct = meta
        .training
        .as_ref()
        .unwrap()
        .open_set
        .iter()
        .find(|p| p.target_fpir == 0.01)
        .expect("fit records a threshold at FPIR 1 %")
        .threshold;
    let images: Vec<&HandImage> = common::hands().images.iter().collect();
    let palm = |i: &&&HandImage| i.aspect == handmatch_core::hand_image::Aspect::Palmar;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = common::database(Backend::Sqlite).await;
        let server = common::start(model, &db).await;
        let mut client = common::eval_client(&server).await;
        for img in images.iter().filter(palm).take(6) {
            client
                .enroll(pb::EnrollRequest {
                    subject_id: img.subject.clone(),
                    images: vec![handmatch_eval::client::pb_image(img).unwrap()],
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        let request = |img: &HandImage, point: i32, min_score: Option<f32>| pb::IdentifyRequest {
            images: vec![handmatch_eval::client::pb_image(img).unwrap()],
            top_k: Some(3),
            gallery_aspect: 0,
            min_score,
            operating_point: point,
            ..Default::default()
        };
        let point = pb::OperatingPoint::Fpir1pct as i32;
        let (mut matches, mut non_matches) = (0, 0);
        for img in images.iter().filter(|i| !palm(i)).take(12) {
            let r = client
                .identify(request(img, point, None))
                .await
                .unwrap()
                .into_inner();
            let d = r.decision.expect("a decision was asked for");
            assert_eq!(d.operating_point, point);
            assert_eq!(d.threshold, at_1pct);
            assert_eq!(d.subject_id, r.candidates[0].subject_id);
            assert_eq!(d.score, r.candidates[0].score);
            assert_eq!(d.is_match, d.score >= at_1pct);
            if d.is_match {
                matches += 1;
            } else {
                non_matches += 1;
            }
            // Above every score, min_score empties the candidates, not the decision.
            let r = client
                .identify(request(img, point, Some(1.0)))
                .await
                .unwrap()
                .into_inner();
            assert!(r.candidates.is_empty());
            assert_eq!(r.decision.unwrap().score, d.score);
            // Without an operating point there is no decision.
            let r = client
                .identify(request(img, 0, None))
                .await
                .unwrap()
                .into_inner();
            assert!(r.decision.is_none());
        }
        eprintln!("at FPIR 1 % (threshold {at_1pct:.4}): {matches} matches, {non_matches} not");
        // An enrolled image itself scores 1 against its own template: a match, named.
        let enrolled = images.iter().find(palm).unwrap();
        let d = client
            .identify(request(enrolled, point, None))
            .await
            .unwrap()
            .into_inner()
            .decision
            .unwrap();
        assert!(d.is_match && d.subject_id == enrolled.subject, "{d:?}");
        let e = client
            .identify(request(images[0], 9, None))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("operating_point"), "{}", e.message());
        server.shutdown().await.unwrap();

        // A random head has no thresholds.
        let db = common::database(Backend::Sqlite).await;
        let server = common::start(&common::model(5), &db).await;
        let mut client = common::eval_client(&server).await;
        client
            .enroll(pb::EnrollRequest {
                subject_id: "a".into(),
                images: vec![
                    handmatch_eval::client::pb_image(images.iter().find(palm).unwrap()).unwrap(),
                ],
                ..Default::default()
            })
            .await
            .unwrap();
        let e = client
            .identify(request(images[0], point, None))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert!(e.message().contains("operating_point"), "{}", e.message());
        server.shutdown().await.unwrap();
    });
}
