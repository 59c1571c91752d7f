//! Turning a finished graph into a model file: opset, metadata, the weights' hash, and an
//! atomic write (a crash or an error never leaves a half-written model behind).

use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;
use sha2::{Digest, Sha256};

use super::proto::{
    tensor_proto::DataLocation, GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto,
};
use handmatch_core::atomic_file::AtomicFile;

/// Opset 17 is the first with LayerNormalization; ONNX Runtime's CPU and CUDA providers
/// both implement every operator used here at this opset.
pub const OPSET: i64 = 17;
/// IR version 8 is the one that goes with opset 17.
const IR_VERSION: i64 = 8;
/// Protobuf messages cannot exceed 2 GiB; past this many bytes of weights (DINOv2-giant),
/// the tensors go to a `.data` file beside the model, ONNX's external-data format.
const INLINE_LIMIT: usize = 1 << 30;

#[derive(Clone)]
pub struct ModelFile {
    pub graph: GraphProto,
    pub metadata: Vec<(String, String)>,
}

impl ModelFile {
    pub fn new(graph: GraphProto) -> Self {
        Self {
            graph,
            metadata: Vec::new(),
        }
    }

    /// A hash of the graph: every node and every weight. Two artefacts share an id only if
    /// they compute the same function, so embeddings from different ids are never compared.
    pub fn model_id(&self) -> String {
        let mut h = Sha256::new();
        for node in &self.graph.node {
            h.update(node.encode_to_vec());
        }
        for t in &self.graph.initializer {
            h.update(t.name().as_bytes());
            for d in &t.dims {
                h.update(d.to_le_bytes());
            }
            h.update(t.data_type().to_le_bytes());
            h.update(t.raw_data());
        }
        for v in self.graph.input.iter().chain(&self.graph.output) {
            h.update(v.encode_to_vec());
        }
        hex::encode(&h.finalize()[..12])
    }

    /// Writes the model to `path` through a temporary file and a rename.
    pub fn save(mut self, path: &Path) -> std::io::Result<()> {
        let weight_bytes: usize = self
            .graph
            .initializer
            .iter()
            .map(|t| t.raw_data().len())
            .sum();
        let mut data_file = None;
        if weight_bytes > INLINE_LIMIT {
            let data_path = external_data_path(path);
            let location = data_path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mut data = AtomicFile::create(&data_path)?;
            let mut offset = 0u64;
            for t in &mut self.graph.initializer {
                let Some(raw) = t.raw_data.take() else {
                    continue;
                };
                data.write_all(&raw)?;
                t.data_location = Some(DataLocation::External as i32);
                t.external_data = vec![
                    entry("location", &location),
                    entry("offset", &offset.to_string()),
                    entry("length", &raw.len().to_string()),
                ];
                offset += raw.len() as u64;
            }
            data_file = Some(data);
        }
        let model = ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(OPSET),
            }],
            producer_name: Some("handmatch-train".into()),
            producer_version: Some(env!("CARGO_PKG_VERSION").into()),
            graph: Some(self.graph),
            metadata_props: self.metadata.iter().map(|(k, v)| entry(k, v)).collect(),
            ..Default::default()
        };
        let mut file = AtomicFile::create(path)?;
        file.write_all(&model.encode_to_vec())?;
        if let Some(data) = data_file {
            data.commit()?;
        }
        file.commit()
    }
}

pub fn external_data_path(model: &Path) -> PathBuf {
    let mut name = model.file_name().unwrap_or_default().to_os_string();
    name.push(".data");
    model.with_file_name(name)
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: Some(key.to_string()),
        value: Some(value.to_string()),
    }
}
