//! fp16 artefacts: the backbone's weights become fp16 and the head's stay fp32, ONNX Runtime
//! loads and runs the result (on the CPU by casting back, as it would natively on a GPU),
//! its embeddings stay within the quality gate of fp32, and a graph with an operator the
//! conversion does not know is refused untouched.

mod common;

use handmatch_core::embed::metadata::Precision;
use handmatch_core::embed::{EmbeddingSession, RuntimeOptions};
use handmatch_export::onnx::half_precision::convert_fp16;
use handmatch_export::onnx::proto::tensor_proto::DataType;
use handmatch_export::onnx::proto::ModelProto;
use handmatch_export::onnx::{Dim, GraphBuilder, ModelFile};
use handmatch_export::precision::to_fp16;
use handmatch_export::quality_gate::{compare, Calibration, MIN_COSINE};
use handmatch_export::random_init::Arch;
use prost::Message;

/// Float weights by precision: (fp16 weights, fp32 head weights, other fp32 tensors with
/// more than one element).
fn weight_types(model: &ModelProto) -> (usize, usize, Vec<String>) {
    let graph = model.graph.as_ref().unwrap();
    let (mut half, mut head, mut other) = (0, 0, Vec::new());
    for t in &graph.initializer {
        let name = t.name().to_string();
        match DataType::try_from(t.data_type()).unwrap() {
            DataType::Float16 => {
                assert!(!name.starts_with("head."), "head weight {name} is fp16");
                half += 1;
            }
            DataType::Float if name.starts_with("head.") => head += 1,
            // Scalars such as the L2 normalisation's epsilon belong to the fp32 tail.
            DataType::Float if t.dims.iter().product::<i64>() > 1 => other.push(name),
            _ => {}
        }
    }
    (half, head, other)
}

fn converts_and_passes_the_gate(arch: Arch) {
    let tmp = tempfile::tempdir().unwrap();
    let (fp32, fp32_meta) = common::fp32_artefact(arch, tmp.path());
    let fp32_path = tmp.path().join("fp32.onnx");
    fp32.clone().save(&fp32_path).unwrap();

    let (mut half, mut meta) = (fp32, fp32_meta.clone());
    let report = to_fp16(&mut half, &mut meta).unwrap();
    assert!(
        report.fp16_nodes > 20 && report.fp32_nodes > 0,
        "{report:?}"
    );
    assert_eq!(report.fp16_bytes * 2, report.fp32_bytes, "{report:?}");
    let half_path = tmp.path().join("fp16.onnx");
    half.save(&half_path).unwrap();

    let written = ModelProto::decode(std::fs::read(&half_path).unwrap().as_slice()).unwrap();
    let (fp16_weights, head_weights, fp32_others) = weight_types(&written);
    assert_eq!(fp16_weights, report.weights);
    assert!(head_weights >= 2, "the head's weights are not fp32");
    assert!(
        fp32_others.is_empty(),
        "fp32 backbone weights left: {fp32_others:?}"
    );

    let session = EmbeddingSession::open(&half_path, &RuntimeOptions::default()).unwrap();
    assert_eq!(session.metadata().precision, Precision::Fp16);
    assert_eq!(session.metadata(), &meta);
    assert_ne!(meta.model_id, fp32_meta.model_id);
    drop(session);

    let calibration = Calibration::synthetic(0).unwrap();
    let gate = compare(
        &fp32_path,
        &half_path,
        &calibration,
        &RuntimeOptions::default(),
    )
    .unwrap();
    assert_eq!((gate.images, gate.precision.as_str()), (16, "fp16"));
    // fp16 rounds every weight and activation (11-bit significands): the result moves, but
    // far less than int8's.
    assert!(
        gate.worst_cosine >= 0.999 && gate.worst_cosine < 1.0,
        "cosine fp16 vs fp32: worst {:.6} ({}), mean {:.6}",
        gate.worst_cosine,
        gate.worst_image,
        gate.mean_cosine
    );
    assert!(gate.worst_cosine >= MIN_COSINE);
}

#[test]
fn an_fp16_dinov2_artefact_runs_and_stays_within_the_gate() {
    converts_and_passes_the_gate(Arch::Dinov2Tiny);
}

#[test]
fn an_fp16_resnet_artefact_runs_and_stays_within_the_gate() {
    converts_and_passes_the_gate(Arch::ResnetTiny);
}

