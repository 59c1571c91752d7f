//! A graph cut down to what some of its outputs need.
//!
//! ONNX Runtime runs every node of a graph on every run, whichever outputs are asked for:
//! aligning four rotations of a photo through the whole artefact also ran its embedding
//! branch four times (the recipe's artefact: 56 ms of a 76 ms photo, measured in
//! docs/performance.md). Sessions of hand models therefore align through the graph cut to
//! `presence` and `landmarks`, and embed through the graph cut to the embedding (or
//! features): when the features come from another version of the hand network (an int8
//! one), the original that alignment uses is then not run again.

use std::collections::{HashMap, HashSet};

use prost::Message;

use crate::onnx_proto::{attribute_proto::AttributeType, ModelProto, NodeProto};

/// `model` (an encoded ONNX model) with only the nodes, initialisers and inputs that
/// `outputs` depend on, encoded again; `None` when the graph lacks one of `outputs` or
/// holds a node with a subgraph (whose outer-scope reads this does not follow).
pub fn graph_for_outputs(model: &[u8], outputs: &[&str]) -> Result<Option<Vec<u8>>, DecodeError> {
    let mut model = ModelProto::decode(model).map_err(DecodeError)?;
    let Some(graph) = model.graph.as_mut() else {
        return Ok(None);
    };
    if !outputs
        .iter()
        .all(|o| graph.output.iter().any(|v| v.name() == *o))
    {
        return Ok(None);
    }
    if graph.node.iter().any(|n| {
        n.attribute
            .iter()
            .any(|a| matches!(a.r#type(), AttributeType::Graph | AttributeType::Graphs))
    }) {
        return Ok(None);
    }
    let needed = needed_tensors(&graph.node, outputs);
    graph
        .node
        .retain(|n| n.output.iter().any(|o| needed.contains(o.as_str())));
    graph.initializer.retain(|t| needed.contains(t.name()));
    graph.input.retain(|v| needed.contains(v.name()));
    graph.output.retain(|v| outputs.contains(&v.name()));
    graph.value_info.retain(|v| needed.contains(v.name()));
    Ok(Some(model.encode_to_vec()))
}

/// Every tensor `outputs` are computed from, walking producers back from them.
fn needed_tensors(nodes: &[NodeProto], outputs: &[&str]) -> HashSet<String> {
    let producer: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut needed: HashSet<String> = HashSet::new();
    let mut stack: Vec<&str> = outputs.to_vec();
    while let Some(tensor) = stack.pop() {
        if !needed.insert(tensor.to_string()) {
            continue;
        }
        if let Some(&i) = producer.get(tensor) {
            stack.extend(
                nodes[i]
                    .input
                    .iter()
                    .map(String::as_str)
                    .filter(|s| !s.is_empty()),
            );
        }
    }
    needed
}

/// The artefact could not be read as an ONNX model.
#[derive(Debug, thiserror::Error)]
#[error("not an ONNX model: {0}")]
pub struct DecodeError(prost::DecodeError);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx_proto::{AttributeProto, GraphProto, TensorProto, ValueInfoProto};

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    fn value(name: &str) -> ValueInfoProto {
        ValueInfoProto {
            name: Some(name.into()),
            ..Default::default()
        }
    }

    fn tensor(name: &str) -> TensorProto {
        TensorProto {
            name: Some(name.into()),
            ..Default::default()
        }
    }

    /// image → trunk → {landmarks, presence}; trunk → heavy(w_head) → embedding.
    fn artefact() -> Vec<u8> {
        ModelProto {
            graph: Some(GraphProto {
                node: vec![
                    node("Conv", &["image", "w_trunk"], "trunk"),
                    node("Gemm", &["trunk", "w_head"], "heavy"),
                    node("Relu", &["heavy"], "embedding"),
                    node("Sigmoid", &["trunk"], "presence"),
                    node("Gemm", &["trunk", "w_points", ""], "landmarks"),
                ],
                initializer: vec![tensor("w_trunk"), tensor("w_head"), tensor("w_points")],
                input: vec![value("image")],
                output: vec![value("embedding"), value("presence"), value("landmarks")],
                value_info: vec![value("trunk"), value("heavy")],
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn keeps_only_what_the_detection_outputs_read() {
        let bytes = graph_for_outputs(&artefact(), &["presence", "landmarks"])
            .unwrap()
            .expect("both outputs exist");
        let graph = ModelProto::decode(bytes.as_slice()).unwrap().graph.unwrap();
        let ops: Vec<_> = graph.node.iter().map(|n| n.output[0].as_str()).collect();
        assert_eq!(ops, ["trunk", "presence", "landmarks"]);
        let weights: Vec<_> = graph.initializer.iter().map(|t| t.name()).collect();
        assert_eq!(weights, ["w_trunk", "w_points"]);
        let outputs: Vec<_> = graph.output.iter().map(|v| v.name()).collect();
        assert_eq!(outputs, ["presence", "landmarks"]);
        assert_eq!(graph.input.len(), 1);
        assert_eq!(
            graph.value_info.len(),
            1,
            "the embedding branch's shapes go too"
        );
    }

    #[test]
    fn declines_graphs_it_cannot_cut() {
        assert!(graph_for_outputs(&artefact(), &["presence", "keypoints"])
            .unwrap()
            .is_none());
        let mut model = ModelProto::decode(artefact().as_slice()).unwrap();
        let graph = model.graph.as_mut().unwrap();
        graph.node[1].attribute.push(AttributeProto {
            name: Some("then_branch".into()),
            r#type: Some(AttributeType::Graph as i32),
            ..Default::default()
        });
        assert!(graph_for_outputs(&model.encode_to_vec(), &["presence"])
            .unwrap()
            .is_none());
        assert!(graph_for_outputs(b"not onnx", &["presence"]).is_err());
    }
}
