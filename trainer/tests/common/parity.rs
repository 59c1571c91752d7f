//! The exporter's parity fixtures (a random checkpoint, its `pixel_values` and transformers'
//! `pooler_output`) and what comparing a candle network with them needs.

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use handmatch_core::embed::backbone_session::BackboneSession;
use handmatch_core::embed::metadata::{IMAGENET_MEAN, IMAGENET_STD};
use handmatch_core::embed::RuntimeOptions;
use handmatch_export::artefact::backbone_model;
use handmatch_export::checkpoint::Checkpoint;
use handmatch_export::head::file::HeadFile;
use ndarray::Array4;

/// Max |difference| allowed, relative to the largest |value| of the reference output.
pub const RELATIVE_TOLERANCE: f32 = 1e-4;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/handmatch-export/tests/fixtures/parity")
        .join(name)
}

/// A fixture's recorded input and transformers' output for it.
pub struct Recorded {
    pub pixel_values: Tensor,
    pub pooler_output: Vec<f32>,
}

impl Recorded {
    pub fn read(dir: &Path) -> Self {
        let path = dir.join("io.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        let io = HeadFile::parse(&path, &bytes).unwrap();
        let pixels = io.tensor("pixel_values", None).unwrap();
        let pixel_values =
            Tensor::from_vec(pixels.data, pixels.shape, &candle_core::Device::Cpu).unwrap();
        Self {
            pixel_values,
            pooler_output: io.tensor("pooler_output", None).unwrap().data,
        }
    }

    /// Asserts that `candle`, the candle network's output for the recorded input, equals
    /// ONNX Runtime on the checkpoint's exported graph and transformers' output.
    pub fn assert_matches(&self, name: &str, dir: &Path, image_size: usize, candle: &Tensor) {
        let candle = values(candle);
        let ort = onnx_runtime_output(dir, image_size, &to_array(&self.pixel_values));
        let scale = max_abs(&self.pooler_output);
        for (what, other) in [
            ("ONNX Runtime", &ort),
            ("transformers", &self.pooler_output),
        ] {
            let diff = largest_difference(&candle, other);
            eprintln!(
                "{name}: candle vs {what}: max |diff| {diff:.3e}, relative {:.3e}",
                diff / scale
            );
            assert!(
                diff <= RELATIVE_TOLERANCE * scale,
                "{name}: candle vs {what} differ by {diff} (scale {scale})"
            );
        }
    }
}

pub fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

pub fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

pub fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn to_array(t: &Tensor) -> Array4<f32> {
    Array4::from_shape_vec(t.dims4().unwrap(), values(t)).unwrap()
}

/// The exported graph of the checkpoint in `dir` run by ONNX Runtime on `pixels`.
pub fn onnx_runtime_output(dir: &Path, image_size: usize, pixels: &Array4<f32>) -> Vec<f32> {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("backbone.onnx");
    backbone_model(&Checkpoint::open(dir).unwrap(), image_size)
        .unwrap()
        .save(&path)
        .unwrap();
    let mut session = BackboneSession::open(&path, &RuntimeOptions::default()).unwrap();
    session
        .run(pixels.view())
        .unwrap()
        .iter()
        .copied()
        .collect()
}

/// `x` in [0, 1] as ImageNet-normalised `pixel_values`.
pub fn normalised(x: &Tensor) -> Array4<f32> {
    let mut v = to_array(x);
    for c in 0..3 {
        v.slice_mut(ndarray::s![.., c, .., ..])
            .mapv_inplace(|p| (p - IMAGENET_MEAN[c]) / IMAGENET_STD[c]);
    }
    v
}
