//! `fit --fine-tune` and its settings (recipe keys of the same names).

use clap::Args;
use handmatch_trainer::finetune::{FineTuneConfig, TrainLayers};
use handmatch_trainer::pipeline::FineTuneSettings;

#[derive(Args, Clone)]
pub struct FineTuneArgs {
    /// Hand backbones: fine-tune the hand landmark network's trunk end to end (triplet
    /// loss on aligned crops) before fitting the head on its features; alignment keeps the
    /// original weights.
    #[arg(long, env = "HANDMATCH_FINE_TUNE")]
    pub fine_tune: bool,
    #[arg(long, default_value_t = 10)]
    pub fine_tune_epochs: usize,
    /// Subjects per fine-tuning batch (each with K dorsal and K palmar crops).
    #[arg(long, default_value_t = 8)]
    pub fine_tune_p: usize,
    #[arg(long, default_value_t = 2)]
    pub fine_tune_k: usize,
    /// The fine-tuning head's peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub fine_tune_lr: f64,
    /// The backbone's learning rate as a fraction of the head's.
    #[arg(long, default_value_t = 0.1)]
    pub backbone_lr_factor: f64,
    #[arg(long, default_value_t = 1)]
    pub warmup_epochs: usize,
    #[arg(long, default_value_t = 0.3)]
    pub fine_tune_margin: f64,
    /// Which convolutions train: `all` or `last-N`.
    #[arg(long, default_value = "last-6")]
    pub train_layers: TrainLayers,
    /// Batches whose gradients are summed into one step (a larger effective batch).
    #[arg(long, default_value_t = 1)]
    pub accumulate: usize,
    /// Stop after this many epochs without a better validation mAP (0: never).
    #[arg(long, default_value_t = 0)]
    pub patience: usize,
    /// Let normalisation statistics change (networks with live batch norms only; the hand
    /// network's are folded into its convolutions).
    #[arg(long)]
    pub train_batchnorm: bool,
    /// Continue from OUT/finetune/checkpoint.safetensors (same settings).
    #[arg(long)]
    pub resume: bool,
}

impl FineTuneArgs {
    pub fn settings(&self, seed: u64) -> Option<FineTuneSettings> {
        self.fine_tune.then(|| FineTuneSettings {
            config: FineTuneConfig {
                epochs: self.fine_tune_epochs,
                p: self.fine_tune_p,
                k: self.fine_tune_k,
                lr: self.fine_tune_lr,
                backbone_lr_factor: self.backbone_lr_factor,
                warmup_epochs: self.warmup_epochs,
                margin: self.fine_tune_margin,
                train_layers: self.train_layers,
                accumulate: self.accumulate,
                patience: self.patience,
                freeze_batchnorm: !self.train_batchnorm,
                seed,
                ..FineTuneConfig::default()
            },
            resume: self.resume,
        })
    }
}
