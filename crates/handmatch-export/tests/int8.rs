//! int8 artefacts: the rewrite leaves no fp32 weight product behind, ONNX Runtime fuses
//! what it wrote into its int8 kernel, the embeddings stay within the quality gate of the
//! fp32 artefact, and the gate refuses a quantisation that is deliberately too coarse.

mod common;

use handmatch_core::embed::metadata::Precision;
use handmatch_core::embed::{EmbeddingSession, RuntimeOptions};
use handmatch_export::error::ExportError;
use handmatch_export::onnx::optimised::optimised_op_counts;
use handmatch_export::onnx::proto::ModelProto;
use handmatch_export::onnx::quantize::QuantizeOptions;
use handmatch_export::precision::to_int8;
use handmatch_export::quality_gate::{compare, Calibration, MIN_COSINE};
use handmatch_export::random_init::Arch;
use prost::Message;

const IMAGE_SIZE: usize = common::ARTEFACT_SIZE;

fn op_count(model: &ModelProto, op: &str) -> usize {
    let graph = model.graph.as_ref().unwrap();
    graph.node.iter().filter(|n| n.op_type() == op).count()
}

#[test]
fn int8_artefact_is_fused_by_onnx_runtime_and_stays_within_the_gate() {
    let tmp = tempfile::tempdir().unwrap();
    let (fp32, fp32_meta) = common::fp32_artefact(Arch::Dinov2Tiny, tmp.path());
    let fp32_path = tmp.path().join("fp32.onnx");
    fp32.clone().save(&fp32_path).unwrap();
    let matmuls = fp32
        .graph
        .node
        .iter()
        .filter(|n| n.op_type() == "MatMul")
        .count();

    let (mut int8, mut meta) = (fp32, fp32_meta.clone());
    let report = to_int8(&mut int8, &mut meta, QuantizeOptions::default());
    // Two layers × (qkv, output, two MLP products); the attention products of two
    // activations and the head's two layers stay fp32.
    assert_eq!(report.matmuls, 2 * 4, "{report:?}");
    assert_eq!(report.head_matmuls_kept, 2, "{report:?}");
    assert!(report.int8_bytes * 4 == report.fp32_bytes, "{report:?}");
    let int8_path = tmp.path().join("int8.onnx");
    int8.save(&int8_path).unwrap();

    let written = ModelProto::decode(std::fs::read(&int8_path).unwrap().as_slice()).unwrap();
    assert_eq!(op_count(&written, "MatMulInteger"), report.matmuls);
    assert_eq!(op_count(&written, "MatMul"), matmuls - report.matmuls);
    let graph = written.graph.as_ref().unwrap();
    let head_products = graph
        .node
        .iter()
        .filter(|n| n.op_type() == "MatMul" && n.input[1].starts_with("head."))
        .count();
    assert_eq!(head_products, 2, "the head's products are not fp32 MatMuls");
    // Each product reads a different activation (q, k and v are one product already), so
    // each quantises its own.
    assert_eq!(op_count(&written, "DynamicQuantizeLinear"), report.matmuls);
    let fused = optimised_op_counts(&int8_path, tmp.path()).unwrap();
    assert_eq!(
        fused.get("DynamicQuantizeMatMul"),
        Some(&report.matmuls),
        "ONNX Runtime did not fuse every int8 product: {fused:?}"
    );
    assert_eq!(fused.get("MatMulInteger"), None, "{fused:?}");

    let mut session = EmbeddingSession::open(&int8_path, &RuntimeOptions::default()).unwrap();
    assert_eq!(session.metadata().precision, Precision::Int8);
    assert_eq!(session.metadata(), &meta);
    assert_ne!(meta.model_id, fp32_meta.model_id);
    // An image's embedding does not depend on the batch it rides in.
    let imgs = common::images(3, IMAGE_SIZE, 4);
    let batch = session.embed(imgs.view()).unwrap();
    for i in 0..3 {
        let alone = session
            .embed(imgs.slice(ndarray::s![i..i + 1, .., .., ..]))
            .unwrap();
        assert_eq!(alone.row(0), batch.row(i), "image {i}");
    }
    drop(session);

    let calibration = Calibration::synthetic(0).unwrap();
    let gate = compare(
        &fp32_path,
        &int8_path,
        &calibration,
        &RuntimeOptions::default(),
    )
    .unwrap();
    assert_eq!(gate.images, 16);
    assert!(
        gate.worst_cosine >= MIN_COSINE && gate.worst_cosine < 1.0,
        "cosine int8 vs fp32: worst {:.5} ({}), mean {:.5}",
        gate.worst_cosine,
        gate.worst_image,
        gate.mean_cosine
    );
    gate.check().unwrap();
}

#[test]
fn the_gate_refuses_a_deliberately_broken_quantisation() {
    let tmp = tempfile::tempdir().unwrap();
    let (fp32, fp32_meta) = common::fp32_artefact(Arch::Dinov2Tiny, tmp.path());
    let fp32_path = tmp.path().join("fp32.onnx");
    fp32.clone().save(&fp32_path).unwrap();
    // Three weight levels (−1, 0, 1) per column: far too coarse.
    let (mut broken, mut meta) = (fp32, fp32_meta);
    to_int8(&mut broken, &mut meta, QuantizeOptions { weight_max: 1 });
    let broken_path = tmp.path().join("broken.onnx");
    broken.save(&broken_path).unwrap();
    let calibration = Calibration::synthetic(1).unwrap();
    let gate = compare(
        &fp32_path,
        &broken_path,
        &calibration,
        &RuntimeOptions::default(),
    )
    .unwrap();
    let worst = gate.worst_cosine;
    let err = gate.check().unwrap_err();
    assert!(matches!(err, ExportError::QualityGate { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("quality gate")
            && message.contains(&format!("{worst:.4}"))
            && message.contains("Hand_"),
        "{message}"
    );
}
