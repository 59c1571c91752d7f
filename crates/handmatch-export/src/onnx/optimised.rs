//! What ONNX Runtime really runs: a model's graph after its optimisations (the fusions the
//! int8 rewrites rely on), counted by operator.

use std::collections::BTreeMap;
use std::path::Path;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use prost::Message;

use super::proto::ModelProto;
use crate::error::{ExportError, Result};

/// How many nodes of each operator the optimised graph of the model at `path` holds; the
/// optimised model is written into `scratch`.
pub fn optimised_op_counts(path: &Path, scratch: &Path) -> Result<BTreeMap<String, usize>> {
    let out = scratch.join("optimised.onnx");
    let failed = |e: &dyn std::fmt::Display| ExportError::Runtime {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let env = handmatch_core::embed::runtime::environment(None).map_err(|e| failed(&e))?;
    Session::builder(env)
        .and_then(|b| {
            b.with_optimization_level(GraphOptimizationLevel::All)
                .map_err(Into::into)
        })
        .and_then(|b| b.with_optimized_model_path(&out).map_err(Into::into))
        .and_then(|mut b| b.commit_from_file(path))
        .map_err(|e| failed(&e))?;
    let bytes = std::fs::read(&out).map_err(ExportError::io(&out))?;
    let model = ModelProto::decode(bytes.as_slice()).map_err(|e| failed(&e))?;
    let mut counts = BTreeMap::new();
    for n in model.graph.unwrap_or_default().node {
        *counts.entry(n.op_type().to_string()).or_insert(0) += 1;
    }
    Ok(counts)
}