#[test]
fn a_graph_with_an_operator_it_does_not_convert_is_refused_untouched() {
    let mut g = GraphBuilder::new();
    let x = g.input(
        "x",
        DataType::Float,
        &[Dim::Fixed(1), Dim::Fixed(1), Dim::Fixed(4), Dim::Fixed(4)],
    );
    let scale = g.const_f32("scale", &[1], vec![2.0]);
    let y = g.mul(&x, &scale);
    let roi = g.const_f32("roi", &[0], vec![]);
    let scales = g.const_f32("scales", &[4], vec![1.0, 1.0, 2.0, 2.0]);
    let up = g.op("Resize", &[&y, &roi, &scales], vec![]);
    g.output(
        &up,
        "y",
        DataType::Float,
        &[Dim::Fixed(1), Dim::Fixed(1), Dim::Fixed(8), Dim::Fixed(8)],
    );
    let mut graph = g.finish("resize");
    let before = graph.clone();
    let err = convert_fp16(&mut graph).unwrap_err().to_string();
    assert!(err.contains("Resize") && err.contains("fp32"), "{err}");
    assert_eq!(graph, before);
}

/// A small graph that takes every path of the rewrite the artefacts do not: a float graph
/// input read by fp16 nodes, a graph output an fp16 node produces, and a weight both
/// precisions read. Run by ONNX Runtime, the converted graph gives fp32 outputs equal to
/// the original's within fp16's rounding.
#[test]
fn graph_inputs_outputs_and_shared_weights_are_cast_at_the_boundary() {
    let mut g = GraphBuilder::new();
    let dims = [Dim::Fixed(2), Dim::Fixed(4)];
    let x = g.input("x", DataType::Float, &dims);
    // Not representable in fp16, so the converted weights differ from these.
    let scale = g.const_f32("scale", &[4], vec![0.1, -1.3, 2.7, 3.3]);
    let two = g.const_f32("two", &[1], vec![2.0]);
    let scaled = g.mul(&x, &scale);
    let features = g.add(&scaled, &x);
    let doubled = g.mul(&features, &two);
    g.output(&doubled, "features", DataType::Float, &dims);
    let head_w: Vec<f32> = (0..12).map(|i| i as f32 / 7.0 - 0.6).collect();
    let head_w = g.weight(
        "head.w",
        &handmatch_export::tensor::Tensor::new(vec![4, 3], head_w),
    );
    let projected = g.op("MatMul", &[&features, &head_w], vec![]);
    let embedding = g.mul(&projected, &two);
    g.output(
        &embedding,
        "embedding",
        DataType::Float,
        &[Dim::Fixed(2), Dim::Fixed(3)],
    );
    let fp32 = ModelFile::new(g.finish("boundaries"));
    let mut half = fp32.clone();
    let report = convert_fp16(&mut half.graph).unwrap();
    // Mul, Add, Mul and Identity(features) in fp16; MatMul, Mul and Identity(embedding)
    // in fp32.
    assert_eq!((report.fp16_nodes, report.fp32_nodes), (4, 3), "{report:?}");
    let names: Vec<&str> = half.graph.initializer.iter().map(|t| t.name()).collect();
    let copy = format!("{two}/fp16");
    assert!(
        names.contains(&two.as_str()) && names.contains(&copy.as_str()),
        "{names:?}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let x = ndarray::Array2::from_shape_fn((2, 4), |(i, j)| (i * 4 + j) as f32 * 0.37 - 1.1);
    let want = run(fp32, &tmp.path().join("fp32.onnx"), &x);
    let got = run(half, &tmp.path().join("fp16.onnx"), &x);
    for (name, (w, h)) in ["features", "embedding"].iter().zip(want.iter().zip(&got)) {
        assert_eq!(w.len(), h.len());
        for (a, b) in w.iter().zip(h) {
            assert!(
                (a - b).abs() <= 2e-3 * a.abs().max(1.0),
                "{name}: {a} vs {b}"
            );
        }
        // On the CPU ONNX Runtime computes these nodes in fp32 (it casts back and folds the
        // cast pairs), so what differs here is the weights' fp16 rounding.
        assert_ne!(w, h, "{name}: fp16 rounding changed nothing");
    }
}

/// The graph's `features` and `embedding` outputs (both fp32) for `x`.
fn run(model: ModelFile, path: &std::path::Path, x: &ndarray::Array2<f32>) -> Vec<Vec<f32>> {
    model.save(path).unwrap();
    let env = handmatch_core::embed::runtime::environment(None).unwrap();
    let mut session = ort::session::Session::builder(env)
        .unwrap()
        .commit_from_file(path)
        .unwrap();
    let input = ort::value::TensorRef::from_array_view(x.view()).unwrap();
    let out = session.run(ort::inputs!["x" => input]).unwrap();
    ["features", "embedding"]
        .iter()
        .map(|name| {
            let t = out[*name].try_extract_array::<f32>().unwrap();
            t.iter().copied().collect()
        })
        .collect()
}
