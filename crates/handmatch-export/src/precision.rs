//! Turning a finished fp32 artefact into an int8 or fp16 one: the graph rewrite, then the
//! metadata that says so (a new model id, since the function it computes has changed).

use handmatch_core::embed::metadata::{keys, ArtefactMetadata, Precision};

use crate::error::Result;
use crate::onnx::half_precision::{convert_fp16, HalfReport};
use crate::onnx::quantize::{quantize_int8, QuantizeOptions, QuantizeReport};
use crate::onnx::ModelFile;
use crate::quality_gate::GateReport;

/// Quantises `model` in place and updates `meta` to match.
pub fn to_int8(
    model: &mut ModelFile,
    meta: &mut ArtefactMetadata,
    opts: QuantizeOptions,
) -> QuantizeReport {
    let report = quantize_int8(&mut model.graph, opts);
    relabel(model, meta, Precision::Int8);
    report
}

/// Converts `model`'s backbone to fp16 in place and updates `meta` to match; a graph that
/// cannot be converted is refused and left as it was.
pub fn to_fp16(model: &mut ModelFile, meta: &mut ArtefactMetadata) -> Result<HalfReport> {
    let report = convert_fp16(&mut model.graph)?;
    relabel(model, meta, Precision::Fp16);
    Ok(report)
}

fn relabel(model: &mut ModelFile, meta: &mut ArtefactMetadata, precision: Precision) {
    meta.precision = precision;
    meta.model_id = model.model_id();
    model.metadata = meta.to_props();
}

/// What the int8 rewrite did, for the artefact's metadata.
pub fn int8_summary(quantized: &QuantizeReport) -> serde_json::Value {
    serde_json::json!({
        "weights": "int8, symmetric per output column",
        "activations": "uint8, quantised at run time (DynamicQuantizeLinear)",
        "matmuls": quantized.matmuls,
        "head_matmuls_kept_fp32": quantized.head_matmuls_kept,
        "fp32_weight_bytes": quantized.fp32_bytes,
        "int8_weight_bytes": quantized.int8_bytes,
    })
}

/// What the fp16 conversion did, for the artefact's metadata.
pub fn fp16_summary(half: &HalfReport) -> serde_json::Value {
    serde_json::json!({
        "weights": "fp16 (backbone), fp32 (head)",
        "activations": "fp16 up to the head, fp32 from the head on",
        "fp16_nodes": half.fp16_nodes,
        "fp32_nodes": half.fp32_nodes,
        "fp16_weights": half.weights,
        "fp32_weight_bytes": half.fp32_bytes,
        "fp16_weight_bytes": half.fp16_bytes,
    })
}

/// Records how the artefact was made (`summary`) and what its gate measured in its metadata.
pub fn record_gate(model: &mut ModelFile, mut summary: serde_json::Value, gate: &GateReport) {
    summary["gate"] = serde_json::to_value(gate).expect("plain numbers serialise");
    model.metadata.retain(|(k, _)| k != keys::QUANTIZATION);
    model
        .metadata
        .push((keys::QUANTIZATION.into(), summary.to_string()));
}
