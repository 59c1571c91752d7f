//! Turning a finished fp32 artefact into an int8 one: the graph rewrite, then the metadata
//! that says so (a new model id, since the function it computes has changed).

use handmatch_core::embed::metadata::{keys, ArtefactMetadata, Precision};

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
    meta.precision = Precision::Int8;
    meta.model_id = model.model_id();
    model.metadata = meta.to_props();
    report
}

/// Records the quantisation and what its gate measured in the artefact's metadata.
pub fn record_gate(model: &mut ModelFile, quantized: &QuantizeReport, gate: &GateReport) {
    let summary = serde_json::json!({
        "weights": "int8, symmetric per output column",
        "activations": "uint8, quantised at run time (DynamicQuantizeLinear)",
        "matmuls": quantized.matmuls,
        "head_matmuls_kept_fp32": quantized.head_matmuls_kept,
        "fp32_weight_bytes": quantized.fp32_bytes,
        "int8_weight_bytes": quantized.int8_bytes,
        "gate": gate,
    });
    model.metadata.retain(|(k, _)| k != keys::QUANTIZATION);
    model
        .metadata
        .push((keys::QUANTIZATION.into(), summary.to_string()));
}
