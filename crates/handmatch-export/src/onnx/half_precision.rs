//! fp16 artefacts, for GPU providers: the backbone's weights and activations become fp16,
//! the head and everything after it stay fp32.
//!
//! The image enters as uint8 and its first `Cast` now yields fp16, so the backbone runs in
//! fp16 from the first node on; where an fp32 node reads an fp16 value (the head's first
//! product reads the backbone's features), one `Cast` back is inserted. The head stays fp32
//! for the reason int8 keeps it there: it reads raw features whose standardisation is folded
//! into its first product, and its L2 normalisation squares and sums them, which can leave
//! fp16's range (65,504); it costs well under 1 % of a forward.
//!
//! Only operators whose every float input may be fp16 and whose outputs take the type of
//! their first input are converted; a graph with any other operator on a float value is
//! refused, naming it, rather than converted wrongly (`Resize` scales, for instance, must
//! stay fp32). The hand landmark artefacts use such operators and stay fp32.
//!
//! ONNX Runtime's CPU provider runs such a graph too, by casting the nodes it has no fp16
//! kernel for back to fp32 and removing the cast pairs: no faster than fp32, and it rounds
//! only the weights to fp16, not the activations. That lets the quality gate and the tests
//! check the conversion on a machine without a GPU, but the activations' fp16 range is
//! only exercised where the gate runs on a GPU (the export's `--device`).

use std::collections::{HashMap, HashSet};

use half::f16;

use super::proto::{tensor_proto::DataType, GraphProto, NodeProto, TensorProto};
use crate::error::{ExportError, Result};
use crate::onnx::graph::{attribute, float_values, Attr, HEAD_WEIGHT_PREFIX};

/// Operators that may run in fp16 here: each output's type is its first input's type
/// (`Shape` reads any type and gives int64).
const FP16_OPS: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Concat",
    "Conv",
    "Div",
    "Erf",
    "Expand",
    "Flatten",
    "Gather",
    "GlobalAveragePool",
    "Identity",
    "LayerNormalization",
    "MatMul",
    "Max",
    "MaxPool",
    "Min",
    "Mul",
    "Pow",
    "ReduceL2",
    "ReduceMean",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct HalfReport {
    /// Nodes that now compute in fp16.
    pub fp16_nodes: usize,
    /// Nodes on float values left in fp32 (the head and what follows it).
    pub fp32_nodes: usize,
    /// Weights converted, and their bytes before and after.
    pub weights: usize,
    pub fp32_bytes: usize,
    pub fp16_bytes: usize,
}

/// Rewrites `graph` in place; refuses (unchanged) a graph it cannot convert faithfully.
pub fn convert_fp16(graph: &mut GraphProto) -> Result<HalfReport> {
    let plan = Plan::of(graph)?;
    let weights = convert_weights(graph, &plan)?;
    let mut rewriter = Rewriter::new(&plan, graph);
    for (i, node) in std::mem::take(&mut graph.node).into_iter().enumerate() {
        rewriter.push(i, node);
    }
    graph.node = rewriter.nodes;
    graph.initializer.extend(weights.copies);
    // Intermediate types may have changed; ONNX Runtime infers them again.
    graph.value_info.clear();
    Ok(HalfReport {
        fp16_nodes: plan.fp16_nodes.len(),
        fp32_nodes: plan.fp32_nodes,
        weights: weights.converted,
        fp32_bytes: weights.fp32_bytes,
        fp16_bytes: weights.fp16_bytes,
    })
}

/// Which values are float and which nodes run in fp16, decided before anything changes.
struct Plan {
    float_values: HashSet<String>,
    /// Indices of the nodes that run in fp16.
    fp16_nodes: HashSet<usize>,
    fp32_nodes: usize,
    /// Float values that fp16 nodes produce.
    fp16_values: HashSet<String>,
    /// Float initializers read by fp16 nodes, by fp32 nodes.
    read_in_fp16: HashSet<String>,
    read_in_fp32: HashSet<String>,
    graph_inputs: HashSet<String>,
    graph_outputs: HashSet<String>,
}

