//! Dynamic int8 quantisation of a finished graph, written by us rather than by ONNX
//! Runtime's Python tooling: every `MatMul` whose right operand is a constant 2-D weight
//! becomes
//!
//! ```text
//! DynamicQuantizeLinear(x) → (x_q u8, x_scale, x_zero)
//! MatMulInteger(x_q, W_q i8, x_zero) → Cast(float) → Mul(x_scale · w_scale[n])
//! ```
//!
//! the pattern ONNX Runtime's CPU provider fuses into one `DynamicQuantizeMatMul` (checked
//! by the tests through the optimised graph). LayerNorm, softmax, GELU and the attention
//! products of two activations stay fp32; so do the convolutions and the spliced hand
//! landmark network, whose keypoints alignment relies on. Convolutions need calibrated
//! static quantisation instead (`onnx::conv_int8`; the trainer's `quantize-hand` writes the
//! hand network that way, and an artefact computes its features with it while alignment
//! keeps fp32).
//!
//! The head's products stay fp32 too. A head reads raw features: the standardisation it
//! was fitted with is folded into its first product, so that product's input mixes
//! features of very different scales and offsets (landmark coordinates, pooled trunk
//! activations, local maps), and one u8 scale for the whole row
//! (`DynamicQuantizeLinear` is per tensor) wipes out the small ones. Measured on real
//! hands, the recipe's LDA ensemble quantised this way fell to a cosine of 0.51 against
//! fp32. A head is a few hundred thousand multiply-adds per image, well under 1 % of a
//! DINOv2 forward, so keeping it fp32 costs nothing measurable.

use std::collections::HashMap;

use super::proto::{tensor_proto::DataType, GraphProto, NodeProto, TensorProto};
use crate::onnx::conv_int8::weights::{quantise_value, symmetric_scale};
use crate::onnx::graph::{float_values, raw_tensor, Attr, HEAD_WEIGHT_PREFIX};

/// Weights are symmetric per output column, in ±63 by default: on CPUs without VNNI the
/// u8 × s8 products are summed in pairs into 16 bits (`vpmaddubsw`), which saturates for
/// 255 · 127 · 2 but never for 255 · 63 · 2. An artefact is exported once and served on
/// either kind of CPU, so it takes the range that is exact on both.
pub const DEFAULT_WEIGHT_MAX: i8 = 63;
/// Products smaller than this stay fp32: quantising them saves nothing measurable.
const MIN_ELEMENTS: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub struct QuantizeOptions {
    /// Largest quantised weight magnitude (1..=127).
    pub weight_max: i8,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        Self {
            weight_max: DEFAULT_WEIGHT_MAX,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct QuantizeReport {
    /// The quantised weights' range, ±this.
    pub weight_max: i8,
    /// MatMuls turned into int8 products.
    pub matmuls: usize,
    /// The head's weight products, left fp32 (see the module's notes).
    pub head_matmuls_kept: usize,
    /// Weight bytes before and after (only the quantised weights).
    pub fp32_bytes: usize,
    pub int8_bytes: usize,
}

/// Rewrites `graph` in place; returns what it changed.
pub fn quantize_int8(graph: &mut GraphProto, opts: QuantizeOptions) -> QuantizeReport {
    assert!(opts.weight_max >= 1, "weight_max must be positive");
    let weights: HashMap<String, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name().to_string(), i))
        .collect();
    let uses = use_counts(graph);
    let mut rewriter = Rewriter::default();
    rewriter.report.weight_max = opts.weight_max;
    let mut nodes = Vec::with_capacity(graph.node.len());
    let mut dropped = Vec::new();
    for node in std::mem::take(&mut graph.node) {
        let weight = quantizable_weight(&node, &graph.initializer, &weights);
        let Some(w) = weight else {
            nodes.push(node);
            continue;
        };
        if graph.initializer[w].name().starts_with(HEAD_WEIGHT_PREFIX) {
            rewriter.report.head_matmuls_kept += 1;
            nodes.push(node);
            continue;
        }
        let t = &graph.initializer[w];
        let (q, scales) = quantize_columns(t, opts.weight_max);
        rewriter.report.fp32_bytes += t.raw_data().len();
        rewriter.report.int8_bytes += q.len();
        rewriter.report.matmuls += 1;
        let shape = t.dims.clone();
        if uses.get(t.name()) == Some(&1) {
            dropped.push(w);
        }
        nodes.extend(rewriter.int8_matmul(&node, &shape, q, scales));
    }
    graph.node = nodes;
    dropped.sort_unstable();
    for w in dropped.into_iter().rev() {
        graph.initializer.remove(w);
    }
    graph.initializer.extend(rewriter.initializers);
    rewriter.report
}

