//! The exporter against Hugging Face transformers: random checkpoints that the exporter has
//! never seen (written by scripts/reference/make_parity_fixtures.py), with every parameter
//! and buffer randomised, and transformers' own `pooler_output` for recorded inputs.

use std::path::{Path, PathBuf};

use handmatch_core::embed::backbone_session::BackboneSession;
use handmatch_core::embed::RuntimeOptions;
use handmatch_export::artefact::backbone_model;
use handmatch_export::checkpoint::Checkpoint;
use ndarray::{Array2, Array4};
use safetensors::SafeTensors;

/// Max |difference| allowed, relative to the largest |value| of the reference output.
const RELATIVE_TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")
}

fn read_f32(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let v = st.tensor(name).unwrap();
    let data = v
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (v.shape().to_vec(), data)
}

fn check_case(name: &str, image_size: usize) {
    let dir = fixtures().join(name);
    let ckpt = Checkpoint::open(&dir).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("backbone.onnx");
    backbone_model(&ckpt, image_size)
        .unwrap()
        .save(&path)
        .unwrap();

    let bytes = std::fs::read(dir.join("io.safetensors")).unwrap();
    let io = SafeTensors::deserialize(&bytes).unwrap();
    let (in_shape, pixels) = read_f32(&io, "pixel_values");
    let (out_shape, expected) = read_f32(&io, "pooler_output");
    assert_eq!(in_shape[2], image_size);
    let pixels =
        Array4::from_shape_vec((in_shape[0], in_shape[1], in_shape[2], in_shape[3]), pixels)
            .unwrap();
    let expected = Array2::from_shape_vec((out_shape[0], out_shape[1]), expected).unwrap();

    let mut session = BackboneSession::open(&path, &RuntimeOptions::default()).unwrap();
    let got = session.run(pixels.view()).unwrap();
    assert_eq!(got.shape(), expected.shape(), "{name}: output shape");
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    let max_diff = (&got - &expected).iter().fold(0f32, |m, v| m.max(v.abs()));
    eprintln!(
        "{name}: max |diff| = {max_diff:.3e}, scale = {scale:.3}, relative = {:.3e}",
        max_diff / scale
    );
    assert!(
        max_diff <= RELATIVE_TOLERANCE * scale,
        "{name}: max |diff| {max_diff} exceeds {RELATIVE_TOLERANCE} x {scale}"
    );
    // A single image gives the same answer as inside a batch.
    let one = session
        .run(pixels.slice(ndarray::s![0..1, .., .., ..]))
        .unwrap();
    let diff0 = (&one.row(0) - &got.row(0))
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        diff0 <= RELATIVE_TOLERANCE * scale,
        "{name}: batch of one differs by {diff0}"
    );
}

#[test]
fn dinov2_518_checkpoint_exported_at_224_matches_transformers() {
    check_case("dinov2_518_to_224", 224);
}

#[test]
fn dinov2_swiglu_interpolated_up_in_v5_layout_matches_transformers() {
    check_case("dinov2_swiglu_98_to_126", 126);
}

#[test]
fn dinov2_at_native_size_without_qkv_bias_matches_transformers() {
    check_case("dinov2_native_56", 56);
}

#[test]
fn resnet_bottleneck_at_224_matches_transformers() {
    check_case("resnet_bottleneck_224", 224);
}

#[test]
fn resnet_basic_blocks_match_transformers() {
    check_case("resnet_basic_96", 96);
}

/// Guards the fixtures themselves: if the parity tests ever pass because a fixture lost
/// its non-trivial values, this fails.
#[test]
fn fixtures_have_nontrivial_layer_scale_and_batchnorm_statistics() {
    let ckpt = Checkpoint::open(&fixtures().join("dinov2_518_to_224")).unwrap();
    let ls = ckpt
        .get("encoder.layer.0.layer_scale1.lambda1", &[48])
        .unwrap();
    assert!(ls.data.iter().any(|v| (v - 1.0).abs() > 0.1));
    let ckpt = Checkpoint::open(&fixtures().join("resnet_bottleneck_224")).unwrap();
    let var = ckpt
        .get("embedder.embedder.normalization.running_var", &[16])
        .unwrap();
    assert!(var.data.iter().any(|v| (v - 1.0).abs() > 0.1));
}