impl Plan {
    fn of(graph: &GraphProto) -> Result<Self> {
        let float_weights: HashSet<String> = graph
            .initializer
            .iter()
            .filter(|t| t.data_type() == DataType::Float as i32)
            .map(|t| t.name().to_string())
            .collect();
        let graph_inputs: HashSet<String> = graph
            .input
            .iter()
            .filter(|v| is_float_value(v))
            .map(|v| v.name().to_string())
            .collect();
        let mut plan = Plan {
            float_values: float_weights.union(&graph_inputs).cloned().collect(),
            fp16_nodes: HashSet::new(),
            fp32_nodes: 0,
            fp16_values: HashSet::new(),
            read_in_fp16: HashSet::new(),
            read_in_fp32: HashSet::new(),
            graph_inputs,
            graph_outputs: graph.output.iter().map(|v| v.name().to_string()).collect(),
        };
        let mut fp32_values: HashSet<String> = HashSet::new();
        for (i, node) in graph.node.iter().enumerate() {
            let float_in: Vec<&String> = node
                .input
                .iter()
                .filter(|v| plan.float_values.contains(*v))
                .collect();
            let produces_float = produces_float(node, &plan.float_values);
            if float_in.is_empty() && !produces_float {
                continue;
            }
            let fp32 = float_in
                .iter()
                .any(|v| v.starts_with(HEAD_WEIGHT_PREFIX) || fp32_values.contains(*v));
            if !fp32 {
                convertible(node)?;
            }
            let outputs: &[String] = if produces_float { &node.output } else { &[] };
            let readers = if fp32 {
                plan.fp32_nodes += 1;
                fp32_values.extend(outputs.iter().cloned());
                &mut plan.read_in_fp32
            } else {
                plan.fp16_nodes.insert(i);
                plan.fp16_values.extend(outputs.iter().cloned());
                &mut plan.read_in_fp16
            };
            readers.extend(
                float_in
                    .iter()
                    .filter(|v| float_weights.contains(**v))
                    .map(|v| v.to_string()),
            );
            plan.float_values.extend(outputs.iter().cloned());
        }
        Ok(plan)
    }
}

/// `Ok` if `node` may run in fp16, else the error naming it.
fn convertible(node: &NodeProto) -> Result<()> {
    if FP16_OPS.contains(&node.op_type()) || node.op_type() == "Cast" {
        return Ok(());
    }
    Err(ExportError::Argument {
        field: "precision".into(),
        reason: format!(
            "fp16: operator {} (node {}) is not converted to fp16; this artefact stays fp32",
            node.op_type(),
            node.name()
        ),
    })
}

fn is_float_value(v: &super::proto::ValueInfoProto) -> bool {
    use super::proto::type_proto::Value;
    matches!(
        v.r#type.as_ref().and_then(|t| t.value.as_ref()),
        Some(Value::TensorType(t)) if t.elem_type() == DataType::Float as i32
    )
}

/// Whether `node`'s outputs are float: a `Cast` says so itself, `Shape` never, every other
/// operator here takes its first input's type.
fn produces_float(node: &NodeProto, float_values: &HashSet<String>) -> bool {
    match node.op_type() {
        "Cast" => return cast_target(node) == Some(DataType::Float as i64),
        "Shape" => return false,
        _ => {}
    }
    node.input.first().is_some_and(|x| float_values.contains(x))
}

fn cast_target(node: &NodeProto) -> Option<i64> {
    node.attribute
        .iter()
        .find(|a| a.name() == "to")
        .and_then(|a| a.i)
}

#[derive(Default)]
struct ConvertedWeights {
    converted: usize,
    fp32_bytes: usize,
    fp16_bytes: usize,
    /// fp16 copies of weights that fp32 nodes read as well (see `fp16_name`).
    copies: Vec<TensorProto>,
}

/// Converts the weights that only fp16 nodes read in place, copies those both kinds read.
fn convert_weights(graph: &mut GraphProto, plan: &Plan) -> Result<ConvertedWeights> {
    let mut out = ConvertedWeights::default();
    for t in &mut graph.initializer {
        if !plan.read_in_fp16.contains(t.name()) {
            continue;
        }
        let half = to_fp16_tensor(t)?;
        out.converted += 1;
        out.fp32_bytes += 4 * half.raw_data().len() / 2;
        out.fp16_bytes += half.raw_data().len();
        if plan.read_in_fp32.contains(t.name()) {
            out.copies.push(TensorProto {
                name: Some(fp16_name(t.name())),
                ..half
            });
        } else {
            *t = half;
        }
    }
    Ok(out)
}

/// The name of `value`'s fp16 twin: a shared weight's copy, a graph input's cast, or what
/// an fp16 node writes before the cast to a graph output.
fn fp16_name(value: &str) -> String {
    format!("{value}/fp16")
}

