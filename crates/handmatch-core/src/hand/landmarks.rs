//! What the landmark model reports for one crop, and the one thing a model must offer to be
//! used for alignment.

use image::RgbImage;

/// MediaPipe's 21 hand landmarks.
pub const LANDMARKS: usize = 21;
pub const WRIST: usize = 0;
pub const INDEX_MCP: usize = 5;
pub const MIDDLE_MCP: usize = 9;
pub const PINKY_MCP: usize = 17;

/// Parent of each landmark in MediaPipe's hand skeleton (the wrist is its own parent).
pub const PARENT: [usize; LANDMARKS] = [
    0, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19,
];

#[derive(Debug, Clone, PartialEq)]
pub struct HandDetection {
    /// Probability that the crop holds a hand.
    pub presence: f32,
    /// Landmarks `(x, y)` in pixels of the crop the model saw.
    pub points: [[f32; 2]; LANDMARKS],
}

/// The side of the square crop the landmark network takes.
pub const LANDMARK_INPUT: u32 = 224;

/// A model that finds hand landmarks in `LANDMARK_INPUT`-square RGB crops.
pub trait HandDetector {
    type Error;
    fn detect(&mut self, crops: &[&RgbImage]) -> Result<Vec<HandDetection>, Self::Error>;
}

/// Reads the model's flat outputs (`landmarks [N, 63]` as x, y, z per point; `presence
/// [N, 1]`) into detections.
pub fn detections_from(landmarks: &[f32], presence: &[f32]) -> Vec<HandDetection> {
    presence
        .iter()
        .zip(landmarks.chunks_exact(LANDMARKS * 3))
        .map(|(&presence, flat)| {
            let mut points = [[0.0; 2]; LANDMARKS];
            for (p, xyz) in points.iter_mut().zip(flat.chunks_exact(3)) {
                *p = [xyz[0], xyz[1]];
            }
            HandDetection { presence, points }
        })
        .collect()
}
