//! A Hugging Face checkpoint's tensors as the weights of a candle network: each one trained
//! (a `Var` the optimiser steps), updated (a `Var` the forward pass itself sets, such as a
//! training batch norm's running statistics) or frozen; written back as a checkpoint of the
//! same layout, so the exporter builds the artefact from it as from any other checkpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Result, Tensor, Var};
use handmatch_export::checkpoint::Checkpoint;
use handmatch_export::tensor::Tensor as ExportTensor;

/// What a tensor of the checkpoint becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightRole {
    Trained,
    Updated,
    Frozen,
}

enum Weight {
    Variable(Var, WeightRole),
    Frozen(Tensor),
}

impl Weight {
    fn tensor(&self) -> &Tensor {
        match self {
            Weight::Variable(v, _) => v.as_tensor(),
            Weight::Frozen(t) => t,
        }
    }
}

pub struct CheckpointWeights {
    config_path: PathBuf,
    weights: HashMap<String, Weight>,
}

pub fn err(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// Refuses a checkpoint whose `model_type` is not `model_type`, naming both.
pub fn require_model_type(ckpt: &Checkpoint, model_type: &str, network: &str) -> Result<()> {
    let found = ckpt.model_type().map_err(err)?;
    if found != model_type {
        return Err(err(format!(
            "{}: a `{found}` checkpoint, not {network}",
            ckpt.dir().display()
        )));
    }
    Ok(())
}

impl CheckpointWeights {
    /// The checkpoint `ckpt` on `device`, each tensor in the role `role` gives its name.
    pub fn load(
        ckpt: &Checkpoint,
        device: &Device,
        role: impl Fn(&str) -> WeightRole,
    ) -> Result<Self> {
        let mut weights = HashMap::new();
        for (name, t) in ckpt.tensors() {
            let value = Tensor::from_vec(t.data.clone(), t.shape.clone(), device)?;
            let w = match role(name) {
                WeightRole::Frozen => Weight::Frozen(value),
                r => Weight::Variable(Var::from_tensor(&value)?, r),
            };
            weights.insert(name.to_string(), w);
        }
        Ok(Self {
            config_path: ckpt.config_path().to_path_buf(),
            weights,
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.weights.contains_key(name)
    }

    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.weights
            .get(name)
            .map(Weight::tensor)
            .ok_or_else(|| err(format!("the checkpoint has no tensor `{name}`")))
    }

    /// The variable behind `name` when the forward pass updates it.
    pub fn updated(&self, name: &str) -> Option<&Var> {
        match self.weights.get(name) {
            Some(Weight::Variable(v, WeightRole::Updated)) => Some(v),
            _ => None,
        }
    }

    /// The tensors in `role` (trained or updated), by checkpoint name, sorted.
    pub fn vars(&self, role: WeightRole) -> Vec<(String, Var)> {
        let mut out: Vec<(String, Var)> = self
            .weights
            .iter()
            .filter_map(|(n, w)| match w {
                Weight::Variable(v, r) if *r == role => Some((n.clone(), v.clone())),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Writes the checkpoint with the current values into `out` (`config.json` copied,
    /// `model.safetensors` with every tensor).
    pub fn save(&self, out: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(out)?;
        std::fs::copy(&self.config_path, out.join("config.json"))?;
        let mut tensors = Vec::with_capacity(self.weights.len());
        for (name, w) in &self.weights {
            let t = w.tensor();
            let data: Vec<f32> = t.flatten_all()?.to_vec1()?;
            tensors.push((name.as_str(), ExportTensor::new(t.dims().to_vec(), data)));
        }
        tensors.sort_by(|a, b| a.0.cmp(b.0));
        let refs: Vec<(&str, &ExportTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
        handmatch_export::head::file::write_safetensors(&out.join("model.safetensors"), &refs)?;
        Ok(())
    }
}
