//! `handmatch-train fit`: train the projection head and export the artefact.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use handmatch_trainer::artefact_writer::PrecisionArgs;
use handmatch_trainer::fit::Mining;
use handmatch_trainer::pipeline::{run_fit, FitJob};
use handmatch_trainer::training::{FitConfig, HeadKind, LossChoice, SelectionPlan};

use super::{BackboneArgs, DataSplitArgs, RuntimeArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LossKind {
    /// Triplet loss (the reference method).
    Triplet,
    /// Contrastive pair loss (the baseline).
    Contrastive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MiningKind {
    BatchHard,
    SemiHard,
    All,
}

#[derive(Args, Clone)]
pub struct TrainingArgs {
    /// `mlp` (trained with the loss), `lda` (a closed-form discriminant projection) or
    /// `linear` (one Linear from the LDA start, trained with the loss).
    #[arg(long, value_enum, default_value_t = HeadKind::Mlp)]
    pub head: HeadKind,
    /// LDA's within-class shrinkage in [0, 1] (default: estimated, Ledoit–Wolf).
    #[arg(long)]
    pub shrinkage: Option<f64>,
    /// LDA: weight of the dorsal-minus-palmar difference of each subject's means in the
    /// within-subject covariance (0: plain LDA).
    #[arg(long, default_value_t = 0.0)]
    pub cross_view: f64,
    /// `--head linear`: weight of the squared distance from the LDA start in the loss.
    #[arg(long, default_value_t = 0.0)]
    pub init_penalty: f64,
    #[arg(long, value_enum, default_value_t = LossKind::Triplet)]
    pub loss: LossKind,
    #[arg(long, value_enum, default_value_t = MiningKind::BatchHard)]
    pub mining: MiningKind,
    /// log(1 + exp(d_ap − d_an)) instead of the hinge.
    #[arg(long)]
    pub soft_margin: bool,
    /// Default 0.5 for triplet, 2.0 for contrastive.
    #[arg(long)]
    pub margin: Option<f64>,
    /// Default 256 (triplet) or 128 (contrastive).
    #[arg(long)]
    pub embedding_dim: Option<usize>,
    #[arg(long, default_value_t = 512)]
    pub hidden_dim: usize,
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f64,
    /// Subjects per batch.
    #[arg(long, default_value_t = 8)]
    pub p: usize,
    /// Images per view per subject in a batch.
    #[arg(long, default_value_t = 1)]
    pub k: usize,
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 1e-6)]
    pub lr_min: f64,
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 5)]
    pub validate_every: usize,
    /// Cross-batch memory size (embeddings); 0 is off.
    #[arg(long, default_value_t = 0)]
    pub memory: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Standardise each feature (training mean and std) before the head; folded into the
    /// exported head.
    #[arg(long)]
    pub standardize: bool,
    /// An ensemble of heads of this kind, `PARTS[:WEIGHT];…`: each member on `all` the
    /// features or on feature groups joined by `+` (neighbours in column order, e.g.
    /// `local-fine+local-56`); members on the same parts differ by seed. The artefact
    /// concatenates their embeddings (weighted) and renormalises. `none`: one head (to
    /// override a recipe's ensemble).
    #[arg(long)]
    pub ensemble: Option<String>,
}

impl TrainingArgs {
    pub fn config(&self) -> FitConfig {
        let base = match self.loss {
            LossKind::Triplet => FitConfig::reference_triplet(),
            LossKind::Contrastive => FitConfig::reference_contrastive(),
        };
        let loss = match (self.loss, base.loss) {
            (LossKind::Triplet, LossChoice::Triplet { margin, .. }) => LossChoice::Triplet {
                mining: match self.mining {
                    MiningKind::BatchHard => Mining::BatchHard,
                    MiningKind::SemiHard => Mining::SemiHard,
                    MiningKind::All => Mining::All,
                },
                margin: self.margin.unwrap_or(margin),
                soft_margin: self.soft_margin,
            },
            (_, LossChoice::Contrastive { margin }) => LossChoice::Contrastive {
                margin: self.margin.unwrap_or(margin),
            },
            (_, other) => other,
        };
        FitConfig {
            head: self.head,
            shrinkage: self.shrinkage,
            cross_view: self.cross_view,
            init_penalty: self.init_penalty,
            loss,
            hidden_dim: self.hidden_dim,
            embedding_dim: self.embedding_dim.unwrap_or(base.embedding_dim),
            dropout: self.dropout,
            p: self.p,
            k: self.k,
            epochs: self.epochs,
            stop_at: None,
            lr: self.lr,
            lr_min: self.lr_min,
            weight_decay: self.weight_decay,
            validate_every: self.validate_every,
            memory: self.memory,
            seed: self.seed,
            standardize: self.standardize,
            ensemble: self
                .ensemble
                .clone()
                .filter(|e| !e.trim().is_empty() && e.trim() != "none"),
        }
    }
}

