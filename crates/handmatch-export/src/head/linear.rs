//! A linear head: one Linear D → E, then L2-normalise. What a discriminant projection (LDA)
//! gives in closed form, and what `fit --head linear` fine-tunes from it. Stored as
//! safetensors `linear.weight [E, D]` and `linear.bias [E]`.

use std::path::Path;

use super::file::{write_safetensors, HeadFile};
use super::normalize::{dot, fold_standardisation, l2_normalize, l2_rows};
use crate::error::{ExportError, Result};
use crate::onnx::GraphBuilder;
use crate::tensor::Tensor;

pub mod names {
    pub const WEIGHT: &str = "linear.weight";
    pub const BIAS: &str = "linear.bias";
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    /// `[E, D]`, row-major.
    pub weight: Tensor,
    /// `[E]`.
    pub bias: Tensor,
}

impl LinearHead {
    pub fn new(weight: Tensor, bias: Tensor) -> Self {
        assert!(
            weight.shape.len() == 2 && bias.shape == [weight.shape[0]],
            "a [E, D] weight and an [E] bias"
        );
        Self { weight, bias }
    }

    pub fn input_dim(&self) -> usize {
        self.weight.shape[1]
    }

    pub fn embedding_dim(&self) -> usize {
        self.weight.shape[0]
    }

    /// The head rewritten to take raw features when it was fitted on `(x − mean) / std`.
    pub fn with_input_standardisation(mut self, mean: &[f32], std: &[f32]) -> Self {
        fold_standardisation(&mut self.weight, &mut self.bias, mean, std);
        self
    }

    pub(super) fn from_file(file: &HeadFile<'_>) -> Result<Self> {
        let weight = file.tensor(names::WEIGHT, None)?;
        if weight.shape.len() != 2 {
            return Err(ExportError::TensorShape {
                dir: file.path.into(),
                name: names::WEIGHT.into(),
                expected: vec![0, 0],
                found: weight.shape.clone(),
            });
        }
        let bias = file.tensor(names::BIAS, Some(&[weight.shape[0]]))?;
        Ok(Self { weight, bias })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        write_safetensors(path, &self.tensors())
    }

    pub(super) fn tensors(&self) -> Vec<(&'static str, &Tensor)> {
        vec![(names::WEIGHT, &self.weight), (names::BIAS, &self.bias)]
    }

    /// Adds the head to `g` after `features [N, D]`; returns the L2-normalised `[N, E]`.
    pub fn build(&self, g: &mut GraphBuilder, features: &str) -> String {
        let e = g.linear(features, "head.linear", &self.weight, Some(&self.bias));
        l2_normalize(g, &e)
    }

    /// The same function on the CPU: `features` is `[N, D]` row-major.
    pub fn forward(&self, features: &[f32]) -> Vec<f32> {
        let (d, e) = (self.input_dim(), self.embedding_dim());
        let mut out: Vec<f32> = features
            .chunks(d)
            .flat_map(|x| {
                (0..e)
                    .map(move |o| dot(&self.weight.data[o * d..(o + 1) * d], x) + self.bias.data[o])
            })
            .collect();
        l2_rows(&mut out, e);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_standardisation_gives_what_the_head_gave_on_standardised_input() {
        let weight = Tensor::new(vec![2, 3], vec![0.5, -1.0, 2.0, 1.5, 0.25, -0.75]);
        let head = LinearHead::new(weight, Tensor::new(vec![2], vec![0.1, -0.2]));
        let (mean, std) = ([1.0, -2.0, 0.5], [2.0, 0.5, 4.0]);
        let raw = [3.0, 1.0, -2.0, 0.0, 4.0, 1.0];
        let standardised: Vec<f32> = raw
            .chunks(3)
            .flat_map(|r| (0..3).map(move |k| (r[k] - mean[k]) / std[k]))
            .collect();
        let want = head.forward(&standardised);
        let got = head.with_input_standardisation(&mean, &std).forward(&raw);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
