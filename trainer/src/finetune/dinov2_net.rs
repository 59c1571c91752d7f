//! Hugging Face DINOv2 (`Dinov2Model`, any size, both tensor layouts the exporter reads) as a
//! trainable candle network, from the same checkpoint files: ImageNet normalisation inside,
//! patch embedding as one matrix product, position embeddings resized by a fixed bicubic
//! matrix (so the native-size table itself trains), pre-norm blocks with LayerScale, the
//! final LayerNorm, the CLS token out (transformers' `pooler_output`).
//!
//! The tuned weights are written back as a checkpoint of the same layout, so the exporter
//! builds the artefact from them as from any other checkpoint.
//!
//! Autocast (`with_autocast(DType::BF16)`, for GPUs): the weights, their gradients and
//! updates stay f32; the forward pass casts them to bf16 for the matrix products, GELU and
//! element-wise work, and computes the LayerNorms, the softmax and the output features in
//! f32, where bf16's 8-bit mantissa would lose the statistics. bf16 keeps f32's exponent
//! range, so gradients need no loss scaling; f16 would, and is not offered.

use std::path::Path;

use candle_core::{DType, Device, Result, Tensor, Var, D};
use handmatch_core::embed::metadata::{IMAGENET_MEAN, IMAGENET_STD};
use handmatch_export::backbone::dinov2::{attention_names, AttentionNames, Dinov2Config};
use handmatch_export::backbone::interpolate;
use handmatch_export::checkpoint::Checkpoint;

use super::checkpoint_weights::{err, require_model_type, CheckpointWeights, WeightRole};
use super::graph_net::TrainLayers;

pub struct Dinov2Net {
    cfg: Dinov2Config,
    weights: CheckpointWeights,
    /// `[g², n²]`: the checkpoint's `n × n` position table resized to the input's `g × g`.
    resize: Option<Tensor>,
    /// Each block's attention projections, in the checkpoint's layout.
    attention: Vec<AttentionNames>,
    grid: usize,
    mean: Tensor,
    std: Tensor,
    /// The dtype of the forward pass's products (f32 unless autocast).
    compute: DType,
}

impl Dinov2Net {
    /// The checkpoint in `dir` for `image_size` inputs; `layers` says which blocks train
    /// (`last-N`: the last N blocks and the final norm; `all`: embeddings too).
    pub fn open(
        dir: &Path,
        image_size: usize,
        layers: TrainLayers,
        device: &Device,
    ) -> Result<Self> {
        let ckpt = Checkpoint::open(dir).map_err(err)?;
        Self::from_checkpoint(&ckpt, image_size, layers, device)
    }

    /// As `open`, from a checkpoint already read.
    pub fn from_checkpoint(
        ckpt: &Checkpoint,
        image_size: usize,
        layers: TrainLayers,
        device: &Device,
    ) -> Result<Self> {
        require_model_type(ckpt, "dinov2", "DINOv2")?;
        let cfg: Dinov2Config = ckpt.config().map_err(err)?;
        if image_size % cfg.patch_size != 0 {
            return Err(err(format!(
                "image size {image_size} is not a multiple of the patch size {}",
                cfg.patch_size
            )));
        }
        let weights = CheckpointWeights::load(ckpt, device, |name| {
            if trains(name, layers, cfg.num_hidden_layers) {
                WeightRole::Trained
            } else {
                WeightRole::Frozen
            }
        })?;
        let native = cfg.image_size / cfg.patch_size;
        let grid = image_size / cfg.patch_size;
        let resize = (native != grid)
            .then(|| bicubic_matrix(native, grid, device))
            .transpose()?;
        let attention = (0..cfg.num_hidden_layers)
            .map(|i| attention_names(ckpt, &format!("encoder.layer.{i}")))
            .collect();
        Ok(Self {
            attention,
            cfg,
            weights,
            resize,
            grid,
            mean: Tensor::from_slice(&IMAGENET_MEAN, (1, 3, 1, 1), device)?,
            std: Tensor::from_slice(&IMAGENET_STD, (1, 3, 1, 1), device)?,
            compute: DType::F32,
        })
    }

    /// The same network computing its products in `compute` (see the module's autocast).
    pub fn with_autocast(mut self, compute: DType) -> Self {
        self.compute = compute;
        self
    }

