//! Running an exported backbone (`pixel_values` → `features`) through ONNX Runtime: used
//! for feature extraction and for proving the exporter against the reference outputs.

use std::path::Path;

use handmatch::embed::runtime::{open_session, RuntimeError, RuntimeOptions};
use handmatch::embed::session::run_detection;
use handmatch::hand::{HandDetection, HandDetector};
use image::RgbImage;
use ndarray::{Array2, ArrayView4};
use ort::session::{OutputSelector, RunOptions, Session};
use ort::value::TensorRef;

use crate::artefact::{FEATURES_NAME, PIXELS_NAME};
use crate::extract::pixels;

pub struct BackboneSession {
    session: Session,
}

impl BackboneSession {
    pub fn open(path: &Path, opts: &RuntimeOptions) -> Result<Self, RuntimeError> {
        let (session, _) = open_session(path, opts)?;
        Ok(Self { session })
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
            &mut self.session,
            ort::inputs![PIXELS_NAME => TensorRef::from_array_view(px.view())?],
        )
    }
}
