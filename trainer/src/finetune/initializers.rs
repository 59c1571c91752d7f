//! ONNX initialisers as candle tensors and back: the weights the translated network starts
//! from, and the fine-tuned values written into a copy of the same graph.

use std::collections::HashMap;

use candle_core::{Device, Result, Tensor};
use handmatch_export::onnx::proto::{tensor_proto::DataType, GraphProto, TensorProto};

/// `t` as an f32 tensor (raw little-endian bytes or `float_data`, as exporters write them).
pub fn to_tensor(t: &TensorProto, device: &Device) -> Result<Tensor> {
    if t.data_type() != DataType::Float as i32 {
        candle_core::bail!(
            "initialiser `{}` is data type {}, not float",
            t.name(),
            t.data_type()
        );
    }
    let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let values: Vec<f32> = match t.raw_data.as_deref() {
        Some(raw) if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        _ => t.float_data.clone(),
    };
    Tensor::from_vec(values, shape, device)
}

/// Every float initialiser of `graph`, by name.
pub fn read_all(graph: &GraphProto, device: &Device) -> Result<HashMap<String, Tensor>> {
    graph
        .initializer
        .iter()
        .filter(|t| t.data_type() == DataType::Float as i32)
        .map(|t| Ok((t.name().to_string(), to_tensor(t, device)?)))
        .collect()
}

/// Replaces the values of the named initialisers of `graph`; their shapes must not change.
pub fn replace(graph: &mut GraphProto, values: &HashMap<String, Tensor>) -> Result<()> {
    for t in &mut graph.initializer {
        let Some(value) = values.get(t.name()) else {
            continue;
        };
        let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        if value.dims() != dims.as_slice() {
            candle_core::bail!(
                "initialiser `{}`: shape {:?}, new value {:?}",
                t.name(),
                dims,
                value.dims()
            );
        }
        let data: Vec<f32> = value.flatten_all()?.to_vec1()?;
        t.raw_data = Some(data.iter().flat_map(|v| v.to_le_bytes()).collect());
        t.float_data.clear();
    }
    Ok(())
}
