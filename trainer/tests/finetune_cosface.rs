//! Fine-tuning a DINOv2 with the cosine-margin softmax: the subjects' proxies live in the
//! checkpoint with the AdamW moments, so a run stopped after its first epoch and resumed
//! ends at the same weights (proxies included) as an uninterrupted one, and the loss falls
//! from the first epoch to the last; with centred features the running mean resumes too.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use candle_core::Device;
use handmatch_export::random_init::{self, Arch};
use handmatch_trainer::finetune::checkpoint;
use handmatch_trainer::finetune::train::CHECKPOINT;
use handmatch_trainer::finetune::{
    fine_tune, AlignedCrops, BackboneSource, FineTuneConfig, FineTuneJob, FineTuneLoss, TrainLayers,
};

const SUBJECTS: usize = 6;

fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn checkpoint_tensors(dir: &Path) -> std::collections::HashMap<String, Vec<f32>> {
    let (tensors, _) = checkpoint::load(&dir.join(CHECKPOINT), &Device::Cpu).unwrap();
    tensors
        .into_iter()
        .map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

/// Centre-cropped synthetic hands of `subjects` people, a random `dinov2-tiny` at 28
/// pixels, and the training / validation subjects (`held_out` of them).
fn tiny_dinov2_on_synthetic_hands(
    dir: &Path,
    subjects: usize,
    held_out: usize,
) -> (
    AlignedCrops,
    BackboneSource,
    BTreeSet<String>,
    BTreeSet<String>,
) {
    let data = common::synthetic_hands(dir, subjects, 9, 2);
    let images: Vec<_> = data.images.iter().collect();
    let crops = AlignedCrops::centre_cropped(&images, 28).unwrap();
    random_init::write(Arch::Dinov2Tiny, 4, &dir.join("dinov2")).unwrap();
    let source = BackboneSource::Checkpoint {
        dir: dir.join("dinov2"),
        image_size: 28,
    };
    let names: BTreeSet<String> = images.iter().map(|i| i.subject.clone()).collect();
    let val: BTreeSet<String> = names.iter().take(held_out).cloned().collect();
    let train: BTreeSet<String> = names.difference(&val).cloned().collect();
    (crops, source, train, val)
}

#[test]
fn cosface_proxies_resume_exactly_and_the_loss_falls() {
    let dir = tempfile::tempdir().unwrap();
    let (crops, source, train, val) = tiny_dinov2_on_synthetic_hands(dir.path(), SUBJECTS, 2);
    let config = FineTuneConfig {
        epochs: 3,
        p: 4,
        k: 1,
        lr: 1e-2,
        loss: FineTuneLoss::CosFace,
        margin: 0.2,
        embedding_dim: 16,
        train_layers: TrainLayers::All,
        seed: 2,
        ..FineTuneConfig::default()
    };
    let (whole, resumed) = common::run_whole_and_resumed(&FineTuneJob {
        crops: &crops,
        train: &train,
        val: &val,
        source: &source,
        config,
        out: dir.path().to_path_buf(),
        resume: false,
        stop_after: None,
        progress: false,
    });

    let a = checkpoint_tensors(&dir.path().join("whole"));
    let b = checkpoint_tensors(&dir.path().join("resumed"));
    let proxies = &a["loss/proxies"];
    assert_eq!(
        proxies.len(),
        train.len() * 16,
        "one 16-wide proxy per training subject"
    );
    assert_eq!(a.len(), b.len());
    for (name, x) in &a {
        let d = largest_difference(x, &b[name]);
        assert!(d <= 1e-6, "`{name}`: resumed ends {d} away");
    }
    let losses: Vec<f64> = whole.progress.history.iter().map(|e| e.mean_loss).collect();
    let resumed_losses: Vec<f64> = resumed
        .progress
        .history
        .iter()
        .map(|e| e.mean_loss)
        .collect();
    assert_eq!(losses, resumed_losses);
    assert!(
        losses.iter().all(|&l| l.is_finite() && l > 0.0),
        "{losses:?}"
    );
    assert!(
        losses.last().unwrap() < losses.first().unwrap(),
        "the loss did not fall from epoch 1: {losses:?}"
    );
}

/// With centred features the running mean is part of the checkpoint: a resumed run ends at
/// the uninterrupted run's weights and running statistics (mean and variance).
#[test]
fn standardised_fine_tuning_resumes_to_the_same_running_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let (crops, source, train, val) = tiny_dinov2_on_synthetic_hands(dir.path(), 4, 1);
    let job = |out: &str, resume: bool, stop_after: Option<usize>| FineTuneJob {
        crops: &crops,
        train: &train,
        val: &val,
        source: &source,
        config: FineTuneConfig {
            epochs: 2,
            p: 3,
            k: 1,
            lr: 1e-2,
            embedding_dim: 16,
            standardise_features: true,
            train_layers: TrainLayers::All,
            seed: 5,
            ..FineTuneConfig::default()
        },
        out: dir.path().join(out),
        resume,
        stop_after,
        progress: false,
    };
    fine_tune(&job("whole", false, None)).unwrap();
    fine_tune(&job("resumed", false, Some(1))).unwrap();
    fine_tune(&job("resumed", true, None)).unwrap();
    let a = checkpoint_tensors(&dir.path().join("whole"));
    let b = checkpoint_tensors(&dir.path().join("resumed"));
    for stat in ["neck/feature_mean", "neck/feature_var"] {
        assert!(a.contains_key(stat), "{stat} missing: {:?}", a.keys());
    }
    assert_eq!(a.len(), b.len());
    for (name, x) in &a {
        let d = largest_difference(x, &b[name]);
        assert!(d <= 1e-6, "`{name}`: resumed ends {d} away");
    }
}
