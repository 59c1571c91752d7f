//! The hand-landmarks backbone: the geometry descriptor computed in the graph equals a plain
//! computation and does not change when the hand is rotated, scaled or mirrored; and feature
//! extraction aligns synthetic hands with the real MediaPipe model (imported by
//! scripts/setup.sh) before extracting.

mod common;

use handmatch_core::embed::runtime::open_session;
use handmatch_core::embed::RuntimeOptions;
use handmatch_core::hand::landmarks::{LANDMARKS, PARENT};
use handmatch_export::backbone::hand::{geometry, GEOMETRY_DIM, POOLED_DIM};
use handmatch_export::backbone::BackboneSpec;
use handmatch_export::onnx::graph::Dim;
use handmatch_export::onnx::proto::tensor_proto::DataType;
use handmatch_export::onnx::{GraphBuilder, ModelFile};
use handmatch_trainer::extract::{extract, ExtractOptions};
use handmatch_trainer::pipeline::export_backbone;
use ndarray::Array2;
use ort::value::TensorRef;
use rand::{Rng, SeedableRng};

/// The descriptor written out plainly: distances over their mean, then bone cosines.
fn reference(p: &[[f32; 3]]) -> Vec<f32> {
    let d = |a: [f32; 3], b: [f32; 3]| {
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
    };
    let mut dists = Vec::new();
    for i in 0..LANDMARKS {
        for j in i + 1..LANDMARKS {
            dists.push(d(p[i], p[j]));
        }
    }
    let mean = dists.iter().sum::<f32>() / dists.len() as f32;
    let mut out: Vec<f32> = dists.iter().map(|x| x / mean).collect();
    let bones: Vec<[f32; 3]> = (1..LANDMARKS)
        .map(|j| {
            let v = [0, 1, 2].map(|k| p[j][k] - p[PARENT[j]][k]);
            let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            v.map(|x| x / n)
        })
        .collect();
    for i in 0..bones.len() {
        for j in i + 1..bones.len() {
            out.push((0..3).map(|k| bones[i][k] * bones[j][k]).sum());
        }
    }
    out
}

#[test]
fn geometry_matches_the_plain_computation_and_ignores_pose_scale_and_mirroring() {
    let mut g = GraphBuilder::new();
    let world = g.input(
        "world",
        DataType::Float,
        &[Dim::Named("batch"), Dim::Fixed(LANDMARKS * 3)],
    );
    let out = geometry(&mut g, &world);
    g.output(
        &out,
        "geometry",
        DataType::Float,
        &[Dim::Named("batch"), Dim::Fixed(GEOMETRY_DIM)],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("geometry.onnx");
    ModelFile::new(g.finish("geometry")).save(&path).unwrap();
    let (mut session, _) = open_session(&path, &RuntimeOptions::default()).unwrap();

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let hand: Vec<[f32; 3]> = (0..LANDMARKS)
        .map(|_| [0, 1, 2].map(|_| rng.random_range(-0.1f32..0.1)))
        .collect();
    // Rotated about z by 0.7 rad, scaled 1.8x, mirrored in x, moved.
    let (s, c) = 0.7f32.sin_cos();
    let moved: Vec<[f32; 3]> = hand
        .iter()
        .map(|&[x, y, z]| {
            let (x, y) = (c * x - s * y, s * x + c * y);
            [-1.8 * x + 0.3, 1.8 * y - 0.2, 1.8 * z + 0.05]
        })
        .collect();
    let flat: Vec<f32> = hand.iter().chain(&moved).flatten().copied().collect();
    let input = Array2::from_shape_vec((2, LANDMARKS * 3), flat).unwrap();
    let outputs = session
        .run(ort::inputs!["world" => TensorRef::from_array_view(input.view()).unwrap()])
        .unwrap();
    let got = outputs["geometry"].try_extract_array::<f32>().unwrap();
    assert_eq!(got.shape(), &[2, GEOMETRY_DIM]);
    let want = reference(&hand);
    for k in 0..GEOMETRY_DIM {
        assert!(
            (got[[0, k]] - want[k]).abs() <= 1e-5,
            "feature {k}: graph {} vs plain {}",
            got[[0, k]],
            want[k]
        );
        assert!(
            (got[[1, k]] - got[[0, k]]).abs() <= 1e-4,
            "feature {k} changed with the pose: {} vs {}",
            got[[1, k]],
            got[[0, k]]
        );
    }
}

#[test]
fn extraction_aligns_synthetic_hands_with_the_real_landmark_model() {
    let hand_model = common::hand_model();
    let dir = tempfile::tempdir().unwrap();
    let data = common::synthetic_hands(dir.path(), 3, 11, 1);
    let backbone = dir.path().join("hand-backbone.onnx");
    export_backbone(&BackboneSpec::hand(&hand_model), 224, &backbone).unwrap();
    let images: Vec<_> = data.images.iter().collect();
    let cache = extract(
        &images,
        &dir.path().join("features.safetensors"),
        &ExtractOptions {
            backbone,
            views: 2,
            seed: 0,
            batch_size: 16,
            runtime: RuntimeOptions::default(),
            progress: false,
        },
    )
    .unwrap();
    assert_eq!(
        cache.images.len(),
        images.len(),
        "a synthetic hand was not found"
    );
    assert_eq!(
        cache.eval.shape(),
        &[images.len(), GEOMETRY_DIM + POOLED_DIM]
    );
    assert_eq!(
        cache.views.shape(),
        &[images.len(), 2, GEOMETRY_DIM + POOLED_DIM]
    );
    assert!(cache.key.alignment.is_some());
    // Normalised distances average to one; the views differ from the evaluation crop.
    for row in cache.eval.rows() {
        let mean = row.iter().take(210).sum::<f32>() / 210.0;
        assert!((mean - 1.0).abs() < 1e-4, "{mean}");
    }
    let diff: f32 = (&cache.views.slice(ndarray::s![.., 0, ..]) - &cache.eval)
        .iter()
        .map(|x| x.abs())
        .sum();
    assert!(diff > 0.0);
}
