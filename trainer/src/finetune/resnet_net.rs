//! Hugging Face ResNet (`ResNetModel`, basic or bottleneck blocks, the microsoft/resnet-*
//! layout the exporter reads) as a trainable candle network from its checkpoint: ImageNet
//! normalisation inside, the 7×7 stem and 3×3 max pool, stages of residual blocks, the
//! global average pool (transformers' `pooler_output`, flattened).
//!
//! Batch norms: a frozen one normalises by its running statistics, as the exported graph
//! (which folds it into the convolution) does; its scale and shift still train when its
//! layer does. With `freeze_batchnorm` off, the batch norms of the layers that train
//! normalise a training batch by the batch's own statistics and move the running ones by
//! PyTorch's rule (momentum 0.1, unbiased variance); evaluation and the written checkpoint
//! use the running ones, so an image's features never depend on the rest of its batch.

use std::path::Path;

use candle_core::{Device, Result, Tensor, Var};
use handmatch_core::embed::metadata::{IMAGENET_MEAN, IMAGENET_STD};
use handmatch_export::backbone::resnet::ResNetConfig;
use handmatch_export::checkpoint::Checkpoint;

use super::checkpoint_weights::{err, require_model_type, CheckpointWeights, WeightRole};
use super::conv::{conv2d, max_pool2d, ConvSpec};
use super::graph_net::TrainLayers;

/// PyTorch's BatchNorm2d defaults, which transformers' ResNet keeps.
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

/// One residual block: its checkpoint prefix and geometry.
struct Block {
    prefix: String,
    cin: usize,
    cout: usize,
    stride: usize,
}

pub struct ResnetNet {
    blocks: Vec<Block>,
    bottleneck: bool,
    downsample_in_bottleneck: bool,
    embedding_size: usize,
    weights: CheckpointWeights,
    mean: Tensor,
    std: Tensor,
}

impl ResnetNet {
    /// The checkpoint in `dir`; `layers` says which blocks train (`last-N`: the last N
    /// residual blocks; `all`: the stem too).
    pub fn open(
        dir: &Path,
        layers: TrainLayers,
        freeze_batchnorm: bool,
        device: &Device,
    ) -> Result<Self> {
        let ckpt = Checkpoint::open(dir).map_err(err)?;
        Self::from_checkpoint(&ckpt, layers, freeze_batchnorm, device)
    }

    /// As `open`, from a checkpoint already read.
    pub fn from_checkpoint(
        ckpt: &Checkpoint,
        layers: TrainLayers,
        freeze_batchnorm: bool,
        device: &Device,
    ) -> Result<Self> {
        require_model_type(ckpt, "resnet", "ResNet")?;
        let cfg: ResNetConfig = ckpt.config().map_err(err)?;
        let bottleneck = check_config(&cfg, ckpt)?;
        let blocks = plan(&cfg);
        let trained = trained_prefixes(&blocks, layers);
        let weights = CheckpointWeights::load(ckpt, device, |name| {
            if !trained.iter().any(|p| name.starts_with(p)) {
                WeightRole::Frozen
            } else if is_running_statistic(name) {
                if freeze_batchnorm {
                    WeightRole::Frozen
                } else {
                    WeightRole::Updated
                }
            } else {
                WeightRole::Trained
            }
        })?;
        Ok(Self {
            blocks,
            bottleneck,
            downsample_in_bottleneck: cfg.downsample_in_bottleneck,
            embedding_size: cfg.embedding_size,
            weights,
            mean: Tensor::from_slice(&IMAGENET_MEAN, (1, 3, 1, 1), device)?,
            std: Tensor::from_slice(&IMAGENET_STD, (1, 3, 1, 1), device)?,
        })
    }

    /// The width of the pooled features: the last stage's.
    pub fn feature_dim(&self) -> usize {
        self.blocks.last().map_or(self.embedding_size, |b| b.cout)
    }

