//! The `shape` hand features, in the graph: how wide the hand's silhouette is across each
//! finger bone (at 30/50/70 % of its length) and how long every bone is, both in palm widths
//! (the index-to-pinky knuckle distance). Widths and lengths look the same from the palm and
//! from the back, and do not change with rotation, scale or mirroring.
//!
//! Being part of the graph, they are computed identically by the trainer's extraction and
//! by the server.

use super::crop_points::{landmark_xy, to_grid};
use crate::onnx::graph::Attr;
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::GraphBuilder;
use handmatch_core::hand::coarse::FOREGROUND_DIFFERENCE;
use handmatch_core::hand::landmarks::{INDEX_MCP, LANDMARKS, PARENT, PINKY_MCP};

/// The tip-side landmark of each finger bone (three per finger, thumb first).
pub const PHALANX_TIPS: [usize; 15] = [2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16, 18, 19, 20];
/// Where along each bone (from its base) the width is measured.
pub const FRACTIONS: [f32; 3] = [0.3, 0.5, 0.7];
pub const WIDTHS: usize = PHALANX_TIPS.len() * FRACTIONS.len();
pub const LENGTHS: usize = LANDMARKS - 1;
pub const SHAPE_DIM: usize = WIDTHS + LENGTHS;
/// How far from the bone each side is searched, in palm widths: wider than any finger, so
/// a finger's width is found whole, and a neighbouring finger only counts when it touches.
const REACH: f32 = 0.5;
/// Samples on each side of the bone; the width's resolution is `REACH / STEPS` palm widths.
const STEPS: usize = 24;

/// `unit`: the crop's RGB in [0, 1], `[N, 3, S, S]`; `landmarks`: the landmark model's
/// `[N, 63]` output (x, y in crop pixels, z). Returns `[N, SHAPE_DIM]`.
pub fn shape(g: &mut GraphBuilder, unit: &str, landmarks: &str, side: usize) -> String {
    let mask = foreground_mask(g, unit, side);
    let xy = landmark_xy(g, landmarks);
    let palm = palm_width(g, &xy);
    let widths = finger_widths(g, &mask, &xy, &palm, side);
    let lengths = bone_lengths(g, &xy, &palm);
    g.op("Concat", &[&widths, &lengths], vec![("axis", Attr::Int(1))])
}

/// Euclidean norm over `axis`.
fn norm(g: &mut GraphBuilder, x: &str, axis: i64, keepdims: bool) -> String {
    let sq = g.mul(x, x);
    let axes = g.const_i64("axes", &[axis]);
    let sum = g.op(
        "ReduceSum",
        &[&sq, &axes],
        vec![("keepdims", Attr::Int(keepdims as i64))],
    );
    let eps = g.const_f32("eps", &[], vec![1e-12]);
    let sum = g.add(&sum, &eps);
    g.op("Sqrt", &[&sum], vec![])
}

fn cast_float(g: &mut GraphBuilder, x: &str) -> String {
    g.op(
        "Cast",
        &[x],
        vec![("to", Attr::Int(DataType::Float as i64))],
    )
}

