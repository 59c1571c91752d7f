//! Running an exported backbone (`pixel_values` → `features`) through ONNX Runtime: used
//! for feature extraction and for proving the exporter against the reference outputs.

use std::path::Path;

use super::runtime::{open_session, RuntimeError, RuntimeOptions, SessionSharing};
use super::session::{open_hand_cuts, run_detection, LANDMARKS_NAME, PRESENCE_NAME};
use crate::hand::{HandDetection, HandDetector};
use image::RgbImage;
use ndarray::{Array2, Array4, ArrayView4};
use ort::session::{OutputSelector, RunOptions, Session};
use ort::value::TensorRef;

use super::metadata::pixel_scale_shift;

/// The backbone graph's input: normalised pixels `[N, 3, S, S]`.
pub const PIXELS_NAME: &str = "pixel_values";
/// The backbone graph's output: features `[N, D]`.
pub const FEATURES_NAME: &str = "features";

pub struct BackboneSession {
    session: Session,
    /// Hand backbones: the landmark outputs' graph alone, `session` then being the graph
    /// cut to the features (see `open_hand_cuts`).
    detector: Option<Session>,
}

impl BackboneSession {
    pub fn open(path: &Path, opts: &RuntimeOptions) -> Result<Self, RuntimeError> {
        let (session, _) = open_session(path, opts)?;
        let has = |name: &str| session.outputs().iter().any(|o| o.name() == name);
        if has(PRESENCE_NAME) && has(LANDMARKS_NAME) {
            let sharing = SessionSharing::default();
            if let Some((detector, features)) = open_hand_cuts(path, opts, &sharing, FEATURES_NAME)?
            {
                return Ok(Self {
                    session: features,
                    detector: Some(detector),
                });
            }
        }
        Ok(Self {
            session,
            detector: None,
        })
    }

    /// A value of the graph's `metadata_props` (e.g. the backbone's model id).
    pub fn custom_metadata(&self, key: &str) -> Option<String> {
        self.session.metadata().ok()?.custom(key)
    }

    /// `[N, 3, S, S]` normalised pixels → `[N, D]` features.
    pub fn run(&mut self, pixels: ArrayView4<'_, f32>) -> Result<Array2<f32>, ort::Error> {
        let pixels = pixels.as_standard_layout();
        let options =
            RunOptions::new()?.with_outputs(OutputSelector::no_default().with(FEATURES_NAME));
        let out = self.session.run_with_options(
            ort::inputs![PIXELS_NAME => TensorRef::from_array_view(pixels.view())?],
            &options,
        )?;
        let features = out[FEATURES_NAME].try_extract_array::<f32>()?;
        let n = features.shape()[0];
        let d = features.len() / n.max(1);
        Ok(features
            .to_shape((n, d))
            .expect("features are [N, D]")
            .to_owned())
    }
}

/// Hand backbones carry the landmark model's outputs, so extraction aligns with the very
/// graph it extracts with.
impl HandDetector for BackboneSession {
    type Error = ort::Error;

    fn detect(&mut self, crops: &[&RgbImage]) -> Result<Vec<HandDetection>, ort::Error> {
        let px = pixels(crops);
        run_detection(
            self.detector.as_mut().unwrap_or(&mut self.session),
            ort::inputs![PIXELS_NAME => TensorRef::from_array_view(px.view())?],
        )
    }
}

/// Normalised `[N, 3, S, S]` pixels, as the backbone graph takes them (bit for bit what the
/// artefact's graph makes of the same uint8 crops).
pub fn pixels(crops: &[&RgbImage]) -> Array4<f32> {
    let s = crops[0].width() as usize;
    let (scale, shift) = pixel_scale_shift();
    let mut out = Array4::<f32>::zeros((crops.len(), 3, s, s));
    for (i, crop) in crops.iter().enumerate() {
        for (x, y, p) in crop.enumerate_pixels() {
            for c in 0..3 {
                out[[i, c, y as usize, x as usize]] = p[c] as f32 * scale[c] + shift[c];
            }
        }
    }
    out
}
