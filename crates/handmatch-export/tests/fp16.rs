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
use handmatch_export::onnx::{Dim, GraphBuilder};
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
