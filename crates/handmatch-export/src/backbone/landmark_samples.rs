//! The `local` hand features: the landmark network's own feature maps read at points of
//! the hand (the 21 landmarks, points along the 20 bones) by bilinear interpolation, so each
//! joint, bone and fingertip contributes what the trunk saw around it rather than only the
//! global average.

use super::crop_points::{landmark_xy, to_grid};
use crate::onnx::graph::Attr;
use crate::onnx::GraphBuilder;
use handmatch_core::hand::landmarks::{LANDMARKS, PARENT};

/// One of the network's spatial maps (names as the imported model has them:
/// `scripts/hand-landmarks/import.sh` pins the TFLite file by its SHA-256, so the
/// converter's names are fixed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalMap {
    pub tensor: &'static str,
    pub channels: usize,
}

/// Stride 16 (14 × 14), the last block before the 7 × 7 stage.
pub const MAP_14: LocalMap = LocalMap {
    tensor: "model_1/model/add_5/add",
    channels: 112,
};
/// Stride 8 (28 × 28).
pub const MAP_28: LocalMap = LocalMap {
    tensor: "model_1/model/add_1/add",
    channels: 40,
};
/// Stride 4 (56 × 56).
pub const MAP_56: LocalMap = LocalMap {
    tensor: "model_1/model/add/add",
    channels: 24,
};
/// Stride 2 (112 × 112), the first block's output.
pub const MAP_112: LocalMap = LocalMap {
    tensor: "model_1/model/batch_normalization_2/FusedBatchNormV3;model_1/model/conv2d_1/Conv2D1",
    channels: 16,
};
pub const ALL_MAPS: [LocalMap; 4] = [MAP_14, MAP_28, MAP_56, MAP_112];

/// Where a map is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandPoints {
    Landmarks,
    /// The landmarks and the bone midpoints.
    Both,
    /// The landmarks and three points along every bone (at 1/4, 1/2, 3/4).
    Dense,
}

impl HandPoints {
    pub fn count(self) -> usize {
        match self {
            Self::Landmarks => LANDMARKS,
            Self::Both => 2 * LANDMARKS - 1,
            Self::Dense => LANDMARKS + 3 * (LANDMARKS - 1),
        }
    }
}

/// `[N, P, 2]` crop-pixel positions of `points`, from the landmark model's `[N, 63]`.
fn positions(g: &mut GraphBuilder, landmarks: &str, points: HandPoints) -> String {
    let xy = landmark_xy(g, landmarks);
    if points == HandPoints::Landmarks {
        return xy;
    }
    let tips: Vec<i64> = (1..LANDMARKS as i64).collect();
    let bases: Vec<i64> = PARENT[1..].iter().map(|&p| p as i64).collect();
    let tips = g.gather(&xy, 1, &tips);
    let bases = g.gather(&xy, 1, &bases);
    let along = g.op("Sub", &[&tips, &bases], vec![]);
    let at = |g: &mut GraphBuilder, t: f32| {
        let t = g.const_f32("along", &[], vec![t]);
        let step = g.mul(&along, &t);
        g.add(&bases, &step)
    };
    match points {
        HandPoints::Both => {
            let mid = at(g, 0.5);
            g.op("Concat", &[&xy, &mid], vec![("axis", Attr::Int(1))])
        }
        _ => {
            let q1 = at(g, 0.25);
            let q2 = at(g, 0.5);
            let q3 = at(g, 0.75);
            g.op(
                "Concat",
                &[&xy, &q1, &q2, &q3],
                vec![("axis", Attr::Int(1))],
            )
        }
    }
}

/// `map`: `[N, C, H, W]` over the whole crop; `landmarks`: `[N, 63]` in crop pixels.
/// Returns `[N, C · P]`, channel-major.
pub fn sample_at(
    g: &mut GraphBuilder,
    map: &str,
    landmarks: &str,
    points: HandPoints,
    side: usize,
) -> String {
    let xy = positions(g, landmarks, points);
    let xy = g.reshape(&xy, &[-1, 1, points.count() as i64, 2]);
    let grid = to_grid(g, &xy, side);
    let values = g.op("GridSample", &[map, &grid], vec![]);
    g.reshape(&values, &[0, -1])
}
