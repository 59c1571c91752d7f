//! Bounded activation equalisation. Per-tensor u8 activations lose the channels whose range
//! is far below the tensor's largest. Across each Conv → Clip(0, hi) → Conv pair, channel c
//! of the middle value is divided by s_c = range_c^α / w_c^(1 − α) (range_c its calibrated
//! maximum, w_c the largest weight that reads it) and the reader's weights multiplied by
//! s_c: the same function, with the ranges brought together (SmoothQuant's balance).
//!
//! A Clip bound cannot be rescaled per channel without turning the fused Clip into two
//! operators, so the bound stays and binds as before: a channel that reached `hi` in
//! calibration keeps s_c = 1, and any other is enlarged only so far that its calibrated
//! maximum, times `MARGIN`, still stays under `hi`.

use std::collections::HashMap;

use super::graph_index::{conv_groups, GraphIndex};
use super::stats::uncalibrated;
use super::stats::TensorStats;
use crate::error::Result;
use crate::onnx::proto::GraphProto;

/// How far each channel's range is moved toward its weights' (SmoothQuant's α).
const ALPHA: f32 = 0.5;
/// An enlarged channel's calibrated maximum stays below the Clip bound by this factor.
const MARGIN: f32 = 1.5;

/// Conv (`producer`) → Clip(0, `bound`) → Conv (`reader`), by node index.
#[derive(Debug, Clone, PartialEq)]
pub struct Relu6Pair {
    pub producer: usize,
    pub clip: usize,
    pub reader: usize,
    pub bound: f32,
}

/// The pairs whose middle values may be rescaled per channel: each value and weight read
/// by its pair alone, none of them a graph output or in `keep_values` (values read from
/// outside the graph, such as a hand artefact's local maps, must keep their meaning).
pub fn relu6_pairs(graph: &GraphProto, keep_values: &[&str]) -> Vec<Relu6Pair> {
    let index = GraphIndex::of(graph);
    graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type() == "Clip")
        .filter_map(|(clip, _)| pair_at(graph, &index, clip, keep_values))
        .collect()
}

fn pair_at(
    graph: &GraphProto,
    index: &GraphIndex,
    clip: usize,
    keep_values: &[&str],
) -> Option<Relu6Pair> {
    let c = &graph.node[clip];
    let (pre, post) = (c.input.first()?, c.output.first()?);
    let producer = *index.producer.get(pre)?;
    let &[reader] = index.readers_of(post) else {
        return None;
    };
    let (a, b) = (&graph.node[producer], &graph.node[reader]);
    if a.op_type() != "Conv" || b.op_type() != "Conv" || a.input.len() != 3 || b.input.len() < 2 {
        return None;
    }
    let lower = index.floats(graph, c.input.get(1)?)?;
    let bound = *index.floats(graph, c.input.get(2)?)?.first()?;
    let private = [pre, post]
        .iter()
        .all(|v| index.read_once(v) && !keep_values.contains(&v.as_str()))
        && [&a.input[1], &a.input[2], &b.input[1]]
            .iter()
            .all(|w| index.readers_of(w).len() == 1 && index.float_weight(graph, w).is_some());
    let readable = b.input.first() == Some(post) && reads_channelwise(graph, index, reader);
    (private && readable && lower == [0.0] && bound > 0.0).then_some(Relu6Pair {
        producer,
        clip,
        reader,
        bound,
    })
}

/// A plain convolution, or a depthwise one (one filter per channel), whose input channel c
/// is read by weights that can be scaled alone.
fn reads_channelwise(graph: &GraphProto, index: &GraphIndex, reader: usize) -> bool {
    let b = &graph.node[reader];
    let Some(w) = index.float_weight(graph, &b.input[1]) else {
        return false;
    };
    match conv_groups(b) {
        1 => w.dims.len() == 4,
        g => w.dims.len() == 4 && w.dims[0] == g && w.dims[1] == 1,
    }
}

/// The values whose per-channel maxima `equalise` needs: each pair's Conv output.
pub fn pair_inputs(graph: &GraphProto, pairs: &[Relu6Pair]) -> Vec<String> {
    pairs
        .iter()
        .map(|p| graph.node[p.producer].output[0].clone())
        .collect()
}

/// Rescales every pair's channels in place from `stats` (of `pair_inputs`); returns how many
/// channels moved.
pub fn equalise(
    graph: &mut GraphProto,
    pairs: &[Relu6Pair],
    stats: &HashMap<String, TensorStats>,
) -> Result<usize> {
    let index = GraphIndex::of(graph);
    let mut moved = 0;
    for p in pairs {
        let (a, b) = (graph.node[p.producer].clone(), graph.node[p.reader].clone());
        let peak = stats
            .get(&a.output[0])
            .ok_or_else(|| uncalibrated(&a.output[0]))?
            .channel_max();
        let channels = peak.len();
        let floats = |name: &str| index.floats(graph, name).expect("checked by relu6_pairs");
        let (mut wa, mut ba, mut wb) = (
            floats(&a.input[1]),
            floats(&a.input[2]),
            floats(&b.input[1]),
        );
        // A depthwise reader's weights are blocks by channel; a plain one's are [O, C, k, k].
        let reader_channel: Box<dyn Fn(usize) -> usize> = if conv_groups(&b) > 1 {
            let block = wb.len() / channels;
            Box::new(move |i| i / block)
        } else {
            let kernel = wb.len() / channels / (b_out_channels(graph, &index, &b.input[1]));
            Box::new(move |i| (i / kernel) % channels)
        };
        let scales = channel_scales(
            peak,
            &reader_maxima(&wb, channels, &reader_channel),
            p.bound,
        );
        let block = wa.len() / channels;
        wa.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v /= scales[i / block]);
        ba.iter_mut().zip(&scales).for_each(|(v, s)| *v /= s);
        wb.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v *= scales[reader_channel(i)]);
        index.set_floats(graph, &a.input[1], &wa);
        index.set_floats(graph, &a.input[2], &ba);
        index.set_floats(graph, &b.input[1], &wb);
        moved += scales.iter().filter(|&&s| s != 1.0).count();
    }
    Ok(moved)
}

fn b_out_channels(graph: &GraphProto, index: &GraphIndex, weight: &str) -> usize {
    index
        .float_weight(graph, weight)
        .map_or(1, |t| t.dims[0] as usize)
}

/// The largest weight magnitude reading each input channel.
fn reader_maxima(w: &[f32], channels: usize, channel_of: &dyn Fn(usize) -> usize) -> Vec<f32> {
    let mut max = vec![0.0f32; channels];
    for (i, v) in w.iter().enumerate() {
        let c = channel_of(i);
        max[c] = max[c].max(v.abs());
    }
    max
}

fn channel_scales(peak: &[f32], weight_max: &[f32], bound: f32) -> Vec<f32> {
    peak.iter()
        .zip(weight_max)
        .map(|(&peak, &w)| {
            if peak >= bound {
                return 1.0;
            }
            let act = peak.clamp(1e-6, bound);
            let s = act.powf(ALPHA) / w.max(1e-8).powf(1.0 - ALPHA);
            s.max(MARGIN * act / bound)
        })
        .collect()
}
