//! Bias correction (Nagel et al. 2019). Rounding a convolution's weights to int8 shifts
//! each output channel by (W_q − W)·E[x] on average, E[x] the calibrated mean of each
//! input channel; subtracting that from the bias removes the shift. Zero padding is
//! ignored, so a convolution reading a graph input (an image, padded with zeros that its
//! mean does not describe) is left alone.

use std::collections::HashMap;

use super::graph_index::{conv_groups, GraphIndex};
use super::qdq::quantised_nodes;
use super::stats::uncalibrated;
use super::stats::TensorStats;
use super::weights::rounded_per_channel;
use crate::error::Result;
use crate::onnx::proto::GraphProto;

/// The convolutions (node indices) to correct: those `qdq` quantises, with a bias, reading a
/// value computed inside the graph.
pub fn corrected_convs(graph: &GraphProto, keep_fp32: &[String]) -> Vec<usize> {
    let index = GraphIndex::of(graph);
    let graph_inputs: Vec<&str> = graph.input.iter().map(|v| v.name()).collect();
    quantised_nodes(graph, keep_fp32)
        .into_iter()
        .filter(|&i| {
            let n = &graph.node[i];
            n.op_type() == "Conv"
                && n.input.len() == 3
                && !graph_inputs.contains(&n.input[0].as_str())
                && index.float_weight(graph, &n.input[2]).is_some()
        })
        .collect()
}

/// The values whose per-channel means `correct` needs: the convolutions' inputs.
pub fn conv_inputs(graph: &GraphProto, convs: &[usize]) -> Vec<String> {
    let mut names: Vec<String> = convs
        .iter()
        .map(|&i| graph.node[i].input[0].clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Corrects each of `convs`' biases in place for weights rounded to ±`weight_max`.
pub fn correct(
    graph: &mut GraphProto,
    convs: &[usize],
    stats: &HashMap<String, TensorStats>,
    weight_max: i8,
) -> Result<()> {
    let index = GraphIndex::of(graph);
    for &i in convs {
        let node = graph.node[i].clone();
        let mean = stats
            .get(&node.input[0])
            .ok_or_else(|| uncalibrated(&node.input[0]))?
            .channel_mean();
        let dims = index
            .float_weight(graph, &node.input[1])
            .expect("checked")
            .dims
            .clone();
        let w = index.floats(graph, &node.input[1]).expect("checked");
        let mut bias = index.floats(graph, &node.input[2]).expect("checked");
        let out = dims[0] as usize;
        let rounded = rounded_per_channel(&w, out, weight_max);
        let per_out = w.len() / out;
        let kernel = per_out / dims[1] as usize;
        let groups = conv_groups(&node) as usize;
        let per_group_out = out / groups;
        for (o, b) in bias.iter_mut().enumerate() {
            let first_input = (o / per_group_out) * dims[1] as usize;
            let shift: f64 = (0..per_out)
                .map(|k| {
                    let j = o * per_out + k;
                    let input = first_input + k / kernel;
                    (rounded[j] - w[j]) as f64 * mean[input] as f64
                })
                .sum();
            *b -= shift as f32;
        }
        index.set_floats(graph, &node.input[2], &bias);
    }
    Ok(())
}
