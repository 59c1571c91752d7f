//! DINOv2 (transformers' `Dinov2Model`), small to giant: patch embedding, CLS token,
//! position embeddings interpolated to the export size, pre-norm blocks with LayerScale and
//! a GELU MLP or SwiGLU feed-forward, final LayerNorm, CLS token out.

use serde::Deserialize;

use super::features::Features;
use super::interpolate;
use super::layers::{activation, layer_norm};
use crate::checkpoint::Checkpoint;
use crate::error::{ExportError, Result};
use crate::onnx::graph::Attr;
use crate::onnx::GraphBuilder;
use crate::tensor::Tensor;

/// The `config.json` fields used, with transformers' defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct Dinov2Config {
    #[serde(default = "d::hidden")]
    pub hidden_size: usize,
    #[serde(default = "d::layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d::layers")]
    pub num_attention_heads: usize,
    #[serde(default = "d::mlp_ratio")]
    pub mlp_ratio: f64,
    #[serde(default = "d::gelu")]
    pub hidden_act: String,
    #[serde(default = "d::eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "d::image_size")]
    pub image_size: usize,
    #[serde(default = "d::patch")]
    pub patch_size: usize,
    #[serde(default = "d::channels")]
    pub num_channels: usize,
    #[serde(default = "d::yes")]
    pub qkv_bias: bool,
    #[serde(default)]
    pub use_swiglu_ffn: bool,
}

mod d {
    pub fn hidden() -> usize {
        768
    }
    pub fn layers() -> usize {
        12
    }
    pub fn mlp_ratio() -> f64 {
        4.0
    }
    pub fn gelu() -> String {
        "gelu".into()
    }
    pub fn eps() -> f64 {
        1e-6
    }
    pub fn image_size() -> usize {
        224
    }
    pub fn patch() -> usize {
        14
    }
    pub fn channels() -> usize {
        3
    }
    pub fn yes() -> bool {
        true
    }
}

impl Dinov2Config {
    pub fn mlp_hidden(&self) -> usize {
        (self.hidden_size as f64 * self.mlp_ratio) as usize
    }

    /// Width of each SwiGLU half, as transformers computes it.
    pub fn swiglu_hidden(&self) -> usize {
        let h = self.mlp_hidden();
        ((h as f64 * 2.0 / 3.0) as usize).div_ceil(8) * 8
    }
}

