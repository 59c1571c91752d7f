//! The hand landmark network in static int8 (`onnx::conv_int8`), with the choices measured
//! on real hands (docs/performance.md): the stem convolution, which reads the image itself,
//! stays fp32 (quantised alone it moves the landmarks by 13.6 px on average); the Gemm heads
//! that compute the landmarks are never quantised; the local maps a hand artefact reads keep
//! their meaning (equalisation leaves them alone).

use std::path::Path;

use handmatch_core::embed::RuntimeOptions;
use ndarray::Array4;
use prost::Message;

use super::hand::INPUT;
use super::landmark_samples::ALL_MAPS;
use crate::error::{ExportError, Result};
use crate::onnx::conv_int8::qdq::QdqOptions;
use crate::onnx::conv_int8::{quantise_network, ConvInt8Options, ConvInt8Report};
use crate::onnx::proto::ModelProto;

#[derive(Debug, Clone, Copy)]
pub struct HandInt8Options {
    /// Largest quantised weight magnitude (1..=127).
    pub weight_max: i8,
    /// Quantise the stem convolution too.
    pub int8_stem: bool,
    /// Bounded equalisation and bias correction before quantising.
    pub corrections: bool,
}

/// The network at `path` rewritten to int8, calibrated on `batches` of its own input
/// (`[N, 3, 224, 224]` aligned crops in [0, 1]).
pub fn quantise_hand_network(
    path: &Path,
    batches: &[Array4<f32>],
    opts: HandInt8Options,
    runtime: &RuntimeOptions,
) -> Result<(ModelProto, ConvInt8Report)> {
    let bytes = std::fs::read(path).map_err(ExportError::io(path))?;
    let mut model = ModelProto::decode(bytes.as_slice()).map_err(|e| ExportError::Argument {
        field: "hand-model".into(),
        reason: format!("{}: not an ONNX model: {e}", path.display()),
    })?;
    let graph = model.graph.as_ref().ok_or_else(|| ExportError::Argument {
        field: "hand-model".into(),
        reason: format!("{}: no graph", path.display()),
    })?;
    let stem: Vec<String> = graph
        .node
        .iter()
        .filter(|n| n.op_type() == "Conv" && n.input.first().map(String::as_str) == Some(INPUT))
        .map(|n| n.name().to_string())
        .collect();
    let maps: Vec<String> = ALL_MAPS.iter().map(|m| m.tensor.to_string()).collect();
    let options = ConvInt8Options {
        qdq: QdqOptions {
            weight_max: opts.weight_max,
            keep_fp32: if opts.int8_stem { Vec::new() } else { stem },
        },
        keep_values: maps,
        corrections: opts.corrections,
    };
    let report = quantise_network(&mut model, batches, &options, runtime)?;
    Ok((model, report))
}