    /// The trained parameters by checkpoint name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.weights.vars(WeightRole::Trained)
    }

    /// The running statistics that training batches move, by checkpoint name.
    pub fn statistics(&self) -> Vec<(String, Var)> {
        self.weights.vars(WeightRole::Updated)
    }

    /// Pooled features `[N, C]` of images `x [N, 3, S, S]` in [0, 1]; `training` normalises
    /// the training batch norms by the batch and moves their running statistics.
    pub fn forward(&self, x: &Tensor, training: bool) -> Result<Tensor> {
        let x = x.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?;
        let stem = self
            .conv_bn(&x, "embedder.embedder", 7, 2, training)?
            .relu()?;
        let mut h = max_pool2d(&stem, &geometry(3, 2))?;
        for b in &self.blocks {
            h = self.block(&h, b, training)?;
        }
        h.flatten_from(2)?.mean(2)
    }

    /// Evaluation features of `pixel_values` already normalised, as transformers takes them.
    pub fn forward_normalised(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let x = pixel_values
            .broadcast_mul(&self.std)?
            .broadcast_add(&self.mean)?;
        self.forward(&x, false)
    }

    fn block(&self, x: &Tensor, b: &Block, training: bool) -> Result<Tensor> {
        let p = &b.prefix;
        let residual = if b.cin != b.cout || b.stride != 1 {
            self.conv_bn(x, &format!("{p}.shortcut"), 1, b.stride, training)?
        } else {
            x.clone()
        };
        let y = if self.bottleneck {
            let (s1, s2) = if self.downsample_in_bottleneck {
                (b.stride, 1)
            } else {
                (1, b.stride)
            };
            let y = self.conv_bn(x, &format!("{p}.layer.0"), 1, s1, training)?;
            let y = self.conv_bn(&y.relu()?, &format!("{p}.layer.1"), 3, s2, training)?;
            self.conv_bn(&y.relu()?, &format!("{p}.layer.2"), 1, 1, training)?
        } else {
            let y = self.conv_bn(x, &format!("{p}.layer.0"), 3, b.stride, training)?;
            self.conv_bn(&y.relu()?, &format!("{p}.layer.1"), 3, 1, training)?
        };
        (y + residual)?.relu()
    }

    /// `ResNetConvLayer` without its activation: a k×k convolution (padding k / 2, no
    /// bias) and its batch norm.
    fn conv_bn(
        &self,
        x: &Tensor,
        prefix: &str,
        k: usize,
        stride: usize,
        training: bool,
    ) -> Result<Tensor> {
        let w = self.weights.get(&format!("{prefix}.convolution.weight"))?;
        let y = conv2d(x, w, None, &geometry(k, stride))?;
        self.batch_norm(&y, &format!("{prefix}.normalization"), training)
    }

    fn batch_norm(&self, y: &Tensor, prefix: &str, training: bool) -> Result<Tensor> {
        let name = |t: &str| format!("{prefix}.{t}");
        let running_mean = name("running_mean");
        let running_var = name("running_var");
        let (mean, var) = match (
            training,
            self.weights.updated(&running_mean),
            self.weights.updated(&running_var),
        ) {
            (true, Some(rm), Some(rv)) => batch_statistics(y, rm, rv)?,
            _ => (
                channels(self.weights.get(&running_mean)?)?,
                channels(self.weights.get(&running_var)?)?,
            ),
        };
        let scale = channels(self.weights.get(&name("weight"))?)?;
        let shift = channels(self.weights.get(&name("bias"))?)?;
        y.broadcast_sub(&mean)?
            .broadcast_div(&(var + BN_EPS)?.sqrt()?)?
            .broadcast_mul(&scale)?
            .broadcast_add(&shift)
    }

    /// Writes the checkpoint with the trained values (and running statistics) into `out`.
    pub fn save_checkpoint(&self, out: &Path) -> anyhow::Result<()> {
        self.weights.save(out)
    }
}