// Long on purpose: one function follows transformers' Dinov2Model.forward step by step
// (embeddings, interpolated positions, the layers, the final norm), so the two can be read
// side by side; the layer itself is its own function.
pub fn build(
    g: &mut GraphBuilder,
    ckpt: &Checkpoint,
    pixels: &str,
    image_size: usize,
) -> Result<Features> {
    let cfg: Dinov2Config = ckpt.config()?;
    let h = cfg.hidden_size;
    if cfg.num_channels != 3 {
        return Err(ckpt.config_error(
            "num_channels",
            format!("{} (RGB input needs 3)", cfg.num_channels),
        ));
    }
    if cfg.num_attention_heads == 0 || h % cfg.num_attention_heads != 0 {
        return Err(ckpt.config_error(
            "num_attention_heads",
            format!(
                "{} does not divide hidden_size {h}",
                cfg.num_attention_heads
            ),
        ));
    }
    let p = cfg.patch_size;
    if p == 0 || image_size == 0 || image_size % p != 0 {
        return Err(ExportError::ImageSize {
            size: image_size,
            patch: p,
        });
    }
    let grid = image_size / p;
    let eps = cfg.layer_norm_eps as f32;

    // Patch embedding: Conv(stride = kernel = patch) → [N, H, g, g] → [N, g², H].
    let w = ckpt.get(
        "embeddings.patch_embeddings.projection.weight",
        &[h, 3, p, p],
    )?;
    let b = ckpt.get("embeddings.patch_embeddings.projection.bias", &[h])?;
    let w = g.weight("embeddings.patch_embeddings.projection.weight", w);
    let b = g.weight("embeddings.patch_embeddings.projection.bias", b);
    let p = p as i64;
    let conv = g.op(
        "Conv",
        &[pixels, &w, &b],
        vec![
            ("kernel_shape", Attr::Ints(vec![p, p])),
            ("strides", Attr::Ints(vec![p, p])),
        ],
    );
    let flat = g.reshape(&conv, &[0, h as i64, -1]);
    let patches = g.transpose(&flat, &[0, 2, 1]);

    // Position embeddings, resized here once; the CLS position is folded into the CLS token.
    let (cls_pos, patch_pos) = position_embeddings(ckpt, &cfg, grid)?;
    let cls = ckpt.get("embeddings.cls_token", &[1, 1, h])?;
    let cls_with_pos = Tensor::new(
        vec![1, 1, h],
        cls.data.iter().zip(&cls_pos).map(|(a, b)| a + b).collect(),
    );
    let patch_pos = g.weight(
        "embeddings.position_embeddings.patches",
        &Tensor::new(vec![1, grid * grid, h], patch_pos),
    );
    let patches = g.add(&patches, &patch_pos);
    let cls_token = g.weight("embeddings.cls_token_with_position", &cls_with_pos);
    let shape = g.op("Shape", &[&patches], vec![]);
    let zero = g.const_i64("start", &[0]);
    let one = g.const_i64("end", &[1]);
    let batch = g.op("Slice", &[&shape, &zero, &one], vec![]);
    let tail = g.const_i64("tail", &[1, h as i64]);
    let cls_shape = g.op("Concat", &[&batch, &tail], vec![("axis", Attr::Int(0))]);
    let cls_batch = g.op("Expand", &[&cls_token, &cls_shape], vec![]);
    let mut x = g.op(
        "Concat",
        &[&cls_batch, &patches],
        vec![("axis", Attr::Int(1))],
    );

    for i in 0..cfg.num_hidden_layers {
        x = block(g, ckpt, &cfg, &x, i, eps)?;
    }
    let x = layer_norm(g, &x, ckpt, "layernorm", h, eps)?;
    let index = g.const_i64("cls_index", &[0]);
    let gathered = g.op("Gather", &[&x, &index], vec![("axis", Attr::Int(1))]);
    let features = g.reshape(&gathered, &[0, h as i64]);
    Ok(Features {
        value: features,
        dim: h,
        layout: vec![("checkpoint".into(), h)],
        description: format!(
            "dinov2(hidden={h},layers={},heads={},patch={},ffn={})",
            cfg.num_hidden_layers,
            cfg.num_attention_heads,
            cfg.patch_size,
            if cfg.use_swiglu_ffn {
                "swiglu"
            } else {
                cfg.hidden_act.as_str()
            }
        ),
    })
}

/// Returns the CLS position `[H]` and the patch positions `[g², H]` for a `grid x grid`
/// input, interpolated as `Dinov2Embeddings.interpolate_pos_encoding` does.
fn position_embeddings(
    ckpt: &Checkpoint,
    cfg: &Dinov2Config,
    grid: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let h = cfg.hidden_size;
    let native = cfg.image_size / cfg.patch_size;
    let pos = ckpt.get(
        "embeddings.position_embeddings",
        &[1, native * native + 1, h],
    )?;
    let cls = pos.data[..h].to_vec();
    let patches = &pos.data[h..];
    if native == grid {
        return Ok((cls, patches.to_vec()));
    }
    // [g², H] → [H, g, g], resize, → [g'², H]
    let mut chw = vec![0.0; patches.len()];
    for (t, row) in patches.chunks(h).enumerate() {
        for (c, v) in row.iter().enumerate() {
            chw[c * native * native + t] = *v;
        }
    }
    let resized = interpolate::bicubic(&chw, h, native, native, grid, grid);
    let mut out = vec![0.0; grid * grid * h];
    for c in 0..h {
        for t in 0..grid * grid {
            out[t * h + c] = resized[c * grid * grid + t];
        }
    }
    Ok((cls, out))
}

