//! The whole static int8 rewrite of a network, calibrated on its own inputs: equalise,
//! correct the biases, quantise, each step measured on the graph the previous one left.

use std::collections::HashMap;

use handmatch_core::embed::RuntimeOptions;
use ndarray::Array4;

use super::bias::{conv_inputs, correct, corrected_convs};
use super::calibrate::statistics;
use super::equalise::{equalise, pair_inputs, relu6_pairs};
use super::qdq::{quantise, quantised_values, QdqOptions, QdqReport};
use crate::error::Result;
use crate::onnx::proto::{ModelProto, OperatorSetIdProto};

/// The opset whose `DequantizeLinear` takes per-channel scales (`axis`).
pub const MIN_OPSET: i64 = 13;

#[derive(Debug, Clone)]
pub struct ConvInt8Options {
    pub qdq: QdqOptions,
    /// Values read from outside the graph, whose meaning equalisation must not change.
    pub keep_values: Vec<String>,
    /// Equalise and correct biases (off: plain QDQ, for comparison).
    pub corrections: bool,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ConvInt8Report {
    /// Conv → Clip → Conv pairs equalised, and the channels that moved.
    pub equalised_pairs: usize,
    pub equalised_channels: usize,
    pub bias_corrected_convs: usize,
    pub calibration_images: usize,
    #[serde(flatten)]
    pub qdq: QdqReport,
}

/// Rewrites `model` (an fp32 network with one image input) into static int8, calibrated
/// on `batches`.
pub fn quantise_network(
    model: &mut ModelProto,
    batches: &[Array4<f32>],
    opts: &ConvInt8Options,
    runtime: &RuntimeOptions,
) -> Result<ConvInt8Report> {
    raise_opset(model);
    let mut report = ConvInt8Report {
        calibration_images: batches.iter().map(|b| b.shape()[0]).sum(),
        ..Default::default()
    };
    if opts.corrections {
        let keep: Vec<&str> = opts.keep_values.iter().map(String::as_str).collect();
        let pairs = relu6_pairs(graph(model), &keep);
        let stats = statistics(model, &pair_inputs(graph(model), &pairs), batches, runtime)?;
        report.equalised_pairs = pairs.len();
        report.equalised_channels = equalise(graph_mut(model), &pairs, &stats)?;
        let convs = corrected_convs(graph(model), &opts.qdq.keep_fp32);
        let stats = statistics(model, &conv_inputs(graph(model), &convs), batches, runtime)?;
        correct(graph_mut(model), &convs, &stats, opts.qdq.weight_max)?;
        report.bias_corrected_convs = convs.len();
    }
    let values = quantised_values(graph(model), &opts.qdq.keep_fp32);
    let ranges: HashMap<_, _> = statistics(model, &values, batches, runtime)?;
    report.qdq = quantise(graph_mut(model), &ranges, &opts.qdq)?;
    Ok(report)
}

fn graph(model: &ModelProto) -> &crate::onnx::proto::GraphProto {
    model.graph.as_ref().expect("a model with a graph")
}

fn graph_mut(model: &mut ModelProto) -> &mut crate::onnx::proto::GraphProto {
    model.graph.as_mut().expect("a model with a graph")
}

/// The default domain's opset at least `MIN_OPSET`: the operators a hand network uses
/// (Conv, Clip, Add, Gemm, Sigmoid, ReduceMean, Flatten) mean the same from opset 11 to 13.
fn raise_opset(model: &mut ModelProto) {
    match model
        .opset_import
        .iter_mut()
        .find(|o| o.domain.as_deref().unwrap_or("").is_empty())
    {
        Some(o) => o.version = Some(o.version().max(MIN_OPSET)),
        None => model.opset_import.push(OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(MIN_OPSET),
        }),
    }
}
