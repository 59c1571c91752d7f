//! DINOv2 as a trainable candle network: its forward equals ONNX Runtime on the exported
//! graph and transformers' recorded output for the exporter's parity fixtures; gradients
//! reach every tensor and equal central differences; the checkpoint it writes exports to
//! an artefact that computes what the tuned network computes. (Fine-tuning against a head on frozen features is
//! `cargo run --release -p handmatch-trainer --example dinov2_synthetic_check`: it does
//! not win on synthetic hands with either loss, see docs/fine-tuning.md.)

mod common;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use handmatch_core::embed::backbone_session::BackboneSession;
use handmatch_core::embed::RuntimeOptions;
use handmatch_export::artefact::backbone_model;
use handmatch_export::checkpoint::Checkpoint;
use handmatch_export::random_init::{self, Arch};
use handmatch_trainer::finetune::dinov2_net::Dinov2Net;
use handmatch_trainer::finetune::TrainLayers;
use ndarray::Array4;
use safetensors::SafeTensors;

use common::directional::{seeded_normal, seeded_rng, ReadOut};

/// Max |difference| allowed, relative to the largest |value| of the reference output.
const RELATIVE_TOLERANCE: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/handmatch-export/tests/fixtures/parity")
        .join(name)
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

fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The exported graph of the checkpoint in `dir` run by ONNX Runtime on `pixels`.
fn onnx_runtime_output(dir: &Path, image_size: usize, pixels: &Array4<f32>) -> Vec<f32> {
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

fn check_parity(name: &str, image_size: usize) {
    let dir = fixture(name);
    let bytes = std::fs::read(dir.join("io.safetensors")).unwrap();
    let io = SafeTensors::deserialize(&bytes).unwrap();
    let (shape, pixels) = read_f32(&io, "pixel_values");
    let (_, reference) = read_f32(&io, "pooler_output");
    let net = Dinov2Net::open(&dir, image_size, TrainLayers::All, &Device::Cpu).unwrap();
    let input = Tensor::from_vec(pixels.clone(), shape.clone(), &Device::Cpu).unwrap();
    let candle: Vec<f32> = net
        .forward_normalised(&input)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let pixels = Array4::from_shape_vec((shape[0], shape[1], shape[2], shape[3]), pixels).unwrap();
    let ort = onnx_runtime_output(&dir, image_size, &pixels);
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (what, other) in [("ONNX Runtime", &ort), ("transformers", &reference)] {
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

#[test]
fn candle_dinov2_interpolated_down_matches_onnx_runtime_and_transformers() {
    check_parity("dinov2_518_to_224", 224);
}

#[test]
fn candle_dinov2_swiglu_v5_layout_interpolated_up_matches() {
    check_parity("dinov2_swiglu_98_to_126", 126);
}

#[test]
fn candle_dinov2_native_size_without_qkv_bias_matches() {
    check_parity("dinov2_native_56", 56);
}

#[test]
fn gradients_reach_every_tensor_and_the_written_checkpoint_exports_what_the_net_computes() {
    let dir = fixture("dinov2_518_to_224");
    let net = Dinov2Net::open(&dir, 56, TrainLayers::All, &Device::Cpu).unwrap();
    let x = Tensor::rand(0f32, 1f32, (2, 3, 56, 56), &Device::Cpu).unwrap();
    let loss = net.forward(&x).unwrap().sqr().unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let vars = net.vars();
    // Every float tensor of the checkpoint but the unused mask token.
    let expected = Checkpoint::open(&dir)
        .unwrap()
        .tensors()
        .filter(|(n, _)| !n.contains("mask_token"))
        .count();
    let reached = vars
        .iter()
        .filter(|(_, v)| {
            grads.get(v.as_tensor()).is_some_and(|g| {
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0
            })
        })
        .count();
    assert_eq!(reached, expected, "of {} variables", vars.len());

    // Last-1 trains the last block and the final norm only.
    let last = Dinov2Net::open(&dir, 56, TrainLayers::Last(1), &Device::Cpu).unwrap();
    let names: Vec<String> = last.vars().into_iter().map(|(n, _)| n).collect();
    assert!(names
        .iter()
        .all(|n| n.starts_with("encoder.layer.1.") || n.starts_with("layernorm.")));
    assert!(
        names.iter().any(|n| n.starts_with("layernorm.")),
        "{names:?}"
    );

    // One step moves the weights; the written checkpoint exports to what the net computes.
    for (_, v) in &vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            v.set(&(v.as_tensor() - (g * 0.01).unwrap()).unwrap())
                .unwrap();
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    net.save_checkpoint(&tmp.path().join("tuned")).unwrap();
    let moved = output(&net, &x);
    let original = Dinov2Net::open(&dir, 56, TrainLayers::All, &Device::Cpu).unwrap();
    let before = output(&original, &x);
    assert!(
        largest_difference(&moved, &before) > 1e-3,
        "the step changed nothing"
    );
    let pixels = normalised(&x);
    let exported = onnx_runtime_output(&tmp.path().join("tuned"), 56, &pixels);
    let scale = moved.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = largest_difference(&moved, &exported);
    assert!(
        diff <= RELATIVE_TOLERANCE * scale,
        "tuned export differs by {diff}"
    );
}

/// The backward pass is the forward's derivative: for every trained tensor of a random
/// `dinov2-tiny` (the synthetic check's network, at its 56-pixel input), the gradient's
/// product with a random direction equals the loss's central difference along it.
#[test]
fn gradients_equal_central_differences_along_random_directions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dinov2-tiny");
    random_init::write(Arch::Dinov2Tiny, 7, &dir).unwrap();
    let net = Dinov2Net::open(&dir, 56, TrainLayers::All, &Device::Cpu).unwrap();
    let mut rng = seeded_rng(3);
    let x = seeded_normal(&[2, 3, 56, 56], &mut rng)
        .affine(0.2, 0.5)
        .unwrap();
    // A fixed random linear read-out: every output value counts.
    let weights = seeded_normal(&[2, 64], &mut rng);
    let terms = || (net.forward(&x).unwrap() * &weights).unwrap();
    let vars = net.vars();
    let checked = ReadOut { terms: &terms, rng }.check(&vars);
    assert_eq!(
        checked,
        vars.len() - 1,
        "every tensor but the unused mask token"
    );
}

fn output(net: &Dinov2Net, x: &Tensor) -> Vec<f32> {
    net.forward(x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// `x` in [0, 1] as ImageNet-normalised `pixel_values`.
fn normalised(x: &Tensor) -> Array4<f32> {
    use handmatch_core::embed::metadata::{IMAGENET_MEAN, IMAGENET_STD};
    let dims = x.dims4().unwrap();
    let mut v = Array4::from_shape_vec(dims, x.flatten_all().unwrap().to_vec1().unwrap()).unwrap();
    for c in 0..3 {
        v.slice_mut(ndarray::s![.., c, .., ..])
            .mapv_inplace(|p| (p - IMAGENET_MEAN[c]) / IMAGENET_STD[c]);
    }
    v
}