/// Tensor names differ between the Hub layout (`attention.attention.query`, `mlp.weights_in`)
/// and the one transformers v5 writes with `save_original_format=False` (`q_proj`, `gate_proj`).
pub struct AttentionNames {
    pub q: String,
    pub k: String,
    pub v: String,
    pub o: String,
}

pub fn attention_names(ckpt: &Checkpoint, layer: &str) -> AttentionNames {
    if ckpt.has(&format!("{layer}.attention.q_proj.weight")) {
        AttentionNames {
            q: format!("{layer}.attention.q_proj"),
            k: format!("{layer}.attention.k_proj"),
            v: format!("{layer}.attention.v_proj"),
            o: format!("{layer}.attention.o_proj"),
        }
    } else {
        AttentionNames {
            q: format!("{layer}.attention.attention.query"),
            k: format!("{layer}.attention.attention.key"),
            v: format!("{layer}.attention.attention.value"),
            o: format!("{layer}.attention.output.dense"),
        }
    }
}

fn block(
    g: &mut GraphBuilder,
    ckpt: &Checkpoint,
    cfg: &Dinov2Config,
    x: &str,
    i: usize,
    eps: f32,
) -> Result<String> {
    let h = cfg.hidden_size;
    let layer = format!("encoder.layer.{i}");
    let n1 = layer_norm(g, x, ckpt, &format!("{layer}.norm1"), h, eps)?;
    let attn = attention(g, ckpt, cfg, &n1, &layer)?;
    let ls1 = g.weight(
        &format!("{layer}.layer_scale1.lambda1"),
        ckpt.get(&format!("{layer}.layer_scale1.lambda1"), &[h])?,
    );
    let scaled = g.mul(&attn, &ls1);
    let x = g.add(x, &scaled);
    let n2 = layer_norm(g, &x, ckpt, &format!("{layer}.norm2"), h, eps)?;
    let ffn = if cfg.use_swiglu_ffn {
        swiglu(g, ckpt, cfg, &n2, &layer)?
    } else {
        mlp(g, ckpt, cfg, &n2, &layer)?
    };
    let ls2 = g.weight(
        &format!("{layer}.layer_scale2.lambda1"),
        ckpt.get(&format!("{layer}.layer_scale2.lambda1"), &[h])?,
    );
    let scaled = g.mul(&ffn, &ls2);
    Ok(g.add(&x, &scaled))
}

fn attention(
    g: &mut GraphBuilder,
    ckpt: &Checkpoint,
    cfg: &Dinov2Config,
    x: &str,
    layer: &str,
) -> Result<String> {
    let h = cfg.hidden_size;
    let heads = cfg.num_attention_heads;
    let head_dim = h / heads;
    let names = attention_names(ckpt, layer);
    let bias = |name: &str| -> Result<Tensor> {
        if cfg.qkv_bias {
            Ok(ckpt.get(&format!("{name}.bias"), &[h])?.clone())
        } else {
            Ok(Tensor::scalar_like(&[h], 0.0))
        }
    };
    // The 1/√d score scale is folded into the query projection; q, k and v share one MatMul.
    let scale = (head_dim as f32).powf(-0.5);
    let wq = ckpt
        .get(&format!("{}.weight", names.q), &[h, h])?
        .scaled(scale);
    let bq = bias(&names.q)?.scaled(scale);
    let wk = ckpt.get(&format!("{}.weight", names.k), &[h, h])?;
    let bk = bias(&names.k)?;
    let wv = ckpt.get(&format!("{}.weight", names.v), &[h, h])?;
    let bv = bias(&names.v)?;
    let w = Tensor::concat_rows(&[&wq, wk, wv]);
    let b = Tensor::concat_rows(&[&bq, &bk, &bv]);
    let qkv = g.linear(x, &format!("{layer}.attention.qkv"), &w, Some(&b));
    let sizes = g.const_i64("qkv_split", &[h as i64; 3]);
    let parts = g.op_n("Split", &[&qkv, &sizes], 3, vec![("axis", Attr::Int(-1))]);
    let heads_shape = [0, 0, heads as i64, head_dim as i64];
    let q = g.reshape(&parts[0], &heads_shape);
    let q = g.transpose(&q, &[0, 2, 1, 3]);
    let k = g.reshape(&parts[1], &heads_shape);
    let k = g.transpose(&k, &[0, 2, 3, 1]);
    let v = g.reshape(&parts[2], &heads_shape);
    let v = g.transpose(&v, &[0, 2, 1, 3]);
    let scores = g.op("MatMul", &[&q, &k], vec![]);
    let probs = g.op("Softmax", &[&scores], vec![("axis", Attr::Int(-1))]);
    let ctx = g.op("MatMul", &[&probs, &v], vec![]);
    let ctx = g.transpose(&ctx, &[0, 2, 1, 3]);
    let ctx = g.reshape(&ctx, &[0, 0, h as i64]);
    let wo = ckpt.get(&format!("{}.weight", names.o), &[h, h])?;
    let bo = ckpt.get(&format!("{}.bias", names.o), &[h])?;
    Ok(g.linear(&ctx, &names.o, wo, Some(bo)))
}