/// How many nodes read each value.
fn use_counts(graph: &GraphProto) -> HashMap<String, usize> {
    let mut uses = HashMap::new();
    for n in &graph.node {
        for i in &n.input {
            *uses.entry(i.clone()).or_insert(0) += 1;
        }
    }
    uses
}

/// The index of `node`'s constant float `[K, N]` weight, if it is a MatMul worth
/// quantising.
fn quantizable_weight(
    node: &NodeProto,
    initializers: &[TensorProto],
    weights: &HashMap<String, usize>,
) -> Option<usize> {
    if node.op_type() != "MatMul" || node.input.len() != 2 {
        return None;
    }
    let &w = weights.get(&node.input[1])?;
    let t = &initializers[w];
    let float = t.data_type() == DataType::Float as i32 && t.raw_data.is_some();
    let elements: i64 = t.dims.iter().product();
    (float && t.dims.len() == 2 && elements as usize >= MIN_ELEMENTS).then_some(w)
}

/// `W[K, N]` → (int8 `W_q`, per-column scales `[N]`), symmetric: `W ≈ W_q · scale[n]`.
fn quantize_columns(t: &TensorProto, weight_max: i8) -> (Vec<i8>, Vec<f32>) {
    let (k, n) = (t.dims[0] as usize, t.dims[1] as usize);
    let w = float_values(t);
    let scales: Vec<f32> = (0..n)
        .map(|c| {
            let amax = (0..k).map(|r| w[r * n + c].abs()).fold(0.0f32, f32::max);
            symmetric_scale(amax, weight_max)
        })
        .collect();
    let q = w
        .iter()
        .enumerate()
        .map(|(i, v)| quantise_value(*v, scales[i % n], weight_max))
        .collect();
    (q, scales)
}

/// Emits the int8 nodes; one `DynamicQuantizeLinear` per activation, shared by every
/// product that reads it.
#[derive(Default)]
struct Rewriter {
    quantized_inputs: HashMap<String, [String; 3]>,
    initializers: Vec<TensorProto>,
    report: QuantizeReport,
    next: usize,
}

impl Rewriter {
    fn name(&mut self, base: &str, what: &str) -> String {
        self.next += 1;
        format!("{base}/int8/{what}_{}", self.next)
    }

    fn int8_matmul(
        &mut self,
        node: &NodeProto,
        shape: &[i64],
        q: Vec<i8>,
        scales: Vec<f32>,
    ) -> Vec<NodeProto> {
        let base = node.name().to_string();
        let mut out = Vec::with_capacity(5);
        let x = &node.input[0];
        let [x_q, x_scale, x_zero] = match self.quantized_inputs.get(x) {
            Some(q) => q.clone(),
            None => {
                let names = [
                    self.name(&base, "x_q"),
                    self.name(&base, "x_scale"),
                    self.name(&base, "x_zero"),
                ];
                out.push(node_of("DynamicQuantizeLinear", &base, &[x], &names, None));
                self.quantized_inputs.insert(x.clone(), names.clone());
                names
            }
        };
        let w_q = self.name(&base, "w_q");
        self.initializers.push(raw_tensor(
            &w_q,
            shape,
            DataType::Int8,
            q.iter().map(|v| *v as u8).collect(),
        ));
        let w_scale = self.name(&base, "w_scale");
        self.initializers.push(raw_tensor(
            &w_scale,
            &[scales.len() as i64],
            DataType::Float,
            scales.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
        let (y_i, y_f, scale) = (
            self.name(&base, "y_i32"),
            self.name(&base, "y_f32"),
            self.name(&base, "scale"),
        );
        out.push(node_of(
            "MatMulInteger",
            &base,
            &[&x_q, &w_q, &x_zero],
            std::slice::from_ref(&y_i),
            None,
        ));
        let to_float = Some(("to", Attr::Int(DataType::Float as i64)));
        out.push(node_of(
            "Cast",
            &base,
            &[&y_i],
            std::slice::from_ref(&y_f),
            to_float,
        ));
        out.push(node_of(
            "Mul",
            &base,
            &[&x_scale, &w_scale],
            std::slice::from_ref(&scale),
            None,
        ));
        out.push(node_of("Mul", &base, &[&y_f, &scale], &node.output, None));
        out
    }
}

fn node_of(
    op: &str,
    base: &str,
    inputs: &[&String],
    outputs: &[String],
    attr: Option<(&str, Attr)>,
) -> NodeProto {
    NodeProto {
        op_type: Some(op.to_string()),
        name: Some(format!("{base}/int8/{op}/{}", outputs[0])),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.to_vec(),
        attribute: attr
            .into_iter()
            .map(|(n, a)| super::graph::attribute(n, a))
            .collect(),
        ..Default::default()
    }
}
