//! Contrastive pair loss (Hadsell et al., 2006), the baseline the triplet variants are
//! compared with.

use candle_core::{Result, Tensor};

use super::batch;
use super::distance::{gather_entries, pairwise_distances};
use crate::fit::view::View;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContrastiveLoss {
    /// Negative pairs closer than this are pushed apart. Embeddings are unit length, so
    /// every distance is at most 2: the default 2.0 pushes every negative pair, which is
    /// the reference study's setting (a smaller margin lets distant negatives rest).
    pub margin: f64,
}

impl Default for ContrastiveLoss {
    fn default() -> Self {
        Self { margin: 2.0 }
    }
}

impl ContrastiveLoss {
    /// `mean over pairs of y·d² + (1 − y)·max(0, margin − d)²` over the unordered pairs of
    /// `emb [B, E]` rows: positives (`y = 1`) are the dorsal–palmar pairs of one subject,
    /// negatives every pair of different subjects (either view). Same-subject same-view
    /// pairs are not used, as the triplet loss leaves them free too. A scalar tensor.
    pub fn forward(&self, emb: &Tensor, subjects: &[u32], views: &[View]) -> Result<Tensor> {
        batch::check_rows(emb, subjects, views)?;
        let distances = pairwise_distances(emb, emb)?;
        let rows = emb.dim(0)?;
        let mut positives = Vec::new();
        let mut negatives = Vec::new();
        for i in 0..rows {
            for j in i + 1..rows {
                if subjects[i] != subjects[j] {
                    negatives.push((i, j));
                } else if views[i] != views[j] {
                    positives.push((i, j));
                }
            }
        }
        let pair_count = positives.len() + negatives.len();
        if pair_count == 0 {
            return batch::attached_zero(emb);
        }
        let mut total = batch::attached_zero(emb)?;
        if !positives.is_empty() {
            let pulled = gather_entries(&distances, &positives)?.sqr()?.sum_all()?;
            total = total.add(&pulled)?;
        }
        if !negatives.is_empty() {
            let d = gather_entries(&distances, &negatives)?;
            let pushed = d
                .neg()?
                .affine(1.0, self.margin)?
                .relu()?
                .sqr()?
                .sum_all()?;
            total = total.add(&pushed)?;
        }
        total / pair_count as f64
    }
}
