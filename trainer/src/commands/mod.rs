//! The training and evaluation subcommands of `handmatch-train`.

pub mod align_sheet;
pub mod evaluate;
pub mod extract;
pub mod fit;
pub mod matrix;

use std::path::PathBuf;

use clap::Args;
use handmatch::dataset::hand_info::{Dataset, LoadOptions, LoadReport, OnProblem, ProblemKind};
use handmatch::dataset::split::{Fractions, SubjectSplit};
use handmatch::embed::{Device, RuntimeOptions};

#[derive(Args, Clone)]
pub struct DataArgs {
    /// A folder in the 11k Hands layout: HandInfo.csv and Hands/*.jpg.
    #[arg(long, env = "HANDMATCH_DATA")]
    pub data: PathBuf,
    /// Leave out (and count) rows with problems instead of failing on the first.
    #[arg(long, env = "HANDMATCH_SKIP_PROBLEMS")]
    pub skip_problems: bool,
}

impl DataArgs {
    pub fn load(&self) -> anyhow::Result<(Dataset, LoadReport)> {
        let on_problem = if self.skip_problems {
            OnProblem::Skip
        } else {
            OnProblem::Error
        };
        let (ds, report) = Dataset::load(&self.data, &LoadOptions { on_problem })?;
        if !report.problems.is_empty() {
            eprintln!(
                "skipped {} of {} rows: {} missing files, {} unknown aspects, {} malformed",
                report.problems.len(),
                report.rows,
                report.count(ProblemKind::MissingFile),
                report.count(ProblemKind::UnknownAspect),
                report.count(ProblemKind::Malformed)
            );
            for p in report.problems.iter().take(5) {
                eprintln!("  line {}: {}", p.line, p.message);
            }
        }
        Ok((ds, report))
    }
}

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
    /// Checkpoint folder (config.json + model.safetensors) of a DINOv2 or ResNet.
    #[arg(long, env = "HANDMATCH_HF_DIR")]
    pub hf_dir: Option<PathBuf>,
    /// `checkpoint` (--hf-dir), `hand-landmarks`, or `dinov2+hand-landmarks` /
    /// `resnet+hand-landmarks` (both, features concatenated; hand models align the hand
    /// first and take 224-pixel crops).
    #[arg(long, env = "HANDMATCH_BACKBONE", default_value = "checkpoint")]
    pub backbone: String,
    /// The hand landmark model that `import-hand-landmarks` writes.
    #[arg(long, env = "HANDMATCH_HAND_MODEL", default_value = handmatch_trainer::backbone::hand::DEFAULT_MODEL)]
    pub hand_model: PathBuf,
}

impl BackboneArgs {
    pub fn spec(&self) -> anyhow::Result<handmatch_trainer::backbone::BackboneSpec> {
        handmatch_trainer::backbone::BackboneSpec::parse(
            &self.backbone,
            self.hf_dir.clone(),
            self.hand_model.clone(),
        )
        .map_err(anyhow::Error::msg)
    }
}

#[derive(Args, Clone)]
pub struct RuntimeArgs {
    /// ONNX Runtime's shared library (default: .ort/lib/libonnxruntime.so).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<PathBuf>,
    #[arg(long, env = "HANDMATCH_DEVICE", value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    /// Images per inference call.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
}

impl RuntimeArgs {
    pub fn options(&self) -> RuntimeOptions {
        RuntimeOptions {
            library: self.ort_lib.clone(),
            device: self.device,
            intra_threads: 0,
        }
    }
}