/// The batch's per-channel mean and (biased) variance `[1, C, 1, 1]`, with gradients; the
/// running statistics `rm`, `rv` move toward them (the variance unbiased, as PyTorch does).
fn batch_statistics(y: &Tensor, rm: &Var, rv: &Var) -> Result<(Tensor, Tensor)> {
    let (n, _, h, w) = y.dims4()?;
    let mean = y.mean_keepdim(3)?.mean_keepdim(2)?.mean_keepdim(0)?;
    let var = y
        .broadcast_sub(&mean)?
        .sqr()?
        .mean_keepdim(3)?
        .mean_keepdim(2)?
        .mean_keepdim(0)?;
    let count = (n * h * w) as f64;
    let unbiased = (var.detach() * (count / (count - 1.0).max(1.0)))?.flatten_all()?;
    let blend = |running: &Var, batch: Tensor| -> Result<()> {
        running.set(&((running.as_tensor() * (1.0 - BN_MOMENTUM))? + (batch * BN_MOMENTUM)?)?)
    };
    blend(rm, mean.detach().flatten_all()?)?;
    blend(rv, unbiased)?;
    Ok((mean, var))
}

/// `[C]` as `[1, C, 1, 1]`.
fn channels(t: &Tensor) -> Result<Tensor> {
    t.reshape((1, t.elem_count(), 1, 1))
}

fn geometry(k: usize, stride: usize) -> ConvSpec {
    ConvSpec {
        group: 1,
        kernel: (k, k),
        stride: (stride, stride),
        pads: [k / 2; 4],
    }
}

fn is_running_statistic(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

/// Whether the blocks are bottlenecks; refuses what the network cannot compute, naming the
/// config field.
fn check_config(cfg: &ResNetConfig, ckpt: &Checkpoint) -> Result<bool> {
    let refuse = |field: &str, reason: String| Err(err(ckpt.config_error(field, reason)));
    if cfg.num_channels != 3 {
        return refuse(
            "num_channels",
            format!("{} (RGB needs 3)", cfg.num_channels),
        );
    }
    if cfg.hidden_sizes.len() != cfg.depths.len() || cfg.depths.is_empty() {
        return refuse(
            "depths",
            format!(
                "{} stages but {} hidden_sizes",
                cfg.depths.len(),
                cfg.hidden_sizes.len()
            ),
        );
    }
    if cfg.hidden_act != "relu" {
        return refuse(
            "hidden_act",
            format!("`{}` (fine-tuning supports relu)", cfg.hidden_act),
        );
    }
    match cfg.layer_type.as_str() {
        "bottleneck" => Ok(true),
        "basic" => Ok(false),
        other => refuse(
            "layer_type",
            format!("`{other}` (expected basic or bottleneck)"),
        ),
    }
}

/// Every residual block in order, as transformers' `ResNetEncoder` builds them.
fn plan(cfg: &ResNetConfig) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut cin = cfg.embedding_size;
    for (s, (&cout, &depth)) in cfg.hidden_sizes.iter().zip(&cfg.depths).enumerate() {
        let stage_stride = if s == 0 && !cfg.downsample_in_first_stage {
            1
        } else {
            2
        };
        for l in 0..depth {
            blocks.push(Block {
                prefix: format!("encoder.stages.{s}.layers.{l}"),
                cin: if l == 0 { cin } else { cout },
                cout,
                stride: if l == 0 { stage_stride } else { 1 },
            });
        }
        cin = cout;
    }
    blocks
}

/// The name prefixes (with their trailing dot) of the tensors that train under `layers`.
fn trained_prefixes(blocks: &[Block], layers: TrainLayers) -> Vec<String> {
    match layers {
        TrainLayers::All => vec![String::new()],
        TrainLayers::Last(n) => blocks[blocks.len().saturating_sub(n)..]
            .iter()
            .map(|b| format!("{}.", b.prefix))
            .collect(),
    }
}
