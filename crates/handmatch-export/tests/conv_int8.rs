//! Static int8 of a convolutional network (the hand landmark network's operators, small):
//! equalisation keeps the function, the whole rewrite stays close to fp32, every quantised
//! convolution becomes ONNX Runtime's int8 kernel, and values read from outside keep their
//! names.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use handmatch_core::embed::runtime::{open_model, ModelSource, SessionSharing};
use handmatch_core::embed::RuntimeOptions;
use handmatch_export::onnx::conv_int8::calibrate::statistics;
use handmatch_export::onnx::conv_int8::equalise::{equalise, pair_inputs, relu6_pairs};
use handmatch_export::onnx::conv_int8::qdq::QdqOptions;
use handmatch_export::onnx::conv_int8::{quantise_network, ConvInt8Options};
use handmatch_export::onnx::graph::float_of_any_shape;
use handmatch_export::onnx::optimised::optimised_op_counts;
use handmatch_export::onnx::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, AttributeProto, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, TensorProto,
};
use ndarray::{Array2, Array4, Axis};
use ort::value::TensorRef;
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SIDE: usize = 16;

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![name.to_string()],
        attribute: attrs,
        ..Default::default()
    }
}

/// A small MobileNet-like network: a 3×3 stem, a depthwise 3×3, a projection added back
/// to the stem's output (the value `residual`, returned too, as a hand artefact's local
/// maps are read), an expansion and a global mean. Channel scales spread over 100×, as in
/// the hand network, so one u8 scale per value loses the small ones without equalisation.
fn network(seed: u64) -> ModelProto {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut weights = Vec::new();
    let mut conv = |name: &str, out: usize, per: usize, k: usize, spread: bool| {
        let w: Vec<f32> = (0..out * per * k * k)
            .map(|i| {
                let channel_scale = if spread {
                    10f32.powf((i / (per * k * k)) as f32 % 3.0 - 1.0)
                } else {
                    1.0
                };
                rng.random_range(-1.0..1.0) * channel_scale / ((per * k * k) as f32).sqrt()
            })
            .collect();
        let b: Vec<f32> = (0..out).map(|_| rng.random_range(-0.1..0.3)).collect();
        weights.push(float_tensor(
            &format!("{name}.w"),
            &[out as i64, per as i64, k as i64, k as i64],
            &w,
        ));
        weights.push(float_tensor(&format!("{name}.b"), &[out as i64], &b));
    };
    conv("stem", 8, 3, 3, true);
    conv("dw", 8, 1, 3, true);
    conv("proj", 8, 8, 1, false);
    conv("expand", 16, 8, 1, false);
    weights.push(float_tensor("zero", &[], &[0.0]));
    weights.push(float_tensor("six", &[], &[6.0]));
    let c = |name: &str, input: &str, k: i64, groups: i64| {
        node(
            "Conv",
            name,
            &[input, &format!("{name}.w"), &format!("{name}.b")],
            vec![
                ints("kernel_shape", &[k, k]),
                ints("pads", &[k / 2; 4]),
                int("group", groups),
            ],
        )
    };
    let clip = |name: &str, input: &str| node("Clip", name, &[input, "zero", "six"], vec![]);
    let nodes = vec![
        c("stem", "image", 3, 1),
        clip("stem_relu6", "stem"),
        c("dw", "stem_relu6", 3, 8),
        clip("dw_relu6", "dw"),
        c("proj", "dw_relu6", 1, 1),
        node("Add", "residual", &["proj", "stem_relu6"], vec![]),
        c("expand", "residual", 1, 1),
        clip("expand_relu6", "expand"),
        node(
            "ReduceMean",
            "pooled",
            &["expand_relu6"],
            vec![ints("axes", &[2, 3]), int("keepdims", 0)],
        ),
    ];
    ModelProto {
        ir_version: Some(7),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(11),
        }],
        graph: Some(GraphProto {
            name: Some("small".into()),
            node: nodes,
            initializer: weights,
            input: vec![float_of_any_shape("image")],
            output: vec![float_of_any_shape("pooled"), float_of_any_shape("residual")],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn inputs(n: usize, seed: u64) -> Vec<Array4<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| Array4::from_shape_fn((4, 3, SIDE, SIDE), |_| rng.random_range(0.0..1.0)))
        .collect()
}

/// `pooled` and `residual`, flattened per image.
fn run(model: &ModelProto, batch: &Array4<f32>) -> [Array2<f32>; 2] {
    let bytes = model.encode_to_vec();
    let (mut s, _) = open_model(
        ModelSource::Bytes(&bytes),
        &RuntimeOptions::default(),
        &SessionSharing::default(),
    )
    .unwrap();
    let out = s
        .run(ort::inputs!["image" => TensorRef::from_array_view(batch.view()).unwrap()])
        .unwrap();
    ["pooled", "residual"].map(|name| {
        let a = out[name].try_extract_array::<f32>().unwrap();
        let n = a.shape()[0];
        a.to_owned()
            .into_shape_with_order((n, a.len() / n))
            .unwrap()
    })
}

fn worst_cosine(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    a.axis_iter(Axis(0))
        .zip(b.axis_iter(Axis(0)))
        .map(|(x, y)| x.dot(&y) / (x.dot(&x).sqrt() * y.dot(&y).sqrt()))
        .fold(1.0, f32::min)
}

fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    (a - b).iter().fold(0.0, |m, v| m.max(v.abs()))
}

