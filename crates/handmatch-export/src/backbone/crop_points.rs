//! Landmarks as points of the crop inside the graph: what the silhouette and the local
//! maps both read.

use crate::onnx::GraphBuilder;
use handmatch_core::hand::landmarks::LANDMARKS;

/// `[N, 21, 2]`: x, y in crop pixels, from the landmark model's `[N, 63]` (x, y, z).
pub fn landmark_xy(g: &mut GraphBuilder, landmarks: &str) -> String {
    let xyz = g.reshape(landmarks, &[-1, LANDMARKS as i64, 3]);
    g.slice(&xyz, 2, 0, 2)
}

/// Crop pixels → GridSample's [-1, 1] (the crop's edges, `align_corners = 0`).
pub fn to_grid(g: &mut GraphBuilder, points: &str, side: usize) -> String {
    let scale = g.const_f32("grid_scale", &[], vec![2.0 / side as f32]);
    let minus_one = g.const_f32("grid_shift", &[], vec![-1.0]);
    let scaled = g.mul(points, &scale);
    g.add(&scaled, &minus_one)
}
