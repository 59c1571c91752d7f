//! One head: the reference study's MLP or a linear projection. Both end in L2
//! normalisation; a head file says which it is by its tensor names. An ensemble's members
//! are single heads.

use std::path::Path;

use super::file::HeadFile;
use super::linear::{self, LinearHead};
use super::mlp::{self, MlpHead};
use crate::error::{ExportError, Result};
use crate::onnx::GraphBuilder;
use crate::tensor::Tensor;

// Heads are made once per fit and moved rarely: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum SingleHead {
    Mlp(MlpHead),
    Linear(LinearHead),
}

impl SingleHead {
    pub fn input_dim(&self) -> usize {
        match self {
            SingleHead::Mlp(h) => h.input_dim(),
            SingleHead::Linear(h) => h.input_dim(),
        }
    }

    pub fn embedding_dim(&self) -> usize {
        match self {
            SingleHead::Mlp(h) => h.embedding_dim(),
            SingleHead::Linear(h) => h.embedding_dim(),
        }
    }

    /// `mlp D→H→E` or `linear D→E`, for logs and metadata.
    pub fn describe(&self) -> String {
        match self {
            SingleHead::Mlp(h) => format!(
                "mlp {}→{}→{}",
                h.input_dim(),
                h.hidden_dim(),
                h.embedding_dim()
            ),
            SingleHead::Linear(h) => format!("linear {}→{}", h.input_dim(), h.embedding_dim()),
        }
    }

    /// Folds a standardisation of the input features into the first Linear.
    pub fn with_input_standardisation(self, mean: &[f32], std: &[f32]) -> Self {
        match self {
            SingleHead::Mlp(h) => SingleHead::Mlp(h.with_input_standardisation(mean, std)),
            SingleHead::Linear(h) => SingleHead::Linear(h.with_input_standardisation(mean, std)),
        }
    }

    pub fn build(&self, g: &mut GraphBuilder, features: &str) -> String {
        match self {
            SingleHead::Mlp(h) => h.build(g, features),
            SingleHead::Linear(h) => h.build(g, features),
        }
    }

    /// The head's function on the CPU (`[N, D]` row-major in, `[N, E]` out): what the
    /// exported graph computes.
    pub fn forward(&self, features: &[f32]) -> Vec<f32> {
        match self {
            SingleHead::Mlp(h) => h.forward(features),
            SingleHead::Linear(h) => h.forward(features),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        match self {
            SingleHead::Mlp(h) => h.save(path),
            SingleHead::Linear(h) => h.save(path),
        }
    }

    /// The named tensors of its file.
    pub(super) fn tensors(&self) -> Vec<(&'static str, &Tensor)> {
        match self {
            SingleHead::Mlp(h) => h.tensors(),
            SingleHead::Linear(h) => h.tensors(),
        }
    }

    /// Reads either kind from a parsed head file.
    pub(super) fn from_file(file: &HeadFile<'_>) -> Result<Self> {
        if file.has(linear::names::WEIGHT) {
            Ok(SingleHead::Linear(LinearHead::from_file(file)?))
        } else if file.has(mlp::names::FC1_WEIGHT) {
            Ok(SingleHead::Mlp(MlpHead::from_file(file)?))
        } else {
            Err(ExportError::MissingTensor {
                dir: file.path.into(),
                name: format!("{} or {}", mlp::names::FC1_WEIGHT, linear::names::WEIGHT),
            })
        }
    }
}

impl From<MlpHead> for SingleHead {
    fn from(h: MlpHead) -> Self {
        SingleHead::Mlp(h)
    }
}

impl From<LinearHead> for SingleHead {
    fn from(h: LinearHead) -> Self {
        SingleHead::Linear(h)
    }
}
