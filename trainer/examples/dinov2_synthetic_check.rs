//! The fine-tuning issue's synthetic check, as a measurement rather than a test: a random
//! `dinov2-tiny` on synthetic hands, (a) a head trained on its frozen features and (b) the
//! whole network fine-tuned, with the same crops, seed, epochs and schedule; scored on
//! held-out subjects at the last epoch (no epoch chosen on them). LOSS is `triplet` or
//! `cosface`; MARGIN is that loss's margin; FEATURES `centred` subtracts the running mean
//! feature before the head (`fit --centre-features`), `standardised` also divides each
//! feature by its spread (`fit --standardise-features`), `raw` (the default) does neither.
//! PER_VIEW is how many photos of each side of each hand the synthetic data set holds.
//! CROPS `centre` (the default) centre-crops every photo, as a DINOv2 artefact does;
//! `aligned` aligns each hand with the imported hand landmark network first (the hand
//! backbone's alignment, `models/hand-landmarks`) and shrinks the aligned crop to SIDE, so
//! the hand's shape sits in the same place in every crop.
//!
//! VAL > 0 sets that many further subjects aside for validation: each arm then also
//! reports the held-out mAP at the epoch with the best validation mAP, the epoch `fit`
//! keeps (it writes the best epoch's weights), so no choice is made on the held-out
//! subjects. SEED (default 0) shifts the synthetic data's and the training's seeds.
//!
//! cargo run --release -p handmatch-trainer --example dinov2_synthetic_check -- \
//!     [SUBJECTS HELD_OUT SIDE EPOCHS LR BACKBONE_LR_FACTOR LOSS MARGIN FEATURES PER_VIEW CROPS VAL SEED]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use handmatch_core::dataset::hand_info::{Dataset, LoadOptions};
use handmatch_core::dataset::synth::{generate, SynthOptions};
use handmatch_core::embed::RuntimeOptions;
use handmatch_core::hand_image::HandImage;
use handmatch_export::backbone::{hand::DEFAULT_MODEL, BackboneSpec};
use handmatch_export::random_init::{self, Arch};
use handmatch_trainer::finetune::checkpoint::Progress;
use handmatch_trainer::finetune::{
    fine_tune, AlignedCrops, BackboneSource, FineTuneConfig, FineTuneJob, FineTuneLoss, TrainLayers,
};
use handmatch_trainer::pipeline::export_backbone;

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// The crops both arms train and are scored on; with alignment, only the photos a hand was
/// found in.
fn crops(
    images: &[&HandImage],
    side: u32,
    aligned: bool,
    dir: &Path,
) -> anyhow::Result<AlignedCrops> {
    if !aligned {
        return AlignedCrops::centre_cropped(images, side);
    }
    let aligner = dir.join("hand-backbone.onnx");
    export_backbone(&BackboneSpec::hand(DEFAULT_MODEL), 224, &aligner)?;
    let crops = AlignedCrops::build(
        images,
        &aligner,
        &dir.join("crops"),
        &RuntimeOptions::default(),
        false,
    )?;
    println!("hand found in {} of {} photos", crops.len(), images.len());
    Ok(crops.resized(side))
}

/// One arm of the check. Validation does not touch training (no randomness, no weights),
/// so the same seeded run scored on other subjects trains identically; `main` checks that
/// through the losses.
struct Arm<'a> {
    crops: &'a AlignedCrops,
    train: &'a BTreeSet<String>,
    source: &'a BackboneSource,
    config: FineTuneConfig,
    out: PathBuf,
}

impl Arm<'_> {
    /// Trains afresh, scoring every epoch on `scored` subjects.
    fn run(&self, scored: &BTreeSet<String>) -> anyhow::Result<Progress> {
        let _ = std::fs::remove_dir_all(&self.out);
        let outcome = fine_tune(&FineTuneJob {
            crops: self.crops,
            train: self.train,
            val: scored,
            source: self.source,
            config: self.config.clone(),
            out: self.out.clone(),
            resume: false,
            stop_after: None,
            progress: false,
        })?;
        Ok(outcome.progress)
    }
}

fn main() -> anyhow::Result<()> {
    let (subjects, held, side) = (arg(1, 40usize), arg(2, 10usize), arg(3, 56u32));
    let (epochs, lr, factor) = (arg(4, 20usize), arg(5, 1e-4f64), arg(6, 1.0f64));
    let loss = <FineTuneLoss as clap::ValueEnum>::from_str(&arg(7, "triplet".to_string()), true)
        .map_err(anyhow::Error::msg)?;
    let margin = arg(8, 0.3f64);
    let neck = arg(9, "raw".to_string());
    let per_view = arg(10, 3usize);
    let aligned = arg(11, "centre".to_string()) == "aligned";
    let val = arg(12, 0usize);
    let seed = arg(13, 0u64);
    let dir = tempfile::tempdir()?;
    random_init::write(Arch::Dinov2Tiny, 7, &dir.path().join("dinov2-tiny"))?;
    let synth = SynthOptions {
        subjects,
        seed: 11 + seed,
        width: 240,
        height: 180,
        per_view_min: per_view,
        per_view_max: per_view,
    };
    generate(&synth, &dir.path().join("hands"))?;
    let data = Dataset::load(&dir.path().join("hands"), &LoadOptions::default())?.0;
    let images: Vec<_> = data.images.iter().collect();
    let crops = crops(&images, side, aligned, dir.path())?;
    let all: BTreeSet<String> = crops.images.iter().map(|i| i.subject.clone()).collect();
    let held_out: BTreeSet<String> = all.iter().take(held).cloned().collect();
    let validation: BTreeSet<String> = all.iter().skip(held).take(val).cloned().collect();
    let train: BTreeSet<String> = all
        .iter()
        .filter(|s| !held_out.contains(*s) && !validation.contains(*s))
        .cloned()
        .collect();
    let source = BackboneSource::Checkpoint {
        dir: dir.path().join("dinov2-tiny"),
        image_size: side as usize,
    };
    for (name, layers) in [
        ("head on frozen features", TrainLayers::Last(0)),
        ("whole network", TrainLayers::All),
    ] {
        let config = FineTuneConfig {
            epochs,
            lr,
            backbone_lr_factor: factor,
            loss,
            margin,
            embedding_dim: 32,
            train_layers: layers,
            seed: 1 + seed,
            centre_features: neck == "centred",
            standardise_features: neck == "standardised",
            ..FineTuneConfig::default()
        };
        let arm = Arm {
            crops: &crops,
            train: &train,
            source: &source,
            config,
            out: dir.path().join(name.replace(' ', "-")),
        };
        let scored = arm.run(&held_out)?;
        let h = &scored.history;
        let map = |i: usize| h[i].validation_map.unwrap_or(f64::NAN);
        print!(
            "{name}: held-out image → template mAP epoch 1 {:.3}, last {:.3}; training loss {:.4} → {:.4}",
            map(0),
            map(h.len() - 1),
            h[0].mean_loss,
            h[h.len() - 1].mean_loss
        );
        if validation.is_empty() {
            println!();
            continue;
        }
        let chosen = arm.run(&validation)?;
        let losses = |p: &Progress| p.history.iter().map(|e| e.mean_loss).collect::<Vec<_>>();
        anyhow::ensure!(
            losses(&chosen) == losses(&scored),
            "the two seeded runs trained differently"
        );
        println!(
            "; epoch {} chosen on {} validation subjects (mAP {:.3}): held-out {:.3}",
            chosen.best_epoch,
            validation.len(),
            chosen.best_map.unwrap_or(f64::NAN),
            map(chosen.best_epoch - 1)
        );
    }
    Ok(())
}
