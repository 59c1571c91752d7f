//! Backbones: Hugging Face checkpoints turned into ONNX subgraphs that map normalised
//! `pixel_values [N, 3, S, S]` to features `[N, D]`, exactly as transformers'
//! `pooler_output` does.

pub mod dinov2;
pub mod hand;
pub mod interpolate;
pub mod resnet;
pub mod spec;

use crate::checkpoint::Checkpoint;
use crate::error::{ExportError, Result};
use crate::onnx::graph::Attr;
use crate::onnx::GraphBuilder;
pub use hand::HandModel;
pub use spec::{BackboneSpec, OpenBackbone};

/// The backbone's output value inside the graph.
pub struct Features {
    pub value: String,
    pub dim: usize,
    /// A short description for the artefact's metadata, e.g. `dinov2(hidden=768,layers=12)`.
    pub description: String,
}

/// What a model's features come from: a Hugging Face checkpoint, the hand landmark model,
/// or both side by side (their features concatenated, checkpoint first).
#[derive(Clone, Copy)]
pub enum BackboneRef<'a> {
    Checkpoint(&'a Checkpoint),
    Hand(&'a HandModel),
    Combined(&'a Checkpoint, &'a HandModel),
}

impl<'a> From<&'a Checkpoint> for BackboneRef<'a> {
    fn from(c: &'a Checkpoint) -> Self {
        BackboneRef::Checkpoint(c)
    }
}

impl<'a> From<&'a HandModel> for BackboneRef<'a> {
    fn from(h: &'a HandModel) -> Self {
        BackboneRef::Hand(h)
    }
}

/// A built backbone: its features and, with the hand model, what alignment needs.
pub struct Built {
    pub features: Features,
    /// `(presence, landmarks)` of the hand model on the input crop.
    pub hand: Option<(String, String)>,
}

/// Adds the backbone to `g`, reading ImageNet-normalised `pixels` at `image_size`.
pub fn build_any(
    g: &mut GraphBuilder,
    source: BackboneRef<'_>,
    pixels: &str,
    image_size: usize,
) -> Result<Built> {
    Ok(match source {
        BackboneRef::Checkpoint(c) => Built {
            features: build(g, c, pixels, image_size)?,
            hand: None,
        },
        BackboneRef::Hand(h) => {
            let b = hand::build(g, h, pixels, image_size)?;
            Built {
                features: b.features,
                hand: Some((b.presence, b.landmarks)),
            }
        }
        BackboneRef::Combined(c, h) => {
            let first = build(g, c, pixels, image_size)?;
            let b = hand::build(g, h, pixels, image_size)?;
            let value = g.op(
                "Concat",
                &[&first.value, &b.features.value],
                vec![("axis", Attr::Int(1))],
            );
            Built {
                features: Features {
                    value,
                    dim: first.dim + b.features.dim,
                    description: format!("{}+{}", first.description, b.features.description),
                },
                hand: Some((b.presence, b.landmarks)),
            }
        }
    })
}

/// Adds the checkpoint's backbone to `g`, reading `pixels` at `image_size`.
pub fn build(
    g: &mut GraphBuilder,
    ckpt: &Checkpoint,
    pixels: &str,
    image_size: usize,
) -> Result<Features> {
    match ckpt.model_type()? {
        "dinov2" => dinov2::build(g, ckpt, pixels, image_size),
        "resnet" => resnet::build(g, ckpt, pixels, image_size),
        other => Err(ExportError::UnsupportedModelType {
            path: ckpt.config_path().to_path_buf(),
            found: other.to_string(),
        }),
    }
}

/// The activations transformers' `ACT2FN` maps these names to.
pub fn activation(
    g: &mut GraphBuilder,
    x: &str,
    name: &str,
    ckpt: &Checkpoint,
    field: &str,
) -> Result<String> {
    Ok(match name {
        "gelu" => {
            // 0.5·x·(1 + erf(x/√2)): the exact form, which ONNX Runtime fuses into one Gelu.
            let sqrt2 = g.const_f32("sqrt2", &[], vec![std::f32::consts::SQRT_2]);
            let one = g.const_f32("one", &[], vec![1.0]);
            let half = g.const_f32("half", &[], vec![0.5]);
            let d = g.op("Div", &[x, &sqrt2], vec![]);
            let e = g.op("Erf", &[&d], vec![]);
            let p = g.add(&e, &one);
            let m = g.mul(x, &p);
            g.mul(&m, &half)
        }
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => {
            // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
            let c = g.const_f32("c", &[], vec![(2.0f32 / std::f32::consts::PI).sqrt()]);
            let k = g.const_f32("k", &[], vec![0.044715]);
            let one = g.const_f32("one", &[], vec![1.0]);
            let half = g.const_f32("half", &[], vec![0.5]);
            let x2 = g.mul(x, x);
            let x3 = g.mul(&x2, x);
            let kx3 = g.mul(&x3, &k);
            let inner = g.add(x, &kx3);
            let scaled = g.mul(&inner, &c);
            let t = g.op("Tanh", &[&scaled], vec![]);
            let p = g.add(&t, &one);
            let m = g.mul(x, &p);
            g.mul(&m, &half)
        }
        "relu" => g.op("Relu", &[x], vec![]),
        "silu" | "swish" => {
            let s = g.op("Sigmoid", &[x], vec![]);
            g.mul(x, &s)
        }
        other => {
            return Err(ckpt.config_error(
                field,
                format!("unsupported activation `{other}` (supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu)"),
            ))
        }
    })
}

pub fn layer_norm(
    g: &mut GraphBuilder,
    x: &str,
    ckpt: &Checkpoint,
    prefix: &str,
    dim: usize,
    eps: f32,
) -> Result<String> {
    let w = g.weight(
        &format!("{prefix}.weight"),
        ckpt.get(&format!("{prefix}.weight"), &[dim])?,
    );
    let b = g.weight(
        &format!("{prefix}.bias"),
        ckpt.get(&format!("{prefix}.bias"), &[dim])?,
    );
    Ok(g.op(
        "LayerNormalization",
        &[x, &w, &b],
        vec![("axis", Attr::Int(-1)), ("epsilon", Attr::Float(eps))],
    ))
}