/// `[N, 1, S, S]`: 1 where a channel differs from the background by more than
/// `FOREGROUND_DIFFERENCE`. The background is the per-channel median of the border pixels,
/// counted as `coarse::background` counts them (corners twice), so it is the same colour.
fn foreground_mask(g: &mut GraphBuilder, unit: &str, side: usize) -> String {
    let s = side as i64;
    let mut border = Vec::new();
    for (axis, at) in [(2, 0), (2, s - 1), (3, 0), (3, s - 1)] {
        let line = g.slice(unit, axis, at, at + 1);
        border.push(g.reshape(&line, &[0, 3, s]));
    }
    let refs: Vec<&str> = border.iter().map(String::as_str).collect();
    let border = g.op("Concat", &refs, vec![("axis", Attr::Int(2))]);
    // Of 4S values the median (ascending index 2S) is the 2S-th largest.
    let k = g.const_i64("k", &[2 * s]);
    let top = g.op_n(
        "TopK",
        &[&border, &k],
        2,
        vec![("axis", Attr::Int(2)), ("largest", Attr::Int(1))],
    );
    let background = g.op(
        "ReduceMin",
        &[&top[0]],
        vec![("axes", Attr::Ints(vec![2])), ("keepdims", Attr::Int(1))],
    );
    let axes3 = g.const_i64("axes", &[3]);
    let background = g.op("Unsqueeze", &[&background, &axes3], vec![]);
    let diff = g.op("Sub", &[unit, &background], vec![]);
    let diff = g.op("Abs", &[&diff], vec![]);
    let most = g.op(
        "ReduceMax",
        &[&diff],
        vec![("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(1))],
    );
    // "More than 40 of 255" on whole numbers, tested half-way to 41 so that float rounding
    // of the normalisation cannot flip a pixel that differs by exactly 40.
    let threshold = g.const_f32(
        "foreground",
        &[],
        vec![(FOREGROUND_DIFFERENCE as f32 + 0.5) / 255.0],
    );
    let fg = g.op("Greater", &[&most, &threshold], vec![]);
    cast_float(g, &fg)
}

/// `[N, 1, 1]`: the index-to-pinky knuckle distance in crop pixels.
fn palm_width(g: &mut GraphBuilder, xy: &str) -> String {
    let a = g.gather(xy, 1, &[INDEX_MCP as i64]);
    let b = g.gather(xy, 1, &[PINKY_MCP as i64]);
    let d = g.op("Sub", &[&a, &b], vec![]);
    norm(g, &d, 2, true)
}

/// `[N, 20]`: every bone's length in the crop, in palm widths.
fn bone_lengths(g: &mut GraphBuilder, xy: &str, palm: &str) -> String {
    let tips: Vec<i64> = (1..LANDMARKS as i64).collect();
    let bases: Vec<i64> = PARENT[1..].iter().map(|&p| p as i64).collect();
    let c = g.gather(xy, 1, &tips);
    let a = g.gather(xy, 1, &bases);
    let d = g.op("Sub", &[&c, &a], vec![]);
    let len = norm(g, &d, 2, false);
    let palm = g.reshape(palm, &[-1, 1]);
    g.op("Div", &[&len, &palm], vec![])
}

/// `[N, WIDTHS]`: along the normal of each finger bone at each fraction, the run of
/// foreground samples through the bone's point (both sides), in palm widths. A point off
/// the silhouette measures 0.
fn finger_widths(g: &mut GraphBuilder, mask: &str, xy: &str, palm: &str, side: usize) -> String {
    let grid = sample_grid(g, xy, palm, side);
    let values = g.op("GridSample", &[mask, &grid], vec![]);
    let half = g.const_f32("half", &[], vec![0.5]);
    let inside = g.op("Greater", &[&values, &half], vec![]);
    let inside = cast_float(g, &inside);
    let inside = g.reshape(&inside, &[-1, WIDTHS as i64, 2, STEPS as i64 + 1]);
    let one = g.const_f32("one", &[], vec![1.0]);
    let outside = g.op("Sub", &[&one, &inside], vec![]);
    // A sample is on the run when no sample between it and the bone is outside.
    let axis = g.scalar_i64("axis", 3);
    let outside_so_far = g.op("CumSum", &[&outside, &axis], vec![]);
    let zero = g.const_f32("zero", &[], vec![0.0]);
    let on_run = g.op("Equal", &[&outside_so_far, &zero], vec![]);
    let on_run = cast_float(g, &on_run);
    let axes = g.const_i64("axes", &[2, 3]);
    let count = g.op(
        "ReduceSum",
        &[&on_run, &axes],
        vec![("keepdims", Attr::Int(0))],
    );
    // The bone's own point is counted on both sides.
    let count = g.op("Sub", &[&count, &one], vec![]);
    let count = g.op("Relu", &[&count], vec![]);
    let step = g.const_f32("step", &[], vec![REACH / STEPS as f32]);
    g.mul(&count, &step)
}

/// `[N, WIDTHS, 2·(STEPS+1), 2]`: GridSample coordinates of the samples: for each bone and
/// fraction, the bone's point moved along the bone's normal by 0, 1, … STEPS steps on one
/// side, then the same on the other.
fn sample_grid(g: &mut GraphBuilder, xy: &str, palm: &str, side: usize) -> String {
    let tips: Vec<i64> = PHALANX_TIPS.iter().map(|&t| t as i64).collect();
    let bases: Vec<i64> = PHALANX_TIPS.iter().map(|&t| PARENT[t] as i64).collect();
    let c = g.gather(xy, 1, &tips);
    let a = g.gather(xy, 1, &bases);
    let d = g.op("Sub", &[&c, &a], vec![]);
    let len = norm(g, &d, 2, true);
    let u = g.op("Div", &[&d, &len], vec![]);
    let swapped = g.gather(&u, 2, &[1, 0]);
    let flip = g.const_f32("normal_sign", &[2], vec![-1.0, 1.0]);
    let normal = g.mul(&swapped, &flip);

    let axes2 = g.const_i64("axes", &[2]);
    let a = g.op("Unsqueeze", &[&a, &axes2], vec![]);
    let d = g.op("Unsqueeze", &[&d, &axes2], vec![]);
    let t = g.const_f32("fractions", &[1, 1, FRACTIONS.len(), 1], FRACTIONS.to_vec());
    let along = g.mul(&d, &t);
    let centres = g.add(&a, &along);
    let axes3 = g.const_i64("axes", &[3]);
    let centres = g.op("Unsqueeze", &[&centres, &axes3], vec![]);

    let step = REACH / STEPS as f32;
    let offsets: Vec<f32> = (0..=STEPS)
        .map(|k| k as f32 * step)
        .chain((0..=STEPS).map(|k| -(k as f32) * step))
        .collect();
    let n = offsets.len();
    let offsets = g.const_f32("offsets", &[1, 1, 1, n, 1], offsets);
    let palm = g.reshape(palm, &[-1, 1, 1, 1, 1]);
    let offsets = g.mul(&offsets, &palm);
    let axes23 = g.const_i64("axes", &[2, 3]);
    let normal = g.op("Unsqueeze", &[&normal, &axes23], vec![]);
    let moved = g.mul(&offsets, &normal);
    let points = g.add(&centres, &moved);
    let points = g.reshape(&points, &[-1, WIDTHS as i64, n as i64, 2]);
    to_grid(g, &points, side)
}
