//! The fine-tuning issue's synthetic check, as a measurement rather than a test: a random
//! `dinov2-tiny` on synthetic hands, (a) a head trained on its frozen features and (b) the
//! whole network fine-tuned, with the same crops, seed, epochs and schedule; scored on
//! held-out subjects at the last epoch (no epoch chosen on them). LOSS is `triplet` or
//! `cosface`; MARGIN is that loss's margin; FEATURES `centred` subtracts the running mean
//! feature before the head (`fit --centre-features`), `standardised` also divides each
//! feature by its spread (`fit --standardise-features`), `raw` (the default) does neither.
//! PER_VIEW is how many photos of each side of each hand the synthetic data set holds.
//!
//! cargo run --release -p handmatch-trainer --example dinov2_synthetic_check -- \
//!     [SUBJECTS HELD_OUT SIDE EPOCHS LR BACKBONE_LR_FACTOR LOSS MARGIN FEATURES PER_VIEW]

use std::collections::BTreeSet;

use handmatch_core::dataset::hand_info::{Dataset, LoadOptions};
use handmatch_core::dataset::synth::{generate, SynthOptions};
use handmatch_export::random_init::{self, Arch};
use handmatch_trainer::finetune::{
    fine_tune, AlignedCrops, BackboneSource, FineTuneConfig, FineTuneJob, FineTuneLoss, TrainLayers,
};

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let (subjects, held, side) = (arg(1, 40usize), arg(2, 10usize), arg(3, 56u32));
    let (epochs, lr, factor) = (arg(4, 20usize), arg(5, 1e-4f64), arg(6, 1.0f64));
    let loss = <FineTuneLoss as clap::ValueEnum>::from_str(&arg(7, "triplet".to_string()), true)
        .map_err(anyhow::Error::msg)?;
    let margin = arg(8, 0.3f64);
    let neck = arg(9, "raw".to_string());
    let per_view = arg(10, 3usize);
    let dir = tempfile::tempdir()?;
    random_init::write(Arch::Dinov2Tiny, 7, &dir.path().join("dinov2-tiny"))?;
    let synth = SynthOptions {
        subjects,
        seed: 11,
        width: 240,
        height: 180,
        per_view_min: per_view,
        per_view_max: per_view,
    };
    generate(&synth, &dir.path().join("hands"))?;
    let data = Dataset::load(&dir.path().join("hands"), &LoadOptions::default())?.0;
    let images: Vec<_> = data.images.iter().collect();
    let crops = AlignedCrops::centre_cropped(&images, side)?;
    let all: BTreeSet<String> = images.iter().map(|i| i.subject.clone()).collect();
    let held_out: BTreeSet<String> = all.iter().take(held).cloned().collect();
    let train: BTreeSet<String> = all.difference(&held_out).cloned().collect();
    let source = BackboneSource::Checkpoint {
        dir: dir.path().join("dinov2-tiny"),
        image_size: side as usize,
    };
    for (name, layers) in [
        ("head on frozen features", TrainLayers::Last(0)),
        ("whole network", TrainLayers::All),
    ] {
        let outcome = fine_tune(&FineTuneJob {
            crops: &crops,
            train: &train,
            val: &held_out,
            source: &source,
            config: FineTuneConfig {
                epochs,
                lr,
                backbone_lr_factor: factor,
                loss,
                margin,
                embedding_dim: 32,
                train_layers: layers,
                seed: 1,
                centre_features: neck == "centred",
                standardise_features: neck == "standardised",
                ..FineTuneConfig::default()
            },
            out: dir.path().join(name.replace(' ', "-")),
            resume: false,
            stop_after: None,
            progress: false,
        })?;
        let h = &outcome.progress.history;
        let map = |i: usize| h[i].validation_map.unwrap_or(f64::NAN);
        println!(
            "{name}: held-out image → template mAP epoch 1 {:.3}, last {:.3}; training loss {:.4} → {:.4}",
            map(0),
            map(h.len() - 1),
            h[0].mean_loss,
            h[h.len() - 1].mean_loss
        );
    }
    Ok(())
}
