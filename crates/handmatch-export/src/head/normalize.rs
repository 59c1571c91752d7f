//! What every head shares: L2 normalisation (in the graph and on the CPU) and folding an
//! input standardisation into its first Linear.

use crate::onnx::graph::Attr;
use crate::onnx::GraphBuilder;
use crate::tensor::Tensor;

/// `x / max(‖x‖₂, 1e-12)` along the last axis, as `torch.nn.functional.normalize`.
pub fn l2_normalize(g: &mut GraphBuilder, x: &str) -> String {
    let norm = g.op(
        "ReduceL2",
        &[x],
        vec![("axes", Attr::Ints(vec![-1])), ("keepdims", Attr::Int(1))],
    );
    let eps = g.const_f32("eps", &[], vec![1e-12]);
    let safe = g.op("Max", &[&norm, &eps], vec![]);
    g.op("Div", &[x, &safe], vec![])
}

pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Each `dim`-long row of `x` divided by its norm (at least 1e-12), in place.
pub(super) fn l2_rows(x: &mut [f32], dim: usize) {
    for row in x.chunks_mut(dim) {
        let norm = dot(row, row).sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
}

/// Rewrites a Linear `[O, D]` weight and `[O]` bias fitted on `(x − mean) / std` to take
/// raw `x`: `W' = W / std`, `b' = b − W' · mean`, so the graph does not change shape.
pub(super) fn fold_standardisation(
    weight: &mut Tensor,
    bias: &mut Tensor,
    mean: &[f32],
    std: &[f32],
) {
    let d = weight.shape[1];
    assert!(
        mean.len() == d && std.len() == d,
        "one mean and std per feature"
    );
    for (o, row) in weight.data.chunks_mut(d).enumerate() {
        let mut shift = 0.0f64;
        for ((w, m), s) in row.iter_mut().zip(mean).zip(std) {
            *w /= s;
            shift += *w as f64 * *m as f64;
        }
        bias.data[o] -= shift as f32;
    }
}
