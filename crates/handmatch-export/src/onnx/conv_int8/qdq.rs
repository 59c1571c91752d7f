//! The QDQ form ONNX Runtime fuses into int8 kernels: every value a quantised convolution
//! or addition reads or writes passes through `QuantizeLinear` (u8, the calibrated range)
//! and `DequantizeLinear`; each convolution's weights are s8 per output channel and its bias
//! int32 at the product of the two scales. A value keeps its name: its producer now writes
//! `NAME/fp32` and the `DequantizeLinear` writes `NAME`, so graph outputs and values read
//! from outside (a hand artefact's local maps) stay where they were. A convolution followed
//! by its only reader, a Clip, is quantised after the Clip (ONNX Runtime folds such a Clip
//! into the quantised output's range).

use std::collections::HashMap;

use super::graph_index::GraphIndex;
use super::stats::uncalibrated;
use super::stats::TensorStats;
use super::weights::quantise_per_channel;
use crate::error::Result;
use crate::onnx::graph::{attribute, raw_tensor, Attr};
use crate::onnx::proto::{tensor_proto::DataType, GraphProto, NodeProto, TensorProto};

#[derive(Debug, Clone)]
pub struct QdqOptions {
    /// Largest quantised weight magnitude (1..=127).
    pub weight_max: i8,
    /// Nodes (by name) left fp32.
    pub keep_fp32: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct QdqReport {
    pub convs: usize,
    pub adds: usize,
    /// Convolutions and additions left fp32 by name.
    pub kept_fp32: usize,
    /// Values quantised to u8.
    pub activations: usize,
    pub fp32_weight_bytes: usize,
    pub int8_weight_bytes: usize,
}

/// The nodes `quantise` turns int8: convolutions with constant float weights of their own
/// (a weight or bias shared with another node stays fp32: its int8 copy is named after it)
/// and additions of two computed values, minus those kept fp32.
pub fn quantised_nodes(graph: &GraphProto, keep_fp32: &[String]) -> Vec<usize> {
    let index = GraphIndex::of(graph);
    graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| !keep_fp32.iter().any(|k| k == n.name()))
        .filter(|(_, n)| match n.op_type() {
            "Conv" => {
                n.input.len() >= 2
                    && index.float_weight(graph, &n.input[1]).is_some()
                    && n.input[1..].iter().all(|w| index.readers_of(w).len() == 1)
            }
            "Add" => {
                n.input.len() == 2 && n.input.iter().all(|i| !index.initializer.contains_key(i))
            }
            _ => false,
        })
        .map(|(i, _)| i)
        .collect()
}

/// The values that become u8, in graph order: whose ranges `quantise` needs.
pub fn quantised_values(graph: &GraphProto, keep_fp32: &[String]) -> Vec<String> {
    let index = GraphIndex::of(graph);
    let mut values = Vec::new();
    for i in quantised_nodes(graph, keep_fp32) {
        let n = &graph.node[i];
        let inputs = if n.op_type() == "Conv" {
            &n.input[..1]
        } else {
            &n.input[..]
        };
        values.extend(inputs.iter().cloned());
        values.push(written_value(graph, &index, i));
    }
    let mut seen = std::collections::HashSet::new();
    values.retain(|v| seen.insert(v.clone()));
    values
}

/// What a quantised node's output is quantised as: after its Clip when a Clip is its only
/// reader.
fn written_value(graph: &GraphProto, index: &GraphIndex, node: usize) -> String {
    let out = &graph.node[node].output[0];
    match index.readers_of(out) {
        [r] if graph.node[*r].op_type() == "Clip" && index.read_once(out) => {
            graph.node[*r].output[0].clone()
        }
        _ => out.clone(),
    }
}

/// Rewrites `graph` in place (its model's opset must be at least `MIN_OPSET`).
pub fn quantise(
    graph: &mut GraphProto,
    ranges: &HashMap<String, TensorStats>,
    opts: &QdqOptions,
) -> Result<QdqReport> {
    let index = GraphIndex::of(graph);
    let nodes = quantised_nodes(graph, &opts.keep_fp32);
    let mut rewrite = Rewrite::default();
    for value in quantised_values(graph, &opts.keep_fp32) {
        let stats = ranges.get(&value).ok_or_else(|| uncalibrated(&value))?;
        rewrite.activation(&value, stats.range());
    }
    let mut report = QdqReport {
        activations: rewrite.scales.len(),
        kept_fp32: count_kept(graph, &opts.keep_fp32),
        ..Default::default()
    };
    for &i in &nodes {
        match graph.node[i].op_type() {
            "Conv" => {
                report.convs += 1;
                let (fp32, int8) = rewrite.conv_weights(graph, &index, i, opts.weight_max);
                report.fp32_weight_bytes += fp32;
                report.int8_weight_bytes += int8;
            }
            _ => report.adds += 1,
        }
    }
    rewrite.apply(graph);
    Ok(report)
}

fn count_kept(graph: &GraphProto, keep_fp32: &[String]) -> usize {
    graph
        .node
        .iter()
        .filter(|n| {
            matches!(n.op_type(), "Conv" | "Add") && keep_fp32.iter().any(|k| k == n.name())
        })
        .count()
}

/// The nodes and weights the rewrite adds, gathered before the graph changes.
#[derive(Default)]
struct Rewrite {
    /// Value → (scale, zero point).
    scales: HashMap<String, (f32, u8)>,
    /// Q/DQ pairs to place right after each value's producer (or first, for graph inputs).
    pairs: HashMap<String, [NodeProto; 2]>,
    /// Weight and bias `DequantizeLinear`s, placed first.
    constants: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// Node index → its new inputs (weights and biases dequantised).
    inputs: HashMap<usize, Vec<String>>,
    /// Initializers no longer read.
    unused: Vec<String>,
}

