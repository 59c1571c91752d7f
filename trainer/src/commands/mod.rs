//! The subcommands of `handmatch-train`, one module each, and the arguments they share.

pub mod align_sheet;
pub mod cv;
pub mod dataset;
pub mod evaluate;
pub mod export;
pub mod export_backbone;
pub mod extract;
pub mod fine_tune;
pub mod fit;
pub mod import_hand_landmarks;
pub mod init_random;
pub mod matrix;
pub mod quantize_hand;
pub mod split;
pub mod synth;

use std::path::PathBuf;

use clap::Args;
pub use handmatch_core::args::DatasetArgs as DataArgs;
use handmatch_core::dataset::hand_info::Dataset;
use handmatch_core::dataset::split::{Fractions, SubjectSplit};
use handmatch_core::embed::RuntimeOptions;

/// A dataset and the split that says which subjects are for what.
#[derive(Args, Clone)]
pub struct DataSplitArgs {
    #[command(flatten)]
    pub dataset: DataArgs,
    /// The split file (`handmatch-train split`); made here with --split-seed when missing.
    #[arg(long, env = "HANDMATCH_SPLIT")]
    pub split: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
}

impl DataSplitArgs {
    pub fn load(&self) -> anyhow::Result<(Dataset, SubjectSplit)> {
        let (ds, _) = self.dataset.load()?;
        let split = if self.split.exists() {
            SubjectSplit::load(&self.split)?
        } else {
            let s = SubjectSplit::new(&ds, Fractions::default(), self.split_seed)?;
            s.save(&self.split)?;
            eprintln!("wrote a new split to {}", self.split.display());
            s
        };
        Ok((ds, split))
    }
}

/// Which backbone: a Hugging Face checkpoint, the hand landmark model, or both.
#[derive(Args, Clone)]
pub struct BackboneArgs {
    /// Square input side S (a multiple of the patch size for DINOv2; hand models take 224).
    #[arg(long, env = "HANDMATCH_IMAGE_SIZE", default_value_t = 224)]
    pub image_size: usize,
    /// Checkpoint folder (config.json + model.safetensors) of a DINOv2 or ResNet.
    #[arg(long, env = "HANDMATCH_HF_DIR")]
    pub hf_dir: Option<PathBuf>,
    /// `checkpoint` (--hf-dir), `hand-landmarks`, or `dinov2+hand-landmarks` /
    /// `resnet+hand-landmarks` (both, features concatenated; hand models align the hand
    /// first and take 224-pixel crops).
    #[arg(long, env = "HANDMATCH_BACKBONE", default_value = "checkpoint")]
    pub backbone: String,
    /// The hand landmark model that `import-hand-landmarks` writes.
    #[arg(long, env = "HANDMATCH_HAND_MODEL", default_value = handmatch_export::backbone::hand::DEFAULT_MODEL)]
    pub hand_model: PathBuf,
    /// Another version of the hand model that computes the features (an int8 one written by
    /// `quantize-hand`, say); alignment keeps `--hand-model`, and a session that
    /// embeds runs this network alone.
    #[arg(long, env = "HANDMATCH_HAND_EMBEDDING_MODEL")]
    pub hand_embedding_model: Option<PathBuf>,
    /// The hand model's feature groups, comma-separated: geometry (landmark distances and
    /// bone angles), trunk (pooled network features), shape (silhouette finger widths and
    /// bone lengths), and the network's own maps read at points of the hand: local (14 × 14
    /// at the landmarks), local-fine (28 × 28 at landmarks and bone midpoints), local-56
    /// (56 × 56, same points), local-112 (112 × 112 at landmarks and three points per bone).
    #[arg(
        long,
        env = "HANDMATCH_HAND_FEATURES",
        default_value = "geometry,trunk"
    )]
    pub hand_features: handmatch_export::backbone::HandFeatureSet,
    /// Test-time views whose features are averaged: `flip`, `shift` (two views, 8 px), both
    /// comma-separated, or `none`. Part of the artefact's graph, so the server does the same.
    #[arg(long, env = "HANDMATCH_TTA", default_value = "none")]
    pub tta: handmatch_export::backbone::Tta,
}

impl BackboneArgs {
    pub fn spec(&self) -> anyhow::Result<handmatch_export::backbone::BackboneSpec> {
        let spec = handmatch_export::backbone::BackboneSpec::parse(
            &self.backbone,
            self.hf_dir.clone(),
            self.hand_model.clone(),
        )
        .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            self.hand_embedding_model.is_none() || spec.hand_model.is_some(),
            "--hand-embedding-model needs a hand backbone (--backbone hand-landmarks)"
        );
        Ok(handmatch_export::backbone::BackboneSpec {
            hand_features: self.hand_features.clone(),
            hand_embedding: self.hand_embedding_model.clone(),
            tta: self.tta.clone(),
            ..spec
        })
    }
}

/// ONNX Runtime, and how many images go into one call.
#[derive(Args, Clone)]
// Its own group id: clap names a flattened struct's group after the struct, and this one
// flattens core's `RuntimeArgs`.
#[group(id = "inference")]
pub struct RuntimeArgs {
    #[command(flatten)]
    pub runtime: handmatch_core::args::RuntimeArgs,
    /// Images per inference call.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
}

impl RuntimeArgs {
    pub fn options(&self) -> RuntimeOptions {
        self.runtime.options()
    }
}
