//! A minimal builder for ONNX graphs made of standard operators.
//!
//! Every helper returns the name of the value it produced, so that architectures read like
//! the forward pass they reproduce.

use super::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, NodeProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use crate::tensor::Tensor;

/// The prefix every head weight's name carries (`head.linear`, `head.fc1_bn`, `head.fc2`,
/// ensemble members likewise): the precision rewrites keep those products fp32.
pub const HEAD_WEIGHT_PREFIX: &str = "head.";

/// A float initializer's values, from `raw_data` (as `weight` writes them) or `float_data`.
pub fn float_values(t: &TensorProto) -> Vec<f32> {
    match &t.raw_data {
        Some(raw) => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("four bytes")))
            .collect(),
        None => t.float_data.clone(),
    }
}

/// One dimension of a graph input or output.
#[derive(Debug, Clone)]
pub enum Dim {
    Fixed(usize),
    Named(&'static str),
}

/// The attribute values the operators here need.
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(&'static str),
}

#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    next_id: usize,
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.next_id += 1;
        format!("{hint}_{}", self.next_id)
    }

    pub fn input(&mut self, name: &str, elem: DataType, dims: &[Dim]) -> String {
        self.inputs.push(value_info(name, elem, dims));
        name.to_string()
    }

    /// Declares `value` as a graph output under `name` (an Identity renames it).
    pub fn output(&mut self, value: &str, name: &str, elem: DataType, dims: &[Dim]) {
        self.push_node("Identity", &[value], vec![name.to_string()], vec![]);
        self.outputs.push(value_info(name, elem, dims));
    }

    /// Adds a float initializer named after the checkpoint tensor it came from.
    pub fn weight(&mut self, name: &str, tensor: &Tensor) -> String {
        let name = if self
            .initializers
            .iter()
            .any(|t| t.name.as_deref() == Some(name))
        {
            self.fresh(name)
        } else {
            name.to_string()
        };
        let raw: Vec<u8> = tensor.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(TensorProto {
            name: Some(name.clone()),
            dims: tensor.shape.iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(raw),
            ..Default::default()
        });
        name
    }

    pub fn const_i64(&mut self, hint: &str, values: &[i64]) -> String {
        let name = self.fresh(hint);
        self.initializers.push(TensorProto {
            name: Some(name.clone()),
            dims: vec![values.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
        name
    }

    /// A 0-d int64 constant (what CumSum's axis must be).
    pub fn scalar_i64(&mut self, hint: &str, value: i64) -> String {
        let name = self.fresh(hint);
        self.initializers.push(TensorProto {
            name: Some(name.clone()),
            dims: vec![],
            data_type: Some(DataType::Int64 as i32),
            raw_data: Some(value.to_le_bytes().to_vec()),
            ..Default::default()
        });
        name
    }

    pub fn const_f32(&mut self, hint: &str, shape: &[usize], values: Vec<f32>) -> String {
        let name = self.fresh(hint);
        self.weight(&name, &Tensor::new(shape.to_vec(), values))
    }

    fn push_node(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: Vec<String>,
        attrs: Vec<(&str, Attr)>,
    ) {
        self.nodes.push(NodeProto {
            op_type: Some(op.to_string()),
            name: Some(format!("{op}_{}", self.nodes.len())),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs,
            attribute: attrs.into_iter().map(|(n, a)| attribute(n, a)).collect(),
            ..Default::default()
        });
    }

    /// A node with one output.
    pub fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.push_node(op, inputs, vec![out.clone()], attrs);
        out
    }

    /// A node with `n` outputs.
    pub fn op_n(
        &mut self,
        op: &str,
        inputs: &[&str],
        n: usize,
        attrs: Vec<(&str, Attr)>,
    ) -> Vec<String> {
        let outs: Vec<String> = (0..n).map(|_| self.fresh(&op.to_lowercase())).collect();
        self.push_node(op, inputs, outs.clone(), attrs);
        outs
    }

    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.op("Add", &[a, b], vec![])
    }

    pub fn mul(&mut self, a: &str, b: &str) -> String {
        self.op("Mul", &[a, b], vec![])
    }

    pub fn reshape(&mut self, x: &str, shape: &[i64]) -> String {
        let s = self.const_i64("shape", shape);
        self.op("Reshape", &[x, &s], vec![])
    }

    /// `x[start..end]` along `axis`.
    pub fn slice(&mut self, x: &str, axis: i64, start: i64, end: i64) -> String {
        let starts = self.const_i64("starts", &[start]);
        let ends = self.const_i64("ends", &[end]);
        let axes = self.const_i64("axes", &[axis]);
        self.op("Slice", &[x, &starts, &ends, &axes], vec![])
    }

    /// `x` at the constant `indices` along `axis`.
    pub fn gather(&mut self, x: &str, axis: i64, indices: &[i64]) -> String {
        let idx = self.const_i64("indices", indices);
        self.op("Gather", &[x, &idx], vec![("axis", Attr::Int(axis))])
    }

    pub fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.op("Transpose", &[x], vec![("perm", Attr::Ints(perm.to_vec()))])
    }

    /// `x · Wᵀ + b` for a PyTorch Linear weight `[out, in]`; the transpose is done here, once.
    pub fn linear(
        &mut self,
        x: &str,
        name: &str,
        weight: &Tensor,
        bias: Option<&Tensor>,
    ) -> String {
        let w = self.weight(&format!("{name}.weight_t"), &weight.transposed_2d());
        let y = self.op("MatMul", &[x, &w], vec![]);
        match bias {
            Some(b) => {
                let b = self.weight(&format!("{name}.bias"), b);
                self.add(&y, &b)
            }
            None => y,
        }
    }

    /// Copies another model's graph into this one under `prefix`: its inputs read the values
    /// given in `bind` (graph input name → value here); returns its outputs by name.
    pub fn splice(
        &mut self,
        graph: &GraphProto,
        prefix: &str,
        bind: &[(&str, &str)],
    ) -> std::collections::HashMap<String, String> {
        let rename = |name: &str| -> String {
            if name.is_empty() {
                return String::new();
            }
            match bind.iter().find(|(from, _)| *from == name) {
                Some((_, to)) => to.to_string(),
                None => format!("{prefix}/{name}"),
            }
        };
        for t in &graph.initializer {
            let mut t = t.clone();
            t.name = Some(rename(t.name()));
            self.initializers.push(t);
        }
        for n in &graph.node {
            let mut n = n.clone();
            n.name = Some(format!("{prefix}/{}", n.name()));
            n.input = n.input.iter().map(|i| rename(i)).collect();
            n.output = n.output.iter().map(|o| rename(o)).collect();
            self.nodes.push(n);
        }
        graph
            .output
            .iter()
            .map(|o| (o.name().to_string(), rename(o.name())))
            .collect()
    }

    pub fn finish(self, name: &str) -> GraphProto {
        GraphProto {
            name: Some(name.to_string()),
            node: self.nodes,
            initializer: self.initializers,
            input: self.inputs,
            output: self.outputs,
            ..Default::default()
        }
    }
}

