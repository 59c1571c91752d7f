//! The hand landmark network translated to candle: its forward pass equals ONNX Runtime on
//! the imported graph (real MediaPipe weights, a synthetic hand crop), and the triplet
//! loss's gradient reaches every tensor chosen to train.

mod common;

use candle_core::{Device, Tensor};
use common::hand_model;
use handmatch_core::dataset::synth::first_photo;
use handmatch_core::embed::runtime::open_session;
use handmatch_core::embed::RuntimeOptions;
use handmatch_export::onnx::proto::ModelProto;
use handmatch_trainer::finetune::{GraphNet, TrainLayers};
use ndarray::Array4;
use ort::value::TensorRef;
use prost::Message;

const OUTPUTS: [&str; 4] = ["pooled", "landmarks", "world_landmarks", "presence"];

/// A synthetic hand photo resized to the network's 224 × 224, as `[1, 3, 224, 224]` in [0, 1].
fn hand_crop() -> Array4<f32> {
    let jpeg = first_photo(320, 240).unwrap();
    let rgb = image::load_from_memory(&jpeg).unwrap().to_rgb8();
    let rgb = image::imageops::resize(&rgb, 224, 224, image::imageops::FilterType::Triangle);
    Array4::from_shape_fn((1, 3, 224, 224), |(_, c, y, x)| {
        f32::from(rgb.get_pixel(x as u32, y as u32)[c]) / 255.0
    })
}

fn open_net(layers: TrainLayers) -> GraphNet {
    let bytes = std::fs::read(hand_model()).unwrap();
    let graph = ModelProto::decode(bytes.as_slice()).unwrap().graph.unwrap();
    GraphNet::from_onnx(&graph, "image", "pooled", layers, &Device::Cpu).unwrap()
}

#[test]
fn candle_forward_equals_onnx_runtime_on_a_hand_crop() {
    let crop = hand_crop();
    let (mut session, _) = open_session(&hand_model(), &RuntimeOptions::default()).unwrap();
    let outputs = session
        .run(ort::inputs!["image" => TensorRef::from_array_view(crop.view()).unwrap()])
        .unwrap();
    let net = open_net(TrainLayers::All);
    let x = Tensor::from_slice(crop.as_slice().unwrap(), (1, 3, 224, 224), &Device::Cpu).unwrap();
    let got = net.forward(&x, &OUTPUTS).unwrap();
    for name in OUTPUTS {
        let want = outputs[name].try_extract_array::<f32>().unwrap();
        let have: Vec<f32> = got[name].flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(have.len(), want.len(), "{name}: sizes");
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let worst = have
            .iter()
            .zip(want.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst / scale <= 1e-4,
            "{name}: largest difference {worst} against an output scale of {scale} ({} relative; limit 1e-4)",
            worst / scale
        );
    }
}

#[test]
fn the_loss_gradient_reaches_every_trainable_tensor() {
    let net = open_net(TrainLayers::Last(4));
    let vars = net.vars();
    assert_eq!(
        vars.len(),
        8,
        "the last four convolutions: a weight and a bias each"
    );
    let x = Tensor::from_slice(
        hand_crop().as_slice().unwrap(),
        (1, 3, 224, 224),
        &Device::Cpu,
    )
    .unwrap();
    let x = Tensor::cat(&[&x, &(&x * 0.8).unwrap()], 0).unwrap();
    let pooled = &net.forward(&x, &["pooled"]).unwrap()["pooled"];
    let loss = pooled.sqr().unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    for (name, var) in vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for `{name}`"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm > 0.0, "`{name}`: zero gradient");
    }
}
