//! The hand landmark network in static int8 (`quantize-hand`), on aligned synthetic hands:
//! it stays close to fp32 on crops it was not calibrated on, ONNX Runtime runs every
//! quantised convolution on its int8 kernel, and an artefact whose features it computes
//! passes the export's quality gate against the fp32 artefact while alignment stays fp32.

mod common;

use std::path::Path;

use common::hand_model;
use handmatch_core::embed::metadata::Precision;
use handmatch_core::embed::ArtefactMetadata;
use handmatch_core::embed::EmbeddingSession;
use handmatch_core::embed::RuntimeOptions;
use handmatch_export::artefact::{artefact_model, HeadSource};
use handmatch_export::backbone::hand_int8::HandInt8Options;
use handmatch_export::backbone::BackboneSpec;
use handmatch_export::onnx::optimised::optimised_op_counts;
use handmatch_export::onnx::proto::ModelProto;
use handmatch_export::onnx::quantize::DEFAULT_WEIGHT_MAX;
use handmatch_export::onnx::ModelFile;
use handmatch_export::quality_gate::MIN_COSINE;
use handmatch_trainer::artefact_writer::{
    hand_fp32_reference, write_artefact, PrecisionArgs, Reduced,
};
use handmatch_trainer::finetune::AlignedCrops;
use handmatch_trainer::hand_int8::{
    network_batches, quantise_and_compare, write_network, SUMMARY_KEY,
};
use handmatch_trainer::pipeline::export_backbone;
use prost::Message;

/// The default hand artefact (geometry and trunk) with a random head.
fn artefact(spec: &BackboneSpec) -> (ModelFile, ArtefactMetadata) {
    let head = HeadSource::Random {
        hidden: 64,
        embedding_dim: 32,
        seed: 1,
    };
    artefact_model(spec.open().unwrap().as_ref(), 224, head, None).unwrap()
}

#[test]
fn the_int8_hand_network_keeps_the_features_and_runs_on_int8_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synthetic_hands(dir.path(), 6, 11, 2);
    let images: Vec<_> = data.images.iter().collect();
    let aligner = dir.path().join("hand-backbone.onnx");
    export_backbone(&BackboneSpec::hand(hand_model()), 224, &aligner).unwrap();
    let runtime = RuntimeOptions::default();
    let crops = AlignedCrops::build(
        &images,
        &aligner,
        &dir.path().join("crops"),
        &runtime,
        false,
    )
    .unwrap();
    let half = crops.len() / 2;
    let (evaluation, calibration): (Vec<usize>, Vec<usize>) =
        ((0..half).collect(), (half..crops.len()).collect());
    let opts = HandInt8Options {
        weight_max: DEFAULT_WEIGHT_MAX,
        int8_stem: false,
        corrections: true,
    };
    let (int8, report, agreement) = quantise_and_compare(
        &hand_model(),
        &network_batches(&crops, &calibration),
        &network_batches(&crops, &evaluation),
        opts,
        &runtime,
    )
    .unwrap();
    // 47 convolutions, the stem kept fp32; 9 residual additions.
    assert_eq!(
        (report.qdq.convs, report.qdq.kept_fp32, report.qdq.adds),
        (46, 1, 9),
        "{report:?}"
    );
    assert!(
        report.equalised_pairs > 20 && report.bias_corrected_convs == 46,
        "{report:?}"
    );
    assert_eq!(agreement.images, half);
    // Calibrated on 24 synthetic crops here (on 128 real ones, docs/performance.md measures
    // a worst of 0.999 over 256); the artefact's own gate below holds at 0.99.
    assert!(
        agreement.pooled_cosine_mean >= 0.995 && agreement.pooled_cosine_worst >= 0.98,
        "{agreement:?}"
    );
    assert!(
        agreement.pooled_cosine_worst < 1.0,
        "nothing was quantised: {agreement:?}"
    );
    assert!(agreement.landmark_px_mean < 1.0, "{agreement:?}");

    let network = dir.path().join("hand-int8.onnx");
    write_network(int8, &serde_json::json!({"report": report}), &network).unwrap();
    let written = ModelProto::decode(std::fs::read(&network).unwrap().as_slice()).unwrap();
    assert!(written
        .metadata_props
        .iter()
        .any(|p| p.key() == SUMMARY_KEY));
    let ops = optimised_op_counts(&network, dir.path()).unwrap();
    assert_eq!(ops.get("QLinearConv"), Some(&46), "{ops:?}");
    let fp32_convs = ops.get("Conv").unwrap_or(&0) + ops.get("FusedConv").unwrap_or(&0);
    assert_eq!(fp32_convs, 1, "{ops:?}");

    // `export --precision int8` with it: gated against the artefact on the fp32 network.
    let int8_precision = PrecisionArgs {
        precision: Some(Reduced::Int8),
        calibration: None,
    };
    let spec = BackboneSpec {
        hand_embedding: Some(network.clone()),
        ..BackboneSpec::hand(hand_model())
    };
    let reference = hand_fp32_reference(&spec, &int8_precision, |s| Ok(artefact(s).0)).unwrap();
    assert!(reference.is_some());
    let (model, meta) = artefact(&spec);
    let out = dir.path().join("int8.onnx");
    let written = write_artefact(model, meta, reference, &out, &int8_precision, &runtime).unwrap();
    assert_eq!(written.precision, Precision::Int8);
    let session = EmbeddingSession::open(&out, &runtime).unwrap();
    assert_eq!(session.metadata(), &written);
    let gate = &session_quantization(&out)["gate"];
    let worst = gate["worst_cosine"].as_f64().unwrap();
    assert!((MIN_COSINE as f64..1.0).contains(&worst), "{gate}");

    // Without an int8 network, a hand artefact has nothing to quantise: refused, naming
    // the command that makes one.
    let plain = BackboneSpec::hand(hand_model());
    assert!(
        hand_fp32_reference(&plain, &int8_precision, |_| unreachable!())
            .unwrap()
            .is_none()
    );
    let (model, meta) = artefact(&plain);
    let refused = dir.path().join("refused.onnx");
    let err = write_artefact(model, meta, None, &refused, &int8_precision, &runtime).unwrap_err();
    assert!(err.to_string().contains("quantize-hand"), "{err}");
    assert!(!refused.exists());
}

/// The `quantization` metadata of an artefact file.
fn session_quantization(path: &Path) -> serde_json::Value {
    let model = ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap();
    let value = model
        .metadata_props
        .iter()
        .find(|p| p.key() == handmatch_core::embed::metadata::keys::QUANTIZATION)
        .unwrap()
        .value()
        .to_string();
    serde_json::from_str(&value).unwrap()
}