impl Rewrite {
    fn activation(&mut self, value: &str, (min, max): (f32, f32)) {
        let (lo, hi) = (min.min(0.0), max.max(0.0));
        let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
        let zero = (-lo / scale).round().clamp(0.0, 255.0) as u8;
        self.scales.insert(value.to_string(), (scale, zero));
        let (s, z, q) = (
            format!("{value}/scale"),
            format!("{value}/zero"),
            format!("{value}/u8"),
        );
        self.initializers.push(raw_tensor(
            &s,
            &[],
            DataType::Float,
            scale.to_le_bytes().to_vec(),
        ));
        self.initializers
            .push(raw_tensor(&z, &[], DataType::Uint8, vec![zero]));
        let fp32 = format!("{value}/fp32");
        self.pairs.insert(
            value.to_string(),
            [
                node("QuantizeLinear", &[&fp32, &s, &z], &q, None),
                node("DequantizeLinear", &[&q, &s, &z], value, None),
            ],
        );
    }

    /// s8 weights and int32 bias of convolution `i`; returns (fp32, int8) weight bytes.
    fn conv_weights(
        &mut self,
        graph: &GraphProto,
        index: &GraphIndex,
        i: usize,
        weight_max: i8,
    ) -> (usize, usize) {
        let n = &graph.node[i];
        let w = index
            .float_weight(graph, &n.input[1])
            .expect("a quantised conv's weight");
        let out = w.dims[0] as usize;
        let (q, w_scales) =
            quantise_per_channel(&index.floats(graph, &n.input[1]).unwrap(), out, weight_max);
        let mut inputs = n.input.clone();
        inputs[1] = self.dequantised(
            &n.input[1],
            &w.dims,
            (DataType::Int8, q.iter().map(|&v| v as u8).collect()),
            &w_scales,
        );
        if let Some(bias) = n
            .input
            .get(2)
            .filter(|b| index.float_weight(graph, b).is_some())
        {
            let x_scale = self.scales[&n.input[0]].0;
            let scales: Vec<f32> = w_scales.iter().map(|s| s * x_scale).collect();
            let b = index.floats(graph, bias).unwrap();
            let q: Vec<u8> = b
                .iter()
                .zip(&scales)
                .flat_map(|(v, s)| ((v / s).round() as i32).to_le_bytes())
                .collect();
            inputs[2] = self.dequantised(bias, &[out as i64], (DataType::Int32, q), &scales);
        }
        for name in &n.input[1..] {
            if index.readers_of(name).len() == 1 {
                self.unused.push(name.clone());
            }
        }
        self.inputs.insert(i, inputs);
        (w.raw_data().len().max(w.float_data.len() * 4), q.len())
    }

    /// A constant `name` stored as `data` with per-channel `scales`, and the `DequantizeLinear`
    /// that makes it float again; returns the float value's name.
    fn dequantised(
        &mut self,
        name: &str,
        dims: &[i64],
        (data_type, raw): (DataType, Vec<u8>),
        scales: &[f32],
    ) -> String {
        let (q, s, z, out) = (
            format!("{name}/q"),
            format!("{name}/scale"),
            format!("{name}/zero"),
            format!("{name}/dq"),
        );
        let zero_bytes = if data_type == DataType::Int32 { 4 } else { 1 };
        self.initializers.push(raw_tensor(&q, dims, data_type, raw));
        let channels = [scales.len() as i64];
        let scale_bytes = scales.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers
            .push(raw_tensor(&s, &channels, DataType::Float, scale_bytes));
        self.initializers.push(raw_tensor(
            &z,
            &channels,
            data_type,
            vec![0; scales.len() * zero_bytes],
        ));
        self.constants.push(node(
            "DequantizeLinear",
            &[&q, &s, &z],
            &out,
            Some(("axis", Attr::Int(0))),
        ));
        out
    }

    fn apply(mut self, graph: &mut GraphProto) {
        let mut nodes = std::mem::take(&mut self.constants);
        let graph_inputs: Vec<String> = graph.input.iter().map(|v| v.name().to_string()).collect();
        // A graph input keeps its name as the input: its readers read the dequantised copy.
        let mut renamed = HashMap::new();
        for input in &graph_inputs {
            if let Some([mut q, mut dq]) = self.pairs.remove(input) {
                q.input[0] = input.clone();
                let copy = format!("{input}/dq");
                dq.output[0] = copy.clone();
                renamed.insert(input.clone(), copy);
                nodes.extend([q, dq]);
            }
        }
        for (i, mut n) in std::mem::take(&mut graph.node).into_iter().enumerate() {
            if let Some(inputs) = self.inputs.remove(&i) {
                n.input = inputs;
            }
            for input in n.input.iter_mut() {
                if let Some(copy) = renamed.get(input.as_str()) {
                    *input = copy.clone();
                }
            }
            let mut after = Vec::new();
            for out in n.output.iter_mut() {
                if let Some(pair) = self.pairs.remove(out.as_str()) {
                    *out = format!("{out}/fp32");
                    after.extend(pair);
                }
            }
            nodes.push(n);
            nodes.extend(after);
        }
        debug_assert!(
            self.pairs.is_empty(),
            "every quantised value has a producer"
        );
        graph.node = nodes;
        graph
            .initializer
            .retain(|t| !self.unused.iter().any(|u| u == t.name()));
        graph.initializer.extend(self.initializers);
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attr: Option<(&str, Attr)>) -> NodeProto {
    NodeProto {
        op_type: Some(op.to_string()),
        name: Some(format!("{output}/{op}")),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        attribute: attr.into_iter().map(|(n, a)| attribute(n, a)).collect(),
        ..Default::default()
    }
}
