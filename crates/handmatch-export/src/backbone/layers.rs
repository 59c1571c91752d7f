//! Layers that several backbones build the same way.

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::onnx::graph::Attr;
use crate::onnx::GraphBuilder;

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