    pub fn hidden_size(&self) -> usize {
        self.cfg.hidden_size
    }

    /// The weight `name` in the forward pass's dtype (the f32 tensor itself without autocast).
    fn p(&self, name: &str) -> Result<Tensor> {
        self.weights.get(name)?.to_dtype(self.compute)
    }

    /// The trained parameters by checkpoint name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.weights.vars(WeightRole::Trained)
    }

    /// `pooler_output [N, H]` of images `x [N, 3, S, S]` in [0, 1].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?;
        let mut h = self.embeddings(&x.to_dtype(self.compute)?)?;
        for i in 0..self.cfg.num_hidden_layers {
            h = self.block(&h, i)?;
        }
        let h = self.layer_norm(&h, "layernorm")?;
        h.narrow(1, 0, 1)?.squeeze(1)?.to_dtype(DType::F32)
    }

    /// `pooler_output` of `pixel_values` already normalised, as transformers takes them.
    pub fn forward_normalised(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let x = pixel_values
            .broadcast_mul(&self.std)?
            .broadcast_add(&self.mean)?;
        self.forward(&x)
    }

    fn embeddings(&self, x: &Tensor) -> Result<Tensor> {
        let (n, _, _, _) = x.dims4()?;
        let (h, p, g) = (self.cfg.hidden_size, self.cfg.patch_size, self.grid);
        // Patch embedding (a stride = kernel convolution) as one product of unfolded patches.
        let patches = x
            .reshape((n, 3, g, p, g, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((n * g * g, 3 * p * p))?;
        let w = self
            .p("embeddings.patch_embeddings.projection.weight")?
            .reshape((h, 3 * p * p))?;
        let b = self.p("embeddings.patch_embeddings.projection.bias")?;
        let patches = patches
            .matmul(&w.t()?)?
            .broadcast_add(&b)?
            .reshape((n, g * g, h))?;
        let pos = self.p("embeddings.position_embeddings")?.squeeze(0)?;
        let cls_pos = pos.narrow(0, 0, 1)?;
        let patch_pos = pos.narrow(0, 1, pos.dim(0)? - 1)?;
        let patch_pos = match &self.resize {
            Some(m) => m.to_dtype(self.compute)?.matmul(&patch_pos)?,
            None => patch_pos,
        };
        let cls = self
            .p("embeddings.cls_token")?
            .reshape((1, 1, h))?
            .broadcast_add(&cls_pos)?
            .broadcast_as((n, 1, h))?;
        Tensor::cat(&[&cls, &patches.broadcast_add(&patch_pos)?], 1)
    }

    fn block(&self, x: &Tensor, i: usize) -> Result<Tensor> {
        let layer = format!("encoder.layer.{i}");
        let a = self.attention(&self.layer_norm(x, &format!("{layer}.norm1"))?, i)?;
        let x = (x + a.broadcast_mul(&self.p(&format!("{layer}.layer_scale1.lambda1"))?)?)?;
        let n2 = self.layer_norm(&x, &format!("{layer}.norm2"))?;
        let f = if self.cfg.use_swiglu_ffn {
            self.swiglu(&n2, &layer)?
        } else {
            self.mlp(&n2, &layer)?
        };
        x + f.broadcast_mul(&self.p(&format!("{layer}.layer_scale2.lambda1"))?)?
    }

    /// candle-nn's tensor-op LayerNorm (its fused `layer_norm` has no backward), in f32.
    fn layer_norm(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        candle_nn::ops::layer_norm_slow(
            &x.to_dtype(DType::F32)?,
            self.weights.get(&format!("{name}.weight"))?,
            self.weights.get(&format!("{name}.bias"))?,
            self.cfg.layer_norm_eps as f32,
        )?
        .to_dtype(self.compute)
    }

    /// `x [N, T, in] · Wᵀ + b` for the checkpoint's `{name}.weight` / `{name}.bias`.
    fn linear(&self, x: &Tensor, name: &str, bias: bool) -> Result<Tensor> {
        let (n, t, d) = x.dims3()?;
        let w = self.p(&format!("{name}.weight"))?;
        let y = x.reshape((n * t, d))?.matmul(&w.t()?)?;
        let y = if bias {
            y.broadcast_add(&self.p(&format!("{name}.bias"))?)?
        } else {
            y
        };
        y.reshape((n, t, w.dim(0)?))
    }

    fn attention(&self, x: &Tensor, i: usize) -> Result<Tensor> {
        let (n, t, h) = x.dims3()?;
        let heads = self.cfg.num_attention_heads;
        let d = h / heads;
        let AttentionNames { q, k, v, o } = &self.attention[i];
        let split = |y: Tensor| -> Result<Tensor> {
            y.reshape((n, t, heads, d))?.transpose(1, 2)?.contiguous()
        };
        let bias = self.cfg.qkv_bias;
        let q = (split(self.linear(x, q, bias)?)? * (d as f64).powf(-0.5))?;
        let k = split(self.linear(x, k, bias)?)?;
        let v = split(self.linear(x, v, bias)?)?;
        let scores = q.matmul(&k.t()?.contiguous()?)?;
        let probs = candle_nn::ops::softmax(&scores.to_dtype(DType::F32)?, D::Minus1)?
            .to_dtype(self.compute)?;
        let ctx = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((n, t, h))?;
        self.linear(&ctx, o, true)
    }

    fn mlp(&self, x: &Tensor, layer: &str) -> Result<Tensor> {
        let y = self.linear(x, &format!("{layer}.mlp.fc1"), true)?;
        let y = match self.cfg.hidden_act.as_str() {
            "gelu" => y.gelu_erf()?,
            "gelu_new" | "gelu_pytorch_tanh" => y.gelu()?,
            "relu" => y.relu()?,
            "silu" | "swish" => y.silu()?,
            other => return Err(err(format!("hidden_act `{other}` is not supported"))),
        };
        self.linear(&y, &format!("{layer}.mlp.fc2"), true)
    }

    /// `down(silu(gate(x)) · up(x))`, from either layout.
    fn swiglu(&self, x: &Tensor, layer: &str) -> Result<Tensor> {
        let mlp = format!("{layer}.mlp");
        if self.weights.contains(&format!("{mlp}.weights_in.weight")) {
            let y = self.linear(x, &format!("{mlp}.weights_in"), true)?;
            let f = y.dim(D::Minus1)? / 2;
            let gate = y.narrow(D::Minus1, 0, f)?.silu()?;
            let hidden = (gate * y.narrow(D::Minus1, f, f)?)?;
            return self.linear(&hidden, &format!("{mlp}.weights_out"), true);
        }
        let gate = self.linear(x, &format!("{mlp}.gate_proj"), true)?.silu()?;
        let up = self.linear(x, &format!("{mlp}.up_proj"), true)?;
        self.linear(&(gate * up)?, &format!("{mlp}.down_proj"), true)
    }

    /// Writes the checkpoint with the trained values into `out`, for the exporter to read.
    pub fn save_checkpoint(&self, out: &Path) -> anyhow::Result<()> {
        self.weights.save(out)
    }
}

/// Whether `name` trains under `layers` for a network of `depth` blocks.
fn trains(name: &str, layers: TrainLayers, depth: usize) -> bool {
    match layers {
        TrainLayers::All => true,
        TrainLayers::Last(0) => false,
        TrainLayers::Last(n) => {
            if name.starts_with("layernorm.") {
                return true;
            }
            name.strip_prefix("encoder.layer.")
                .and_then(|rest| rest.split('.').next())
                .and_then(|i| i.parse::<usize>().ok())
                .is_some_and(|i| i + n >= depth)
        }
    }
}

/// `[g², n²]`: row `t` holds the weights with which transformers' bicubic resize of an
/// `n × n` grid reads each source position for output position `t` (the resize is linear,
/// so resizing each unit image gives its columns).
fn bicubic_matrix(native: usize, grid: usize, device: &Device) -> Result<Tensor> {
    let nn = native * native;
    let mut basis = vec![0f32; nn * nn];
    for i in 0..nn {
        basis[i * nn + i] = 1.0;
    }
    // Channel i of the result is unit image i resized: [n², g²] → transposed.
    let resized = interpolate::bicubic(&basis, nn, native, native, grid, grid);
    Tensor::from_vec(resized, (nn, grid * grid), device)?
        .t()?
        .contiguous()
}
