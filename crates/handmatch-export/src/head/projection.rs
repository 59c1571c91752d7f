//! The head an artefact ends with: one head (the reference study's MLP or a linear
//! projection) or an ensemble of them. All end in L2 normalisation and export into the same
//! artefact format; a head file says which it is by its tensor names.

use std::path::Path;

use super::ensemble::{self, EnsembleHead};
use super::file::HeadFile;
use super::linear::LinearHead;
use super::mlp::MlpHead;
use super::single::SingleHead;
use crate::error::{ExportError, Result};
use crate::onnx::GraphBuilder;

// Heads are made once per fit and moved rarely: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Head {
    Single(SingleHead),
    Ensemble(EnsembleHead),
}

impl Head {
    pub fn input_dim(&self) -> usize {
        match self {
            Head::Single(h) => h.input_dim(),
            Head::Ensemble(h) => h.input_dim(),
        }
    }

    pub fn embedding_dim(&self) -> usize {
        match self {
            Head::Single(h) => h.embedding_dim(),
            Head::Ensemble(h) => h.embedding_dim(),
        }
    }

    /// `mlp D→H→E`, `linear D→E` or `ensemble[…]`, for logs and metadata.
    pub fn describe(&self) -> String {
        match self {
            Head::Single(h) => h.describe(),
            Head::Ensemble(h) => h.describe(),
        }
    }

    /// Folds a standardisation of the input features into the first Linear(s).
    pub fn with_input_standardisation(self, mean: &[f32], std: &[f32]) -> Self {
        match self {
            Head::Single(h) => Head::Single(h.with_input_standardisation(mean, std)),
            Head::Ensemble(h) => Head::Ensemble(h.with_input_standardisation(mean, std)),
        }
    }

    pub fn build(&self, g: &mut GraphBuilder, features: &str) -> String {
        match self {
            Head::Single(h) => h.build(g, features),
            Head::Ensemble(h) => h.build(g, features),
        }
    }

    /// The head's function on the CPU (`[N, D]` row-major in, `[N, E]` out): what the
    /// exported graph computes.
    pub fn forward(&self, features: &[f32]) -> Vec<f32> {
        match self {
            Head::Single(h) => h.forward(features),
            Head::Ensemble(h) => h.forward(features),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        match self {
            Head::Single(h) => h.save(path),
            Head::Ensemble(h) => h.save(path),
        }
    }

    /// Reads a head file written by `save` (any kind).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(ExportError::io(path))?;
        let file = HeadFile::parse(path, &bytes)?;
        if file.has(ensemble::names::WEIGHTS) {
            Ok(Head::Ensemble(EnsembleHead::from_file(&file, &bytes)?))
        } else {
            Ok(Head::Single(SingleHead::from_file(&file)?))
        }
    }
}

impl From<MlpHead> for Head {
    fn from(h: MlpHead) -> Self {
        Head::Single(h.into())
    }
}

impl From<LinearHead> for Head {
    fn from(h: LinearHead) -> Self {
        Head::Single(h.into())
    }
}
