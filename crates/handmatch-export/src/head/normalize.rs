//! L2 normalisation, the last step of every head: in the graph and on the CPU.

use crate::onnx::graph::Attr;
use crate::onnx::GraphBuilder;

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
