//! ResNet (transformers' `ResNetModel`, the microsoft/resnet-* layout): 7x7 stem and max
//! pool, stages of basic or bottleneck blocks, global average pool. Every BatchNorm is folded
//! into the convolution before it.

use serde::Deserialize;

use super::features::Features;
use super::layers::activation;
use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::onnx::graph::Attr;
use crate::onnx::GraphBuilder;
use crate::tensor::BatchNorm;

/// PyTorch's BatchNorm2d default, which transformers' ResNet keeps.
const BN_EPS: f32 = 1e-5;

#[derive(Debug, Clone, Deserialize)]
pub struct ResNetConfig {
    #[serde(default = "d::channels")]
    pub num_channels: usize,
    #[serde(default = "d::embedding")]
    pub embedding_size: usize,
    #[serde(default = "d::hidden_sizes")]
    pub hidden_sizes: Vec<usize>,
    #[serde(default = "d::depths")]
    pub depths: Vec<usize>,
    #[serde(default = "d::bottleneck")]
    pub layer_type: String,
    #[serde(default = "d::relu")]
    pub hidden_act: String,
    #[serde(default)]
    pub downsample_in_first_stage: bool,
    #[serde(default)]
    pub downsample_in_bottleneck: bool,
}

mod d {
    pub fn channels() -> usize {
        3
    }
    pub fn embedding() -> usize {
        64
    }
    pub fn hidden_sizes() -> Vec<usize> {
        vec![256, 512, 1024, 2048]
    }
    pub fn depths() -> Vec<usize> {
        vec![3, 4, 6, 3]
    }
    pub fn bottleneck() -> String {
        "bottleneck".into()
    }
    pub fn relu() -> String {
        "relu".into()
    }
}

struct Ctx<'a> {
    ckpt: &'a Checkpoint,
    act: &'a str,
}

// Long on purpose: one function follows transformers' ResNetModel.forward (embedder,
// stages, pooler) so the two can be read side by side; each block is its own function.
pub fn build(
    g: &mut GraphBuilder,
    ckpt: &Checkpoint,
    pixels: &str,
    _image_size: usize,
) -> Result<Features> {
    let cfg: ResNetConfig = ckpt.config()?;
    if cfg.num_channels != 3 {
        return Err(ckpt.config_error(
            "num_channels",
            format!("{} (RGB input needs 3)", cfg.num_channels),
        ));
    }
    if cfg.hidden_sizes.len() != cfg.depths.len() || cfg.depths.is_empty() {
        return Err(ckpt.config_error(
            "depths",
            format!(
                "{} stages but {} hidden_sizes",
                cfg.depths.len(),
                cfg.hidden_sizes.len()
            ),
        ));
    }
    let bottleneck = match cfg.layer_type.as_str() {
        "bottleneck" => true,
        "basic" => false,
        other => {
            return Err(ckpt.config_error(
                "layer_type",
                format!("`{other}` (expected basic or bottleneck)"),
            ))
        }
    };
    let cx = Ctx {
        ckpt,
        act: &cfg.hidden_act,
    };

    let x = conv_bn(
        g,
        &cx,
        pixels,
        "embedder.embedder",
        cfg.num_channels,
        cfg.embedding_size,
        7,
        2,
        true,
    )?;
    let mut x = g.op(
        "MaxPool",
        &[&x],
        vec![
            ("kernel_shape", Attr::Ints(vec![3, 3])),
            ("strides", Attr::Ints(vec![2, 2])),
            ("pads", Attr::Ints(vec![1, 1, 1, 1])),
        ],
    );
    let mut in_ch = cfg.embedding_size;
    for (s, (&out_ch, &depth)) in cfg.hidden_sizes.iter().zip(&cfg.depths).enumerate() {
        let stage_stride = if s == 0 && !cfg.downsample_in_first_stage {
            1
        } else {
            2
        };
        for l in 0..depth {
            let (cin, stride) = if l == 0 {
                (in_ch, stage_stride)
            } else {
                (out_ch, 1)
            };
            let prefix = format!("encoder.stages.{s}.layers.{l}");
            x = if bottleneck {
                bottleneck_layer(
                    g,
                    &cx,
                    &x,
                    &prefix,
                    cin,
                    out_ch,
                    stride,
                    cfg.downsample_in_bottleneck,
                )?
            } else {
                basic_layer(g, &cx, &x, &prefix, cin, out_ch, stride)?
            };
        }
        in_ch = out_ch;
    }
    let pooled = g.op("GlobalAveragePool", &[&x], vec![]);
    let features = g.op("Flatten", &[&pooled], vec![("axis", Attr::Int(1))]);
    Ok(Features {
        value: features,
        dim: in_ch,
        layout: vec![("checkpoint".into(), in_ch)],
        description: format!(
            "resnet({},depths={:?},widths={:?})",
            cfg.layer_type, cfg.depths, cfg.hidden_sizes
        ),
    })
}

