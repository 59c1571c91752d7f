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
use handmatch_trainer::training::FitConfig;

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

fn train(w: &World, name: &str, config: FitConfig) -> handmatch_trainer::pipeline::FitReport {
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
        runtime: RuntimeOptions::default(),
        batch_size: 32,
        progress: false,
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
    let backbone = w.dir.path().join("raw-backbone.onnx");
    export_backbone(
        &handmatch_export::backbone::BackboneSpec::checkpoint(w.dir.path().join("ckpt")),
        IMAGE_SIZE,
        &backbone,
    )
    .unwrap();
    let test = w.split.subject_set(Subset::Test);
    let test_images = images_of(&w.data, &test);
    let cache = extract(
        &test_images,
        &w.dir.path().join("raw-test.safetensors"),
        &ExtractOptions {
            backbone,
            views: 0,
            seed: 0,
            batch_size: 32,
            runtime: RuntimeOptions::default(),
            progress: false,
        },
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
    let backbone = w.dir.path().join("cache-backbone.onnx");
    export_backbone(
        &handmatch_export::backbone::BackboneSpec::checkpoint(w.dir.path().join("ckpt")),
        IMAGE_SIZE,
        &backbone,
    )
    .unwrap();
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
