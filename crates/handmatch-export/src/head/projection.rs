//! The head an artefact ends with: the reference study's MLP, a linear projection, or an
//! ensemble of them. All end in L2 normalisation and export into the same artefact format;
//! a head file says which it is by its tensor names.

use std::path::Path;

use super::ensemble::{self, EnsembleHead};
use super::file::HeadFile;
use super::linear::{self, LinearHead};
use super::mlp::{self, MlpHead};
use crate::error::{ExportError, Result};
use crate::onnx::GraphBuilder;
use crate::tensor::Tensor;

// Heads are made once per fit and moved rarely: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Head {
    Mlp(MlpHead),
    Linear(LinearHead),
    Ensemble(EnsembleHead),
}

impl Head {
    pub fn input_dim(&self) -> usize {
        match self {
            Head::Mlp(h) => h.input_dim(),
            Head::Linear(h) => h.input_dim(),
            Head::Ensemble(h) => h.input_dim(),
        }
    }

    pub fn embedding_dim(&self) -> usize {
        match self {
            Head::Mlp(h) => h.embedding_dim(),
            Head::Linear(h) => h.embedding_dim(),
            Head::Ensemble(h) => h.embedding_dim(),
        }
    }

    /// `mlp D→H→E` or `linear D→E`, for logs and metadata.
    pub fn describe(&self) -> String {
        match self {
            Head::Mlp(h) => format!(
                "mlp {}→{}→{}",
                h.input_dim(),
                h.hidden_dim(),
                h.embedding_dim()
            ),
            Head::Linear(h) => format!("linear {}→{}", h.input_dim(), h.embedding_dim()),
            Head::Ensemble(h) => h.describe(),
        }
    }

    /// Folds a standardisation of the input features into the first Linear.
    pub fn with_input_standardisation(self, mean: &[f32], std: &[f32]) -> Self {
        match self {
            Head::Mlp(h) => Head::Mlp(h.with_input_standardisation(mean, std)),
            Head::Linear(h) => Head::Linear(h.with_input_standardisation(mean, std)),
            Head::Ensemble(h) => Head::Ensemble(h.with_input_standardisation(mean, std)),
        }
    }

    pub fn build(&self, g: &mut GraphBuilder, features: &str) -> String {
        match self {
            Head::Mlp(h) => h.build(g, features),
            Head::Linear(h) => h.build(g, features),
            Head::Ensemble(h) => h.build(g, features),
        }
    }

    /// The head's function on the CPU (`[N, D]` row-major in, `[N, E]` out): what the
    /// exported graph computes.
    pub fn forward(&self, features: &[f32]) -> Vec<f32> {
        match self {
            Head::Mlp(h) => h.forward(features),
            Head::Linear(h) => h.forward(features),
            Head::Ensemble(h) => h.forward(features),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        match self {
            Head::Mlp(h) => h.save(path),
            Head::Linear(h) => h.save(path),
            Head::Ensemble(h) => h.save(path),
        }
    }

    /// The named tensors of a linear or MLP head's file (an ensemble stores its members'
    /// under prefixes of their own, so it has none here).
    pub(super) fn tensors(&self) -> Vec<(&'static str, &Tensor)> {
        match self {
            Head::Mlp(h) => h.tensors(),
            Head::Linear(h) => h.tensors(),
            Head::Ensemble(_) => Vec::new(),
        }
    }

    /// Reads a head file written by `save` (either kind).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(ExportError::io(path))?;
        let file = HeadFile::parse(path, &bytes)?;
        Self::from_file(&file, &bytes)
    }

    pub(super) fn from_file(file: &HeadFile<'_>, bytes: &[u8]) -> Result<Self> {
        let path = file.path;
        if file.has(ensemble::names::WEIGHTS) {
            Ok(Head::Ensemble(EnsembleHead::from_file(file, bytes)?))
        } else if file.has(linear::names::WEIGHT) {
            Ok(Head::Linear(LinearHead::from_file(file)?))
        } else if file.has(mlp::names::FC1_WEIGHT) {
            Ok(Head::Mlp(MlpHead::from_file(file)?))
        } else {
            Err(ExportError::MissingTensor {
                dir: path.into(),
                name: format!("{} or {}", mlp::names::FC1_WEIGHT, linear::names::WEIGHT),
            })
        }
    }
}

impl From<MlpHead> for Head {
    fn from(h: MlpHead) -> Self {
        Head::Mlp(h)
    }
}

impl From<LinearHead> for Head {
    fn from(h: LinearHead) -> Self {
        Head::Linear(h)
    }
}
