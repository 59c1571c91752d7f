//! Large-margin cosine loss (CosFace, Wang et al. 2018): every training subject has a
//! learned unit-length proxy; an embedding's logits are `scale · cos(embedding, proxy)`,
//! with `margin` taken off its own subject's cosine, then softmax cross-entropy.
//!
//! Why beside the triplet loss: batch-hard triplets reward collapse while features cannot
//! yet tell subjects apart (the farthest positive then lies beyond the closest negative,
//! and mapping every image to one point lowers the loss to exactly the margin). From
//! random or weak features that is where the triplet loss ends. A softmax over all
//! subjects has no such minimum: collapsed embeddings cost `ln(subjects)`. Both views of a
//! subject share its proxy, so dorsal and palmar crops are pulled to the same place.

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosFaceLoss {
    /// Inverse temperature of the softmax.
    pub scale: f64,
    /// Subtracted from the true subject's cosine.
    pub margin: f64,
}

impl CosFaceLoss {
    /// Seeded random proxies `[subjects, dim]` (normalised at use).
    pub fn proxies(subjects: usize, dim: usize, seed: u64, device: &Device) -> Result<Var> {
        let normal = Normal::new(0.0f32, 1.0).expect("a positive deviation");
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc05f);
        let w: Vec<f32> = (0..subjects * dim)
            .map(|_| normal.sample(&mut rng))
            .collect();
        Var::from_tensor(&Tensor::from_vec(w, (subjects, dim), device)?)
    }

    /// Mean loss of unit-length `emb [B, E]` whose subjects are `labels` (rows of
    /// `proxies [C, E]`); a scalar tensor.
    pub fn forward(&self, emb: &Tensor, labels: &[u32], proxies: &Tensor) -> Result<Tensor> {
        let norm = proxies
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::INFINITY)?;
        let cosines = emb.matmul(&proxies.broadcast_div(&norm)?.t()?)?;
        let (rows, classes) = cosines.dims2()?;
        let mut penalty = vec![0f32; rows * classes];
        for (r, &label) in labels.iter().enumerate() {
            penalty[r * classes + label as usize] = self.margin as f32;
        }
        let penalty = Tensor::from_vec(penalty, (rows, classes), emb.device())?;
        let logits = ((cosines - penalty)? * self.scale)?;
        let targets = Tensor::new(labels, emb.device())?.to_dtype(DType::U32)?;
        candle_nn::loss::cross_entropy(&logits, &targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_rows(rows: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = rows
            .iter()
            .flat_map(|r| {
                let n = (r[0] * r[0] + r[1] * r[1]).sqrt();
                [r[0] / n, r[1] / n]
            })
            .collect();
        Tensor::from_vec(flat, (rows.len(), 2), &Device::Cpu).unwrap()
    }

    #[test]
    fn the_loss_is_the_margin_softmax_cross_entropy() {
        let loss = CosFaceLoss {
            scale: 4.0,
            margin: 0.25,
        };
        let emb = unit_rows(&[[1.0, 0.0], [0.6, 0.8]]);
        let proxies = Tensor::new(&[[2.0f32, 0.0], [0.0, 3.0]], &Device::Cpu).unwrap();
        let got = loss
            .forward(&emb, &[0, 1], &proxies)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        // Row 0: cosines (1, 0), true class 0 → logits (4·0.75, 0).
        // Row 1: cosines (0.6, 0.8), true class 1 → logits (2.4, 4·0.55).
        let ce = |own: f64, other: f64| -own + (own.exp() + other.exp()).ln();
        let want = (ce(3.0, 0.0) + ce(2.2, 2.4)) / 2.0;
        assert!((f64::from(got) - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn collapsed_embeddings_cost_the_log_of_the_subject_count() {
        let loss = CosFaceLoss {
            scale: 16.0,
            margin: 0.0,
        };
        let emb = unit_rows(&[[1.0, 0.0]; 4]);
        // Proxies symmetric about the collapsed point: every cosine equal.
        let proxies = unit_rows(&[[0.0, 1.0], [0.0, -1.0]]);
        let got = loss
            .forward(&emb, &[0, 1, 0, 1], &proxies)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((f64::from(got) - 2f64.ln()).abs() < 1e-6, "{got}");
    }
}
