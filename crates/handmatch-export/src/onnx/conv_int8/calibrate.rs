//! Running the fp32 graph on calibration inputs with chosen inner values as extra outputs,
//! and keeping what each value showed (`TensorStats`).

use std::collections::HashMap;
use std::path::PathBuf;

use handmatch_core::embed::runtime::{open_model, ModelSource, SessionSharing};
use handmatch_core::embed::RuntimeOptions;
use ndarray::Array4;
use ort::value::TensorRef;
use prost::Message;

use super::stats::TensorStats;
use crate::error::{ExportError, Result};
use crate::onnx::graph::float_of_any_shape;
use crate::onnx::proto::ModelProto;

/// The statistics of `values` (inner values of `model`) over `batches` fed to its only
/// input.
pub fn statistics(
    model: &ModelProto,
    values: &[String],
    batches: &[Array4<f32>],
    runtime: &RuntimeOptions,
) -> Result<HashMap<String, TensorStats>> {
    let mut probe = model.clone();
    let graph = probe.graph.as_mut().expect("a model with a graph");
    let input = graph
        .input
        .first()
        .map(|v| v.name().to_string())
        .unwrap_or_default();
    let returned: Vec<String> = graph.output.iter().map(|v| v.name().to_string()).collect();
    // The input is read from the batch itself; everything else from the run.
    graph.output.extend(
        values
            .iter()
            .filter(|v| !returned.contains(v) && **v != input)
            .map(|v| float_of_any_shape(v)),
    );
    let failed = |e: &dyn std::fmt::Display| ExportError::Runtime {
        path: PathBuf::from("calibration"),
        reason: e.to_string(),
    };
    let bytes = probe.encode_to_vec();
    let (mut session, _) = open_model(
        ModelSource::Bytes(&bytes),
        runtime,
        &SessionSharing::default(),
    )
    .map_err(|e| failed(&e))?;
    let mut stats: HashMap<String, TensorStats> = HashMap::new();
    for batch in batches {
        let tensor = TensorRef::from_array_view(batch.view()).map_err(|e| failed(&e))?;
        let outputs = session
            .run(ort::inputs![input.as_str() => tensor])
            .map_err(|e| failed(&e))?;
        if values.contains(&input) {
            stats
                .entry(input.clone())
                .or_default()
                .observe(batch.view().into_dyn());
        }
        for v in values.iter().filter(|v| **v != input) {
            let array = outputs[v.as_str()]
                .try_extract_array::<f32>()
                .map_err(|e| failed(&e))?;
            stats.entry(v.clone()).or_default().observe(array.view());
        }
    }
    Ok(stats)
}