/// `t` (float) as fp16; refuses a value outside fp16's range rather than making it ∞.
fn to_fp16_tensor(t: &TensorProto) -> Result<TensorProto> {
    let values = float_values(t);
    let mut raw = Vec::with_capacity(values.len() * 2);
    for v in values {
        let h = f16::from_f32(v);
        if h.is_infinite() && v.is_finite() {
            return Err(ExportError::Argument {
                field: "precision".into(),
                reason: format!(
                    "fp16: weight {} holds {v}, outside fp16's range (±65504)",
                    t.name()
                ),
            });
        }
        raw.extend_from_slice(&h.to_le_bytes());
    }
    Ok(TensorProto {
        name: t.name.clone(),
        dims: t.dims.clone(),
        data_type: Some(DataType::Float16 as i32),
        raw_data: Some(raw),
        ..Default::default()
    })
}

/// Re-emits the nodes with the casts the plan needs between the two precisions.
struct Rewriter<'a> {
    plan: &'a Plan,
    nodes: Vec<NodeProto>,
    /// Value → the name fp16 nodes read it under (graph inputs cast to fp16, fp16 copies of
    /// shared weights, graph outputs an fp16 node produces).
    as_fp16: HashMap<String, String>,
    /// fp16 value → its fp32 cast, made once for all fp32 readers.
    as_fp32: HashMap<String, String>,
}

impl<'a> Rewriter<'a> {
    fn new(plan: &'a Plan, graph: &GraphProto) -> Self {
        let mut as_fp16: HashMap<String, String> = plan
            .read_in_fp16
            .intersection(&plan.read_in_fp32)
            .map(|w| (w.clone(), fp16_name(w)))
            .collect();
        let mut nodes = Vec::new();
        for input in &graph.input {
            let name = input.name();
            if plan.graph_inputs.contains(name) {
                let cast = fp16_name(name);
                nodes.push(cast_node(name, &cast, DataType::Float16));
                as_fp16.insert(name.to_string(), cast);
            }
        }
        Self {
            plan,
            nodes,
            as_fp16,
            as_fp32: HashMap::new(),
        }
    }

    /// Emits the graph's node number `index`.
    fn push(&mut self, index: usize, mut node: NodeProto) {
        if self.plan.fp16_nodes.contains(&index) {
            self.push_fp16(node);
            return;
        }
        for input in &mut node.input {
            if self.plan.fp16_values.contains(input) && !self.as_fp16.contains_key(input) {
                *input = self.fp32_view(input);
            }
        }
        self.nodes.push(node);
    }

    fn push_fp16(&mut self, mut node: NodeProto) {
        for input in &mut node.input {
            if let Some(renamed) = self.as_fp16.get(input) {
                *input = renamed.clone();
            }
        }
        if node.op_type() == "Cast" && cast_target(&node) == Some(DataType::Float as i64) {
            node.attribute.retain(|a| a.name() != "to");
            node.attribute
                .push(attribute("to", Attr::Int(DataType::Float16 as i64)));
        }
        // A graph output keeps its declared fp32 type: the fp16 node writes a private name
        // and a cast gives the output its own.
        let mut casts = Vec::new();
        for output in &mut node.output {
            let is_float = self.plan.float_values.contains(output.as_str());
            if is_float && self.plan.graph_outputs.contains(output.as_str()) {
                let private = fp16_name(output);
                casts.push(cast_node(&private, output, DataType::Float));
                self.as_fp16.insert(output.clone(), private.clone());
                *output = private;
            }
        }
        self.nodes.push(node);
        self.nodes.extend(casts);
    }

    /// The fp32 cast of fp16 `value`, emitted before its first fp32 reader.
    fn fp32_view(&mut self, value: &str) -> String {
        if let Some(cast) = self.as_fp32.get(value) {
            return cast.clone();
        }
        let cast = format!("{value}/fp32");
        self.nodes.push(cast_node(value, &cast, DataType::Float));
        self.as_fp32.insert(value.to_string(), cast.clone());
        cast
    }
}

fn cast_node(from: &str, to: &str, data_type: DataType) -> NodeProto {
    NodeProto {
        op_type: Some("Cast".into()),
        name: Some(format!("fp16/Cast/{to}")),
        input: vec![from.to_string()],
        output: vec![to.to_string()],
        attribute: vec![attribute("to", Attr::Int(data_type as i64))],
        ..Default::default()
    }
}
