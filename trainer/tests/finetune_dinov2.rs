//! DINOv2 as a trainable candle network: its forward equals ONNX Runtime on the exported
//! graph and transformers' recorded output for the exporter's parity fixtures; gradients
//! reach every tensor and equal central differences; the checkpoint it writes exports to
//! an artefact that computes what the tuned network computes. (Fine-tuning against a head on frozen features is
//! `cargo run --release -p handmatch-trainer --example dinov2_synthetic_check`: it does
//! not win on synthetic hands with either loss, see docs/fine-tuning.md.)

mod common;

use candle_core::{Device, Tensor};
use handmatch_export::checkpoint::Checkpoint;
use handmatch_export::random_init::{self, Arch};
use handmatch_trainer::finetune::dinov2_net::Dinov2Net;
use handmatch_trainer::finetune::TrainLayers;

use common::directional::{seeded_normal, seeded_rng, ReadOut};
use common::parity::{
    fixture, largest_difference, max_abs, normalised, onnx_runtime_output, values, Recorded,
    RELATIVE_TOLERANCE,
};

fn check_parity(name: &str, image_size: usize) {
    let dir = fixture(name);
    let recorded = Recorded::read(&dir);
    let net = Dinov2Net::open(&dir, image_size, TrainLayers::All, &Device::Cpu).unwrap();
    let candle = net.forward_normalised(&recorded.pixel_values).unwrap();
    recorded.assert_matches(name, &dir, image_size, &candle);
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
    let scale = max_abs(&moved);
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
    values(&net.forward(x).unwrap())
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b)).max(f64::MIN_POSITIVE)
}

/// bf16 autocast computes what f32 does to bf16's precision (each image's features at
/// cosine ≥ 0.999, every trained tensor's gradient at cosine ≥ 0.99), and it does run in
/// bf16: its features differ from f32's by more than f32 rounding.
#[test]
fn bf16_autocast_follows_f32_in_features_and_gradients() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dinov2-tiny");
    random_init::write(Arch::Dinov2Tiny, 7, &dir).unwrap();
    let open = || Dinov2Net::open(&dir, 56, TrainLayers::All, &Device::Cpu).unwrap();
    let (f32_net, bf16_net) = (open(), open().with_autocast(candle_core::DType::BF16));
    let mut rng = seeded_rng(4);
    let x = seeded_normal(&[3, 3, 56, 56], &mut rng)
        .affine(0.2, 0.5)
        .unwrap();
    // A random linear read-out (a sum of squares would be flat through the final LayerNorm).
    let read_out = seeded_normal(&[3, 64], &mut rng);
    let run = |net: &Dinov2Net| {
        let features = net.forward(&x).unwrap();
        assert_eq!(features.dtype(), candle_core::DType::F32);
        let loss = (&features * &read_out).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let by_tensor: Vec<Vec<f32>> = net
            .vars()
            .iter()
            .map(|(_, v)| grads.get(v.as_tensor()).map_or(Vec::new(), values))
            .collect();
        (values(&features), by_tensor)
    };
    let ((exact, exact_grads), (cast, cast_grads)) = (run(&f32_net), run(&bf16_net));
    let width = exact.len() / 3;
    for (i, (a, b)) in exact.chunks(width).zip(cast.chunks(width)).enumerate() {
        let c = cosine(a, b);
        eprintln!("image {i}: features' cosine bf16 vs f32 {c:.6}");
        assert!(c >= 0.999, "image {i}: cosine {c}");
    }
    let diff = largest_difference(&exact, &cast);
    assert!(
        diff > 1e-4 * max_abs(&exact),
        "bf16 changed nothing ({diff})"
    );
    let names = f32_net.vars();
    for (((name, _), a), b) in names.iter().zip(&exact_grads).zip(&cast_grads) {
        // The key bias's true gradient is zero (it adds the same q·b to every score of a
        // softmax row), so both sides hold only rounding.
        if a.is_empty() || name.ends_with("key.bias") {
            continue;
        }
        let c = cosine(a, b);
        eprintln!("{name}: gradient cosine bf16 vs f32 {c:.5}");
        assert!(c >= 0.99, "{name}: gradient cosine {c}");
    }
}
