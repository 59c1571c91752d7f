//! The reference study's projection head: Linear → BatchNorm → ReLU → (Dropout) → Linear →
//! L2-normalise.
//! Stored as safetensors with the names below; in the graph the BatchNorm (eval mode) is
//! folded into the first Linear and Dropout is the identity.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use super::file::{write_safetensors, HeadFile};
use super::normalize::{dot, fold_standardisation, l2_normalize};
use crate::error::{ExportError, Result};
use crate::onnx::GraphBuilder;
use crate::tensor::{BatchNorm, Tensor};

/// The reference study's hidden width.
pub const DEFAULT_HIDDEN: usize = 512;
/// PyTorch's and candle's BatchNorm1d default.
pub const BN_EPS: f32 = 1e-5;

pub mod names {
    pub const FC1_WEIGHT: &str = "fc1.weight";
    pub const FC1_BIAS: &str = "fc1.bias";
    pub const BN_WEIGHT: &str = "bn.weight";
    pub const BN_BIAS: &str = "bn.bias";
    pub const BN_MEAN: &str = "bn.running_mean";
    pub const BN_VAR: &str = "bn.running_var";
    pub const FC2_WEIGHT: &str = "fc2.weight";
    pub const FC2_BIAS: &str = "fc2.bias";
}

#[derive(Debug, Clone, PartialEq)]
pub struct MlpHead {
    pub fc1_weight: Tensor,
    pub fc1_bias: Tensor,
    pub bn_weight: Tensor,
    pub bn_bias: Tensor,
    pub bn_mean: Tensor,
    pub bn_var: Tensor,
    pub fc2_weight: Tensor,
    pub fc2_bias: Tensor,
}

impl MlpHead {
    pub fn input_dim(&self) -> usize {
        self.fc1_weight.shape[1]
    }

    pub fn hidden_dim(&self) -> usize {
        self.fc1_weight.shape[0]
    }

    pub fn embedding_dim(&self) -> usize {
        self.fc2_weight.shape[0]
    }

    /// A head trained on standardised features `(x − mean) / std`, rewritten to take the
    /// raw features: the standardisation folds into the first Linear, so the artefact's
    /// graph does not change shape.
    pub fn with_input_standardisation(mut self, mean: &[f32], std: &[f32]) -> Self {
        fold_standardisation(&mut self.fc1_weight, &mut self.fc1_bias, mean, std);
        self
    }

    /// A freshly initialised head (PyTorch's Linear init, random BatchNorm statistics so
    /// the folding is exercised), for tests, benchmarks and the demo before training.
    pub fn random(input_dim: usize, hidden: usize, embedding_dim: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut linear = |out: usize, inp: usize| {
            let bound = 1.0 / (inp as f32).sqrt();
            let u = Uniform::new_inclusive(-bound, bound).unwrap();
            let w = (0..out * inp).map(|_| u.sample(&mut rng)).collect();
            let b = (0..out).map(|_| u.sample(&mut rng)).collect();
            (Tensor::new(vec![out, inp], w), Tensor::new(vec![out], b))
        };
        let (fc1_weight, fc1_bias) = linear(hidden, input_dim);
        let (fc2_weight, fc2_bias) = linear(embedding_dim, hidden);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        let n = Normal::new(0.0f32, 0.1).unwrap();
        let mut vec = |offset: f32| {
            Tensor::new(
                vec![hidden],
                (0..hidden).map(|_| offset + n.sample(&mut rng)).collect(),
            )
        };
        let bn_weight = vec(1.0);
        let bn_bias = vec(0.0);
        let bn_mean = vec(0.0);
        let bn_var = Tensor::new(
            vec![hidden],
            vec(1.0).data.iter().map(|v| v.abs().max(0.1)).collect(),
        );
        Self {
            fc1_weight,
            fc1_bias,
            bn_weight,
            bn_bias,
            bn_mean,
            bn_var,
            fc2_weight,
            fc2_bias,
        }
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(ExportError::io(path))?;
        Self::from_file(&HeadFile::parse(path, &bytes)?)
    }

