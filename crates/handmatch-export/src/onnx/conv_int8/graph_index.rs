//! Who produces and who reads each value of a graph, and its float weights by name: what
//! every step of the rewrite looks up.

use std::collections::HashMap;

use crate::onnx::graph::float_values;
use crate::onnx::proto::{tensor_proto::DataType, GraphProto, NodeProto, TensorProto};

pub struct GraphIndex {
    /// Value name → index of the node that writes it.
    pub producer: HashMap<String, usize>,
    /// Value name → indices of the nodes that read it (a node reading it twice, twice).
    pub readers: HashMap<String, Vec<usize>>,
    /// Initializer name → its index.
    pub initializer: HashMap<String, usize>,
    /// Values the graph returns.
    pub outputs: Vec<String>,
}

impl GraphIndex {
    pub fn of(graph: &GraphProto) -> Self {
        let mut producer = HashMap::new();
        let mut readers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for o in &n.output {
                producer.insert(o.clone(), i);
            }
            for input in n.input.iter().filter(|s| !s.is_empty()) {
                readers.entry(input.clone()).or_default().push(i);
            }
        }
        let initializer = graph
            .initializer
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name().to_string(), i))
            .collect();
        let outputs = graph.output.iter().map(|v| v.name().to_string()).collect();
        Self {
            producer,
            readers,
            initializer,
            outputs,
        }
    }

    pub fn readers_of(&self, value: &str) -> &[usize] {
        self.readers.get(value).map_or(&[], Vec::as_slice)
    }

    /// `value` is read by exactly one node, and not returned by the graph.
    pub fn read_once(&self, value: &str) -> bool {
        self.readers_of(value).len() == 1 && !self.outputs.iter().any(|o| o == value)
    }

    /// A float initializer named `name`.
    pub fn float_weight<'g>(&self, graph: &'g GraphProto, name: &str) -> Option<&'g TensorProto> {
        let t = &graph.initializer[*self.initializer.get(name)?];
        (t.data_type() == DataType::Float as i32).then_some(t)
    }

    pub fn floats(&self, graph: &GraphProto, name: &str) -> Option<Vec<f32>> {
        self.float_weight(graph, name).map(float_values)
    }

    /// Replaces float initializer `name`'s values (same shape).
    pub fn set_floats(&self, graph: &mut GraphProto, name: &str, values: &[f32]) {
        let t = &mut graph.initializer[self.initializer[name]];
        t.float_data.clear();
        t.raw_data = Some(values.iter().flat_map(|v| v.to_le_bytes()).collect());
    }
}

pub fn int_attribute(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name() == name)?.i
}

/// A convolution's `group`, 1 when absent.
pub fn conv_groups(node: &NodeProto) -> i64 {
    int_attribute(node, "group").unwrap_or(1)
}
