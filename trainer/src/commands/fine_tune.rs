//! `fit --fine-tune` and its settings (recipe keys of the same names).

use clap::Args;
use handmatch_core::embed::runtime::Device;
use handmatch_trainer::finetune::{
    Autocast, ComputeDevice, FineTuneConfig, FineTuneLoss, TrainLayers,
};
use handmatch_trainer::pipeline::FineTuneSettings;

#[derive(Args, Clone)]
pub struct FineTuneArgs {
    /// Fine-tune the backbone end to end (triplet loss) before fitting the head on its
    /// features: the hand landmark network's trunk on aligned crops (alignment keeps the
    /// original weights), or a DINOv2 or ResNet checkpoint on the artefact's centre crops.
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
    /// `triplet` (batch-hard, cross-view) or `cosface` (a cosine-margin softmax over the
    /// training subjects, which cannot collapse while features are still weak).
    #[arg(long, value_enum, default_value_t = FineTuneLoss::Triplet)]
    pub fine_tune_loss: FineTuneLoss,
    /// The triplet margin, or cosface's cosine margin.
    #[arg(long, default_value_t = 0.3)]
    pub fine_tune_margin: f64,
    /// cosface's softmax scale (inverse temperature).
    #[arg(long, default_value_t = 16.0)]
    pub cosface_scale: f64,
    /// Which layers train: `all` or `last-N` (the hand network's last N convolutions;
    /// DINOv2's last N blocks and its final norm; ResNet's last N residual blocks). `all`
    /// on the hand network keeps its large early maps for the backward pass: a run at
    /// `--fine-tune-p 2` peaked at 12 GB resident, and the default `--fine-tune-p 8` was
    /// killed for memory at 24 GB; pair a small `--fine-tune-p` with `--accumulate`.
    #[arg(long, default_value = "last-6")]
    pub train_layers: TrainLayers,
    /// Batches whose gradients are summed into one step (a larger effective batch).
    #[arg(long, default_value_t = 1)]
    pub accumulate: usize,
    /// Stop after this many epochs without a better validation mAP (0: never).
    #[arg(long, default_value_t = 0)]
    pub patience: usize,
    /// Let normalisation statistics change: a ResNet's batch norms in the layers that train
    /// normalise each training batch by its own statistics and update their running ones
    /// (the hand network's are folded into its convolutions; DINOv2 has none).
    #[arg(long)]
    pub train_batchnorm: bool,
    /// Subtract the running mean feature before the fine-tuning head (keeps the triplet
    /// loss off the collapsed minimum on near-identical random features; see
    /// docs/fine-tuning.md).
    #[arg(long)]
    pub centre_features: bool,
    /// Centre and also divide each feature by its running spread before the head (a batch
    /// norm without its affine part; see docs/fine-tuning.md).
    #[arg(long)]
    pub standardise_features: bool,
    /// The forward pass's arithmetic: `off` (f32) or `bf16` (DINOv2 only: products in bf16,
    /// LayerNorm, softmax and features in f32, weights and updates f32; for GPUs, untested
    /// on one here; on CPU it is no faster than f32).
    #[arg(long, value_enum, default_value_t = Autocast::Off)]
    pub autocast: Autocast,
    /// Continue from OUT/finetune/checkpoint.safetensors (same settings).
    #[arg(long)]
    pub resume: bool,
}

impl FineTuneArgs {
    /// The settings, training where `--device` says (auto: CUDA when this build has it and
    /// a GPU answers).
    pub fn settings(&self, seed: u64, device: Device) -> Option<FineTuneSettings> {
        self.fine_tune.then(|| FineTuneSettings {
            config: FineTuneConfig {
                epochs: self.fine_tune_epochs,
                p: self.fine_tune_p,
                k: self.fine_tune_k,
                lr: self.fine_tune_lr,
                backbone_lr_factor: self.backbone_lr_factor,
                warmup_epochs: self.warmup_epochs,
                loss: self.fine_tune_loss,
                margin: self.fine_tune_margin,
                cosface_scale: self.cosface_scale,
                train_layers: self.train_layers,
                accumulate: self.accumulate,
                patience: self.patience,
                freeze_batchnorm: !self.train_batchnorm,
                centre_features: self.centre_features,
                standardise_features: self.standardise_features,
                seed,
                device: ComputeDevice::for_runtime(device),
                autocast: self.autocast,
                ..FineTuneConfig::default()
            },
            resume: self.resume,
        })
    }
}