#[derive(Args)]
pub struct FitArgs {
    /// A TOML file of these flags (e.g. recipes/hand.toml); flags given here override it.
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    #[command(flatten)]
    pub backbone: BackboneArgs,
    #[command(flatten)]
    pub data: DataSplitArgs,
    #[arg(long, default_value_t = 8)]
    pub views: usize,
    /// Feature cache (default: OUT/features.safetensors).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    #[command(flatten)]
    pub training: TrainingArgs,
    /// Choose the epoch (and with --tune the settings) by subject-disjoint K-fold
    /// cross-validation inside the training subjects, then fit on all of them; the
    /// open-set thresholds then come from the pooled out-of-fold scores.
    #[arg(long)]
    pub folds: Option<usize>,
    /// With --folds: also try a small grid per head (LDA shrinkage; linear init penalty;
    /// MLP margin × weight decay) and keep the best.
    #[arg(long, requires = "folds")]
    pub tune: bool,
    /// Run folder: config.json, history.json, training.png, head.safetensors, model.onnx.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub precision: PrecisionArgs,
    #[command(flatten)]
    pub fine_tune: super::fine_tune::FineTuneArgs,
}

pub fn run(a: FitArgs) -> anyhow::Result<()> {
    let (ds, split) = a.data.load()?;
    let report = run_fit(&FitJob {
        backbone: a.backbone.spec()?,
        image_size: a.backbone.image_size,
        data: &ds,
        split: &split,
        cache: a
            .cache
            .clone()
            .unwrap_or_else(|| a.out.join("features.safetensors")),
        out: a.out.clone(),
        views: a.views,
        config: a.training.config(),
        selection: a.folds.map(|folds| SelectionPlan {
            folds,
            tune: a.tune,
        }),
        runtime: a.runtime.options(),
        batch_size: a.runtime.batch_size,
        progress: true,
        precision: a.precision.clone(),
        fine_tune: a
            .fine_tune
            .settings(a.training.seed, a.runtime.runtime.device),
    })?;
    if let Some(s) = &report.selection {
        println!(
            "model selection: {}-fold cross-validation inside the training subjects, {}",
            s.folds, s.score
        );
        for (i, c) in s.candidates.iter().enumerate() {
            let mark = if i == s.chosen { "  <- chosen" } else { "" };
            println!(
                "  {:<36} epoch {:>4}: {:.3} ± {:.3}{mark}",
                c.name, c.epoch, c.mean, c.std
            );
        }
    }
    let v = &report.outcome.best_validation.template_to_template;
    println!(
        "best epoch {}: validation R@1 {:.3}, mean rank {:.2}; extract {:.1} s, fit {:.1} s; wrote {}",
        report.outcome.best_epoch,
        v.recall_at(1).map_or(0.0, |r| r.value),
        v.mean_rank,
        report.extract_seconds,
        report.fit_seconds,
        report.model.display()
    );
    for p in &report.outcome.operating_points {
        println!(
            "open set: FPIR target {} → threshold {:.4} (FPIR {:.4}, FNIR {:.3}; {} mated / {} non-mated searches)",
            p.target_fpir, p.threshold, p.fpir, p.fnir, p.mated_searches, p.non_mated_searches
        );
    }
    Ok(())
}
