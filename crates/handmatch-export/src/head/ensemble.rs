//! An ensemble head: several heads, each reading its own columns of the features (all of
//! them, or one feature group), each L2-normalised, scaled by the square root of its
//! weight, concatenated and normalised again. The cosine of two ensemble embeddings is then
//! the weighted mean of the members' cosines: score-level fusion inside one artefact.
//!
//! Stored in one safetensors file: `ensemble.columns [M, 2]` (start, end), `ensemble.weights
//! [M]`, and each member's own tensors under `members.{i}.`.

use std::path::Path;

use super::file::{write_safetensors, HeadFile};
use super::normalize::{l2_normalize, l2_rows};
use super::single::SingleHead;
use crate::error::{ExportError, Result};
use crate::onnx::graph::Attr;
use crate::onnx::GraphBuilder;
use crate::tensor::Tensor;

pub mod names {
    pub const COLUMNS: &str = "ensemble.columns";
    pub const WEIGHTS: &str = "ensemble.weights";
    pub const INPUT_DIM: &str = "ensemble.input_dim";
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleMember {
    /// The feature columns `start..end` the member reads.
    pub columns: (usize, usize),
    pub weight: f32,
    /// A linear or MLP head taking `end − start` features.
    pub head: SingleHead,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleHead {
    input_dim: usize,
    members: Vec<EnsembleMember>,
}

impl EnsembleHead {
    /// Checks that every member reads columns inside `input_dim`, takes as many features
    /// as it reads and has a positive weight.
    pub fn new(input_dim: usize, members: Vec<EnsembleMember>) -> Result<Self> {
        let bad = |reason: String| ExportError::Argument {
            field: "ensemble".into(),
            reason,
        };
        if members.is_empty() {
            return Err(bad("no members".into()));
        }
        for (i, m) in members.iter().enumerate() {
            let (start, end) = m.columns;
            if start >= end || end > input_dim {
                return Err(bad(format!(
                    "member {i} reads columns {start}..{end} of {input_dim}"
                )));
            }
            if m.head.input_dim() != end - start {
                return Err(bad(format!(
                    "member {i} takes {} features but reads {}",
                    m.head.input_dim(),
                    end - start
                )));
            }
            if !(m.weight.is_finite() && m.weight > 0.0) {
                return Err(bad(format!("member {i} has weight {}", m.weight)));
            }
        }
        Ok(Self { input_dim, members })
    }

    pub fn members(&self) -> &[EnsembleMember] {
        &self.members
    }

    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    pub fn embedding_dim(&self) -> usize {
        self.members.iter().map(|m| m.head.embedding_dim()).sum()
    }

    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .members
            .iter()
            .map(|m| {
                format!(
                    "{} on {}..{} ×{}",
                    m.head.describe(),
                    m.columns.0,
                    m.columns.1,
                    m.weight
                )
            })
            .collect();
        format!("ensemble[{}]", parts.join("; "))
    }

    pub fn with_input_standardisation(self, mean: &[f32], std: &[f32]) -> Self {
        let members = self
            .members
            .into_iter()
            .map(|m| {
                let (s, e) = m.columns;
                EnsembleMember {
                    head: m.head.with_input_standardisation(&mean[s..e], &std[s..e]),
                    ..m
                }
            })
            .collect();
        Self { members, ..self }
    }

    pub fn build(&self, g: &mut GraphBuilder, features: &str) -> String {
        let mut parts = Vec::new();
        for m in &self.members {
            let x = g.slice(features, 1, m.columns.0 as i64, m.columns.1 as i64);
            let e = m.head.build(g, &x);
            let w = g.const_f32("member_weight", &[], vec![m.weight.sqrt()]);
            parts.push(g.mul(&e, &w));
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let joined = g.op("Concat", &refs, vec![("axis", Attr::Int(1))]);
        l2_normalize(g, &joined)
    }

    pub fn forward(&self, features: &[f32]) -> Vec<f32> {
        let n = features.len() / self.input_dim.max(1);
        let outputs: Vec<Vec<f32>> = self
            .members
            .iter()
            .map(|m| {
                let (s, e) = m.columns;
                let cols: Vec<f32> = features
                    .chunks(self.input_dim)
                    .flat_map(|row| row[s..e].iter().copied())
                    .collect();
                let scale = m.weight.sqrt();
                m.head
                    .forward(&cols)
                    .into_iter()
                    .map(|v| v * scale)
                    .collect()
            })
            .collect();
        let dim = self.embedding_dim();
        let mut out = Vec::with_capacity(n * dim);
        for row in 0..n {
            for (m, o) in self.members.iter().zip(&outputs) {
                let e = m.head.embedding_dim();
                out.extend_from_slice(&o[row * e..(row + 1) * e]);
            }
        }
        l2_rows(&mut out, dim);
        out
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let m = self.members.len();
        let columns = Tensor::new(
            vec![m, 2],
            self.members
                .iter()
                .flat_map(|x| [x.columns.0 as f32, x.columns.1 as f32])
                .collect(),
        );
        let weights = Tensor::new(vec![m], self.members.iter().map(|x| x.weight).collect());
        let input_dim = Tensor::new(vec![1], vec![self.input_dim as f32]);
        let mut named: Vec<(String, Tensor)> = vec![
            (names::COLUMNS.into(), columns),
            (names::WEIGHTS.into(), weights),
            (names::INPUT_DIM.into(), input_dim),
        ];
        for (i, member) in self.members.iter().enumerate() {
            for (name, t) in member.head.tensors() {
                named.push((format!("members.{i}.{name}"), t.clone()));
            }
        }
        let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
        write_safetensors(path, &refs)
    }

    pub(super) fn from_file(file: &HeadFile<'_>, bytes: &[u8]) -> Result<Self> {
        let weights = file.tensor(names::WEIGHTS, None)?;
        let m = weights.data.len();
        let columns = file.tensor(names::COLUMNS, Some(&[m, 2]))?;
        let input_dim = file.tensor(names::INPUT_DIM, Some(&[1]))?.data[0] as usize;
        let members = (0..m)
            .map(|i| {
                let scoped = HeadFile::parse_scoped(file.path, bytes, &format!("members.{i}."))?;
                Ok(EnsembleMember {
                    columns: (
                        columns.data[2 * i] as usize,
                        columns.data[2 * i + 1] as usize,
                    ),
                    weight: weights.data[i],
                    head: SingleHead::from_file(&scoped)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(input_dim, members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::linear::LinearHead;
    use crate::head::mlp::MlpHead;

    fn linear(d: usize, e: usize, seed: f32) -> SingleHead {
        let w = (0..e * d)
            .map(|i| ((i as f32 + seed) * 0.731).sin())
            .collect();
        let b = (0..e)
            .map(|i| ((i as f32 + seed) * 0.37).cos() * 0.1)
            .collect();
        SingleHead::Linear(LinearHead::new(
            Tensor::new(vec![e, d], w),
            Tensor::new(vec![e], b),
        ))
    }

    fn ensemble() -> EnsembleHead {
        EnsembleHead::new(
            10,
            vec![
                EnsembleMember {
                    columns: (0, 10),
                    weight: 1.0,
                    head: linear(10, 4, 0.0),
                },
                EnsembleMember {
                    columns: (6, 10),
                    weight: 3.0,
                    head: SingleHead::Mlp(MlpHead::random(4, 8, 3, 2)),
                },
            ],
        )
        .unwrap()
    }

    #[test]
    fn the_ensemble_cosine_is_the_weighted_mean_of_the_members_cosines() {
        let ens = ensemble();
        let x: Vec<f32> = (0..20).map(|i| (i as f32 * 1.3).sin()).collect();
        let e = ens.forward(&x);
        assert_eq!(e.len(), 2 * 7);
        let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f32>();
        let got = cos(&e[..7], &e[7..]);
        let m0 = ens.members[0].head.forward(&x);
        let cols: Vec<f32> = x[6..10].iter().chain(&x[16..20]).copied().collect();
        let m1 = ens.members[1].head.forward(&cols);
        let want = (cos(&m0[..4], &m0[4..]) + 3.0 * cos(&m1[..3], &m1[3..])) / 4.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn an_ensemble_survives_its_file_and_bad_members_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.safetensors");
        let ens = ensemble();
        ens.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let file = HeadFile::parse(&path, &bytes).unwrap();
        assert_eq!(EnsembleHead::from_file(&file, &bytes).unwrap(), ens);
        let wrong = EnsembleHead::new(
            10,
            vec![EnsembleMember {
                columns: (2, 10),
                weight: 1.0,
                head: linear(10, 4, 0.0),
            }],
        )
        .unwrap_err();
        assert!(
            wrong.to_string().contains("takes 10 features but reads 8"),
            "{wrong}"
        );
    }
}