#[test]
fn equalisation_changes_the_weights_but_not_the_function() {
    let fp32 = network(1);
    let calibration = inputs(4, 2);
    let mut equalised = fp32.clone();
    let graph = equalised.graph.as_mut().unwrap();
    let pairs = relu6_pairs(graph, &["residual"]);
    // dw → proj only: the stem's Clip is read by the addition too, expand's by the mean.
    assert_eq!(pairs.len(), 1, "{pairs:?}");
    let stats = statistics(
        &fp32,
        &pair_inputs(graph, &pairs),
        &calibration,
        &RuntimeOptions::default(),
    )
    .unwrap();
    let moved = equalise(graph, &pairs, &stats).unwrap();
    assert!(moved > 0, "no channel moved");
    assert_ne!(
        fp32.graph.as_ref().unwrap().initializer,
        equalised.graph.as_ref().unwrap().initializer
    );
    for batch in &calibration {
        let ([p0, r0], [p1, r1]) = (run(&fp32, batch), run(&equalised, batch));
        let scale = p0.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            max_abs_diff(&p0, &p1) <= 1e-4 * scale,
            "pooled moved by {}",
            max_abs_diff(&p0, &p1)
        );
        let scale = r0.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            max_abs_diff(&r0, &r1) <= 1e-4 * scale,
            "residual moved by {}",
            max_abs_diff(&r0, &r1)
        );
    }
}

fn quantised(
    corrections: bool,
    keep_fp32: &[&str],
) -> (
    ModelProto,
    handmatch_export::onnx::conv_int8::ConvInt8Report,
) {
    let mut model = network(1);
    let opts = ConvInt8Options {
        qdq: QdqOptions {
            weight_max: 127,
            keep_fp32: keep_fp32.iter().map(|s| s.to_string()).collect(),
        },
        keep_values: vec!["residual".into()],
        corrections,
    };
    let report =
        quantise_network(&mut model, &inputs(8, 2), &opts, &RuntimeOptions::default()).unwrap();
    (model, report)
}

/// The op types of `model` after ONNX Runtime's optimisations, counted.
fn optimised_ops(model: &ModelProto, dir: &Path) -> BTreeMap<String, usize> {
    let src = dir.join("in.onnx");
    std::fs::write(&src, model.encode_to_vec()).unwrap();
    optimised_op_counts(&src, dir).unwrap()
}

#[test]
fn the_int8_network_stays_close_to_fp32_and_runs_on_int8_kernels() {
    let fp32 = network(1);
    let (int8, report) = quantised(true, &["stem"]);
    assert_eq!(
        (report.qdq.convs, report.qdq.adds, report.qdq.kept_fp32),
        (3, 1, 1),
        "{report:?}"
    );
    assert_eq!(report.equalised_pairs, 1, "{report:?}");
    assert_eq!(report.bias_corrected_convs, 3, "{report:?}");
    assert_eq!(report.calibration_images, 32);
    assert_eq!(int8.opset_import[0].version, Some(13));
    let graph = int8.graph.as_ref().unwrap();
    assert!(graph
        .node
        .iter()
        .any(|n| n.output == ["residual"] && n.op_type() == "DequantizeLinear"));
    let held_out = inputs(2, 99);
    let mut worst = [1.0f32; 2];
    for batch in &held_out {
        let (a, b) = (run(&fp32, batch), run(&int8, batch));
        for k in 0..2 {
            worst[k] = worst[k].min(worst_cosine(&a[k], &b[k]));
        }
    }
    assert!(
        worst[0] >= 0.99 && worst[0] < 1.0,
        "pooled: worst cosine {}",
        worst[0]
    );
    assert!(
        worst[1] >= 0.99 && worst[1] < 1.0,
        "residual: worst cosine {}",
        worst[1]
    );

    let tmp = tempfile::tempdir().unwrap();
    let ops = optimised_ops(&int8, tmp.path());
    assert_eq!(ops.get("QLinearConv"), Some(&3), "{ops:?}");
    let fp32_convs = ops.get("Conv").unwrap_or(&0) + ops.get("FusedConv").unwrap_or(&0);
    assert_eq!(fp32_convs, 1, "only the stem stays fp32: {ops:?}");
    assert_eq!(ops.get("QLinearAdd"), Some(&1), "{ops:?}");
}

#[test]
fn a_missing_range_is_refused_naming_the_value() {
    let mut model = network(1);
    let graph = model.graph.as_mut().unwrap();
    let err = handmatch_export::onnx::conv_int8::qdq::quantise(
        graph,
        &HashMap::new(),
        &QdqOptions {
            weight_max: 127,
            keep_fp32: vec![],
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no statistics for `image`"),
        "{err}"
    );
}

#[test]
fn convolutions_sharing_a_weight_stay_fp32_and_the_graph_still_runs() {
    let mut model = network(1);
    let graph = model.graph.as_mut().unwrap();
    // A second projection reading the first one's weights and bias.
    graph.node.push(node(
        "Conv",
        "proj_again",
        &["residual", "proj.w", "proj.b"],
        vec![ints("kernel_shape", &[1, 1])],
    ));
    graph.output.push(float_of_any_shape("proj_again"));
    let opts = ConvInt8Options {
        qdq: QdqOptions {
            weight_max: 127,
            keep_fp32: vec!["stem".into()],
        },
        keep_values: vec!["residual".into()],
        corrections: true,
    };
    let report =
        quantise_network(&mut model, &inputs(2, 2), &opts, &RuntimeOptions::default()).unwrap();
    // dw and expand; proj and proj_again share theirs.
    assert_eq!(report.qdq.convs, 2, "{report:?}");
    let [pooled, residual] = run(&model, &inputs(1, 5)[0]);
    assert!(pooled.iter().chain(residual.iter()).all(|v| v.is_finite()));
}