pub(crate) fn attribute(name: &str, attr: Attr) -> AttributeProto {
    let mut a = AttributeProto {
        name: Some(name.to_string()),
        ..Default::default()
    };
    match attr {
        Attr::Int(v) => {
            a.r#type = Some(AttributeType::Int as i32);
            a.i = Some(v);
        }
        Attr::Ints(v) => {
            a.r#type = Some(AttributeType::Ints as i32);
            a.ints = v;
        }
        Attr::Float(v) => {
            a.r#type = Some(AttributeType::Float as i32);
            a.f = Some(v);
        }
        Attr::Str(v) => {
            a.r#type = Some(AttributeType::String as i32);
            a.s = Some(v.as_bytes().to_vec());
        }
    }
    a
}

/// A tensor stored as raw little-endian bytes.
pub fn raw_tensor(name: &str, dims: &[i64], data_type: DataType, raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: dims.to_vec(),
        data_type: Some(data_type as i32),
        raw_data: Some(raw),
        ..Default::default()
    }
}

/// A float input or output whose shape the graph does not declare.
pub fn float_of_any_shape(name: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: None,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn value_info(name: &str, elem: DataType, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Fixed(n) => tensor_shape_proto::dimension::Value::DimValue(*n as i64),
                Dim::Named(s) => tensor_shape_proto::dimension::Value::DimParam(s.to_string()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
