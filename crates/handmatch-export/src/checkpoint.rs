//! Hugging Face checkpoints: `config.json` plus `model.safetensors` (or a sharded
//! `model.safetensors.index.json`), read into float tensors by name.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde::de::DeserializeOwned;

use crate::error::{ExportError, Result};
use crate::tensor::Tensor;

pub struct Checkpoint {
    dir: PathBuf,
    config_path: PathBuf,
    config: serde_json::Value,
    tensors: HashMap<String, Tensor>,
    /// Non-float tensors (e.g. BatchNorm's `num_batches_tracked`), kept only to explain a
    /// request for one of them.
    other: HashMap<String, String>,
}

impl Checkpoint {
    pub fn open(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(ExportError::io(&config_path))?;
        let config: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| ExportError::Json {
                path: config_path.clone(),
                source,
            })?;
        let mut ckpt = Self {
            dir: dir.to_path_buf(),
            config_path,
            config,
            tensors: HashMap::new(),
            other: HashMap::new(),
        };
        for file in weight_files(dir)? {
            ckpt.load_file(&file)?;
        }
        Ok(ckpt)
    }

    fn load_file(&mut self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(ExportError::io(path))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| ExportError::Safetensors {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
                Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                other => {
                    self.other.insert(name, format!("{other:?}"));
                    continue;
                }
            };
            self.tensors.insert(name, Tensor::new(shape, values));
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The `config.json` read into a typed config; a field of the wrong type is named.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T> {
        serde_path_to_error::deserialize(&self.config).map_err(|e| ExportError::Config {
            path: self.config_path.clone(),
            field: e.path().to_string(),
            reason: e.inner().to_string(),
        })
    }

    pub fn model_type(&self) -> Result<&str> {
        self.config
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| ExportError::Config {
                path: self.config_path.clone(),
                field: "model_type".into(),
                reason: "missing (expected \"dinov2\" or \"resnet\")".into(),
            })
    }

    /// Task-specific checkpoints (e.g. `Dinov2ForImageClassification`) prefix the backbone's
    /// tensors with the model type; both spellings are accepted.
    fn lookup(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name).or_else(|| {
            let mt = self.config.get("model_type")?.as_str()?;
            self.tensors.get(&format!("{mt}.{name}"))
        })
    }

    /// Every float tensor by name (unordered).
    pub fn tensors(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(n, t)| (n.as_str(), t))
    }

    pub fn has(&self, name: &str) -> bool {
        self.lookup(name).is_some()
    }

    /// The tensor `name`, which must have exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&Tensor> {
        let t = self
            .lookup(name)
            .ok_or_else(|| match self.other.get(name) {
                Some(dtype) => ExportError::TensorDtype {
                    dir: self.dir.clone(),
                    name: name.into(),
                    dtype: dtype.clone(),
                },
                None => ExportError::MissingTensor {
                    dir: self.dir.clone(),
                    name: name.into(),
                },
            })?;
        if t.shape != shape {
            return Err(ExportError::TensorShape {
                dir: self.dir.clone(),
                name: name.into(),
                expected: shape.to_vec(),
                found: t.shape.clone(),
            });
        }
        Ok(t)
    }

    pub fn config_error(&self, field: &str, reason: impl Into<String>) -> ExportError {
        ExportError::Config {
            path: self.config_path.clone(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}

fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    let text = std::fs::read_to_string(&index).map_err(|_| ExportError::Io {
        path: single.clone(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no model.safetensors (nor model.safetensors.index.json) in the checkpoint folder",
        ),
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ExportError::Json {
            path: index.clone(),
            source,
        })?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ExportError::Config {
            path: index.clone(),
            field: "weight_map".into(),
            reason: "missing or not an object".into(),
        })?;
    let files: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
    Ok(files.into_iter().map(|f| dir.join(f)).collect())
}