fn mlp(
    g: &mut GraphBuilder,
    ckpt: &Checkpoint,
    cfg: &Dinov2Config,
    x: &str,
    layer: &str,
) -> Result<String> {
    let h = cfg.hidden_size;
    let m = cfg.mlp_hidden();
    let fc1 = format!("{layer}.mlp.fc1");
    let fc2 = format!("{layer}.mlp.fc2");
    let y = g.linear(
        x,
        &fc1,
        ckpt.get(&format!("{fc1}.weight"), &[m, h])?,
        Some(ckpt.get(&format!("{fc1}.bias"), &[m])?),
    );
    let y = activation(g, &y, &cfg.hidden_act, ckpt, "hidden_act")?;
    Ok(g.linear(
        &y,
        &fc2,
        ckpt.get(&format!("{fc2}.weight"), &[h, m])?,
        Some(ckpt.get(&format!("{fc2}.bias"), &[h])?),
    ))
}

/// `down(silu(gate(x)) · up(x))`; gate and up run as one MatMul.
fn swiglu(
    g: &mut GraphBuilder,
    ckpt: &Checkpoint,
    cfg: &Dinov2Config,
    x: &str,
    layer: &str,
) -> Result<String> {
    let h = cfg.hidden_size;
    let f = cfg.swiglu_hidden();
    let mlp = format!("{layer}.mlp");
    let (w_in, b_in, out) = if ckpt.has(&format!("{mlp}.weights_in.weight")) {
        (
            ckpt.get(&format!("{mlp}.weights_in.weight"), &[2 * f, h])?
                .clone(),
            ckpt.get(&format!("{mlp}.weights_in.bias"), &[2 * f])?
                .clone(),
            format!("{mlp}.weights_out"),
        )
    } else {
        let gate_w = ckpt.get(&format!("{mlp}.gate_proj.weight"), &[f, h])?;
        let up_w = ckpt.get(&format!("{mlp}.up_proj.weight"), &[f, h])?;
        let gate_b = ckpt.get(&format!("{mlp}.gate_proj.bias"), &[f])?;
        let up_b = ckpt.get(&format!("{mlp}.up_proj.bias"), &[f])?;
        (
            Tensor::concat_rows(&[gate_w, up_w]),
            Tensor::concat_rows(&[gate_b, up_b]),
            format!("{mlp}.down_proj"),
        )
    };
    let y = g.linear(x, &format!("{mlp}.weights_in"), &w_in, Some(&b_in));
    let sizes = g.const_i64("swiglu_split", &[f as i64, f as i64]);
    let halves = g.op_n("Split", &[&y, &sizes], 2, vec![("axis", Attr::Int(-1))]);
    let sig = g.op("Sigmoid", &[&halves[0]], vec![]);
    let gate = g.mul(&halves[0], &sig);
    let hidden = g.mul(&gate, &halves[1]);
    Ok(g.linear(
        &hidden,
        &out,
        ckpt.get(&format!("{out}.weight"), &[h, f])?,
        Some(ckpt.get(&format!("{out}.bias"), &[h])?),
    ))
}