/// `ResNetConvLayer` (or `ResNetShortCut` when `act` is false and k = 1): conv, BN, act.
#[allow(clippy::too_many_arguments)]
fn conv_bn(
    g: &mut GraphBuilder,
    cx: &Ctx,
    x: &str,
    prefix: &str,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    act: bool,
) -> Result<String> {
    let ckpt = cx.ckpt;
    let w = ckpt.get(&format!("{prefix}.convolution.weight"), &[cout, cin, k, k])?;
    let bn_name = |t: &str| format!("{prefix}.normalization.{t}");
    let bn = BatchNorm {
        weight: ckpt.get(&bn_name("weight"), &[cout])?,
        bias: ckpt.get(&bn_name("bias"), &[cout])?,
        running_mean: ckpt.get(&bn_name("running_mean"), &[cout])?,
        running_var: ckpt.get(&bn_name("running_var"), &[cout])?,
        eps: BN_EPS,
    };
    let (w, b) = bn.fold_into(w, None);
    let w = g.weight(&format!("{prefix}.convolution.weight_bn"), &w);
    let b = g.weight(&format!("{prefix}.convolution.bias_bn"), &b);
    let (k, stride, pad) = (k as i64, stride as i64, (k / 2) as i64);
    let y = g.op(
        "Conv",
        &[x, &w, &b],
        vec![
            ("kernel_shape", Attr::Ints(vec![k, k])),
            ("strides", Attr::Ints(vec![stride, stride])),
            ("pads", Attr::Ints(vec![pad; 4])),
        ],
    );
    if act {
        activation(g, &y, cx.act, ckpt, "hidden_act")
    } else {
        Ok(y)
    }
}

fn shortcut(
    g: &mut GraphBuilder,
    cx: &Ctx,
    x: &str,
    prefix: &str,
    cin: usize,
    cout: usize,
    stride: usize,
) -> Result<String> {
    if cin != cout || stride != 1 {
        conv_bn(
            g,
            cx,
            x,
            &format!("{prefix}.shortcut"),
            cin,
            cout,
            1,
            stride,
            false,
        )
    } else {
        Ok(x.to_string())
    }
}

fn basic_layer(
    g: &mut GraphBuilder,
    cx: &Ctx,
    x: &str,
    prefix: &str,
    cin: usize,
    cout: usize,
    stride: usize,
) -> Result<String> {
    let residual = shortcut(g, cx, x, prefix, cin, cout, stride)?;
    let y = conv_bn(
        g,
        cx,
        x,
        &format!("{prefix}.layer.0"),
        cin,
        cout,
        3,
        stride,
        true,
    )?;
    let y = conv_bn(
        g,
        cx,
        &y,
        &format!("{prefix}.layer.1"),
        cout,
        cout,
        3,
        1,
        false,
    )?;
    let sum = g.add(&y, &residual);
    activation(g, &sum, cx.act, cx.ckpt, "hidden_act")
}

#[allow(clippy::too_many_arguments)]
fn bottleneck_layer(
    g: &mut GraphBuilder,
    cx: &Ctx,
    x: &str,
    prefix: &str,
    cin: usize,
    cout: usize,
    stride: usize,
    downsample_in_bottleneck: bool,
) -> Result<String> {
    let reduced = cout / 4;
    let residual = shortcut(g, cx, x, prefix, cin, cout, stride)?;
    let (s1, s2) = if downsample_in_bottleneck {
        (stride, 1)
    } else {
        (1, stride)
    };
    let y = conv_bn(
        g,
        cx,
        x,
        &format!("{prefix}.layer.0"),
        cin,
        reduced,
        1,
        s1,
        true,
    )?;
    let y = conv_bn(
        g,
        cx,
        &y,
        &format!("{prefix}.layer.1"),
        reduced,
        reduced,
        3,
        s2,
        true,
    )?;
    let y = conv_bn(
        g,
        cx,
        &y,
        &format!("{prefix}.layer.2"),
        reduced,
        cout,
        1,
        1,
        false,
    )?;
    let sum = g.add(&y, &residual);
    activation(g, &sum, cx.act, cx.ckpt, "hidden_act")
}
