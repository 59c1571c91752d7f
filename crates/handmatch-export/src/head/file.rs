//! A head's safetensors file: f32 tensors by name, read with their shapes checked and
//! written atomically.

use std::path::Path;

use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::error::{ExportError, Result};
use crate::tensor::Tensor;
use handmatch_core::atomic_file::AtomicFile;

/// A parsed head file.
pub struct HeadFile<'a> {
    pub path: &'a Path,
    tensors: SafeTensors<'a>,
    /// Names are looked up under this prefix (an ensemble member's `members.{i}.`).
    prefix: String,
}

impl<'a> HeadFile<'a> {
    pub fn parse(path: &'a Path, bytes: &'a [u8]) -> Result<Self> {
        Self::parse_scoped(path, bytes, "")
    }

    /// The file's tensors whose names start with `prefix`, by the rest of their names.
    pub fn parse_scoped(path: &'a Path, bytes: &'a [u8], prefix: &str) -> Result<Self> {
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| ExportError::Safetensors {
            path: path.into(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            path,
            tensors,
            prefix: prefix.to_string(),
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors
            .tensor(&format!("{}{name}", self.prefix))
            .is_ok()
    }

    /// The f32 tensor `name`, of `shape` when one is given.
    pub fn tensor(&self, name: &str, shape: Option<&[usize]>) -> Result<Tensor> {
        let path = self.path;
        let name = &format!("{}{name}", self.prefix);
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| ExportError::MissingTensor {
                dir: path.into(),
                name: name.clone(),
            })?;
        if view.dtype() != Dtype::F32 {
            return Err(ExportError::TensorDtype {
                dir: path.into(),
                name: name.clone(),
                dtype: format!("{:?}", view.dtype()),
            });
        }
        if let Some(shape) = shape.filter(|s| *s != view.shape()) {
            return Err(ExportError::TensorShape {
                dir: path.into(),
                name: name.clone(),
                expected: shape.to_vec(),
                found: view.shape().to_vec(),
            });
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        Ok(Tensor::new(view.shape().to_vec(), data))
    }
}

/// Writes named f32 tensors as a safetensors file, atomically.
pub fn write_safetensors(path: &Path, tensors: &[(&str, &Tensor)]) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, t)| t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors.iter().zip(&bytes).map(|((name, t), b)| {
        (
            name.to_string(),
            TensorView::new(Dtype::F32, t.shape.clone(), b).unwrap(),
        )
    });
    let out = safetensors::serialize(views, None).map_err(|e| ExportError::Safetensors {
        path: path.into(),
        reason: e.to_string(),
    })?;
    AtomicFile::write(path, &out).map_err(ExportError::io(path))
}