    pub(super) fn from_file(file: &HeadFile<'_>) -> Result<Self> {
        let path = file.path;
        let get = |name: &str, shape: Option<&[usize]>| file.tensor(name, shape);
        let fc1_weight = get(names::FC1_WEIGHT, None)?;
        if fc1_weight.shape.len() != 2 {
            return Err(ExportError::TensorShape {
                dir: path.into(),
                name: names::FC1_WEIGHT.into(),
                expected: vec![DEFAULT_HIDDEN, 0],
                found: fc1_weight.shape.clone(),
            });
        }
        let hidden = fc1_weight.shape[0];
        let fc2_weight = get(names::FC2_WEIGHT, None)?;
        if fc2_weight.shape.len() != 2 || fc2_weight.shape[1] != hidden {
            return Err(ExportError::TensorShape {
                dir: path.into(),
                name: names::FC2_WEIGHT.into(),
                expected: vec![fc2_weight.shape[0], hidden],
                found: fc2_weight.shape.clone(),
            });
        }
        let e = fc2_weight.shape[0];
        Ok(Self {
            fc1_bias: get(names::FC1_BIAS, Some(&[hidden]))?,
            bn_weight: get(names::BN_WEIGHT, Some(&[hidden]))?,
            bn_bias: get(names::BN_BIAS, Some(&[hidden]))?,
            bn_mean: get(names::BN_MEAN, Some(&[hidden]))?,
            bn_var: get(names::BN_VAR, Some(&[hidden]))?,
            fc2_bias: get(names::FC2_BIAS, Some(&[e]))?,
            fc1_weight,
            fc2_weight,
        })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        write_safetensors(path, &self.tensors())
    }

    pub(super) fn tensors(&self) -> Vec<(&'static str, &Tensor)> {
        vec![
            (names::FC1_WEIGHT, &self.fc1_weight),
            (names::FC1_BIAS, &self.fc1_bias),
            (names::BN_WEIGHT, &self.bn_weight),
            (names::BN_BIAS, &self.bn_bias),
            (names::BN_MEAN, &self.bn_mean),
            (names::BN_VAR, &self.bn_var),
            (names::FC2_WEIGHT, &self.fc2_weight),
            (names::FC2_BIAS, &self.fc2_bias),
        ]
    }

    fn batch_norm(&self) -> BatchNorm<'_> {
        BatchNorm {
            weight: &self.bn_weight,
            bias: &self.bn_bias,
            running_mean: &self.bn_mean,
            running_var: &self.bn_var,
            eps: BN_EPS,
        }
    }

    /// Adds the head to `g` after `features [N, D]`; returns the L2-normalised `[N, E]`.
    pub fn build(&self, g: &mut GraphBuilder, features: &str) -> String {
        let (w1, b1) = self
            .batch_norm()
            .fold_into(&self.fc1_weight, Some(&self.fc1_bias));
        let h = g.linear(features, "head.fc1_bn", &w1, Some(&b1));
        let h = g.op("Relu", &[&h], vec![]);
        let e = g.linear(&h, "head.fc2", &self.fc2_weight, Some(&self.fc2_bias));
        l2_normalize(g, &e)
    }

    /// The same function on the CPU, for tests: `features` is `[N, D]` row-major.
    pub fn forward(&self, features: &[f32]) -> Vec<f32> {
        let (w1, b1) = self
            .batch_norm()
            .fold_into(&self.fc1_weight, Some(&self.fc1_bias));
        let d = self.input_dim();
        let mut out = Vec::new();
        for x in features.chunks(d) {
            let h: Vec<f32> = (0..self.hidden_dim())
                .map(|o| (dot(&w1.data[o * d..(o + 1) * d], x) + b1.data[o]).max(0.0))
                .collect();
            let hd = h.len();
            let e: Vec<f32> = (0..self.embedding_dim())
                .map(|o| {
                    dot(&self.fc2_weight.data[o * hd..(o + 1) * hd], &h) + self.fc2_bias.data[o]
                })
                .collect();
            let norm = dot(&e, &e).sqrt().max(1e-12);
            out.extend(e.iter().map(|v| v / norm));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_standardisation_gives_what_the_head_gave_on_standardised_input() {
        let head = MlpHead::random(5, 8, 3, 2);
        let mean = [0.5, -1.0, 2.0, 0.0, 10.0];
        let std = [2.0, 0.5, 1.0, 3.0, 0.1];
        let raw: Vec<f32> = (0..10).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
        let standardised: Vec<f32> = raw
            .chunks(5)
            .flat_map(|row| {
                row.iter()
                    .zip(&mean)
                    .zip(&std)
                    .map(|((x, m), s)| (x - m) / s)
                    .collect::<Vec<_>>()
            })
            .collect();
        let want = head.forward(&standardised);
        let got = head.with_input_standardisation(&mean, &std).forward(&raw);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
