//! Cross-view triplet loss. Anchors are the batch's dorsal rows with palmar positives (same
//! subject) and palmar negatives (other subjects), and symmetrically palmar anchors with
//! dorsal positives and negatives: the deployed task only ever compares across views, so
//! same-view distances are left free.

use candle_core::{Result, Tensor};

use super::batch;
use super::distance::{detached_rows, gather_entries, pairwise_distances};
use super::memory::CrossBatchMemory;
use crate::fit::view::View;

/// How triplets are chosen from the batch (and memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mining {
    /// Per anchor: the farthest positive against the closest negative (Hermans et al.).
    BatchHard,
    /// Per anchor–positive pair: the closest negative farther than the positive, or the
    /// closest negative when none is farther.
    SemiHard,
    /// Every valid triplet, averaged over those with non-zero loss ("batch-all"), so that
    /// easy triplets do not dilute the gradient as training progresses.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TripletLoss {
    pub margin: f64,
    pub mining: Mining,
    /// `log(1 + exp(d_ap − d_an))` instead of `max(0, d_ap − d_an + margin)`: no margin to
    /// tune and never exactly zero, at the price of pushing already-separated triplets.
    pub soft_margin: bool,
}

impl Default for TripletLoss {
    fn default() -> Self {
        Self {
            margin: 0.5,
            mining: Mining::BatchHard,
            soft_margin: false,
        }
    }
}

/// One triplet as two entries of the anchor × candidate distance matrix.
#[derive(Debug, Clone, Copy)]
struct Triplet {
    anchor_positive: (usize, usize),
    anchor_negative: (usize, usize),
}

impl TripletLoss {
    /// The loss on `emb [B, E]` alone; a scalar tensor.
    pub fn forward(&self, emb: &Tensor, subjects: &[u32], views: &[View]) -> Result<Tensor> {
        self.forward_with_memory(emb, subjects, views, None)
    }

    /// As [`forward`](Self::forward), with the rows of `memory` as extra positive and
    /// negative candidates. Anchors are only the batch's rows; memory rows are detached,
    /// so gradients reach the batch through anchors and batch candidates only.
    ///
    /// The loss is the mean over the anchors (batch-hard), anchor–positive pairs
    /// (semi-hard) or non-zero triplets (all) of each direction (dorsal anchors, palmar
    /// anchors), then the mean over the directions that have any valid triplet. A batch
    /// with no valid triplet yields a zero that is still attached to `emb`.
    pub fn forward_with_memory(
        &self,
        emb: &Tensor,
        subjects: &[u32],
        views: &[View],
        memory: Option<&CrossBatchMemory>,
    ) -> Result<Tensor> {
        batch::check_rows(emb, subjects, views)?;
        let (candidates, candidate_subjects, candidate_views) = match memory {
            Some(memory) if !memory.is_empty() => {
                let stored = memory
                    .embeddings()
                    .expect("a non-empty memory holds embeddings")
                    .to_dtype(emb.dtype())?;
                (
                    Tensor::cat(&[emb, &stored], 0)?,
                    [subjects, memory.subjects()].concat(),
                    [views, memory.views()].concat(),
                )
            }
            _ => (emb.clone(), subjects.to_vec(), views.to_vec()),
        };
        let distances = pairwise_distances(emb, &candidates)?;
        let detached = detached_rows(&distances)?;

        let mut direction_losses = Vec::new();
        for anchor_view in [View::Dorsal, View::Palmar] {
            let mut triplets = Vec::new();
            let mut any_valid = false;
            for (anchor, row) in detached.iter().enumerate() {
                if views[anchor] != anchor_view {
                    continue;
                }
                let (positives, negatives): (Vec<usize>, Vec<usize>) = (0..row.len())
                    .filter(|&j| candidate_views[j] != anchor_view)
                    .partition(|&j| candidate_subjects[j] == subjects[anchor]);
                if positives.is_empty() || negatives.is_empty() {
                    continue;
                }
                any_valid = true;
                self.mine(anchor, row, &positives, &negatives, &mut triplets);
            }
            if any_valid {
                direction_losses.push(self.mean_triplet_loss(&distances, &triplets, emb)?);
            }
        }
        if direction_losses.is_empty() {
            return batch::attached_zero(emb);
        }
        let count = direction_losses.len() as f64;
        Tensor::stack(&direction_losses, 0)?.sum_all()? / count
    }

    fn hinge_is_active(&self, d_ap: f64, d_an: f64) -> bool {
        self.soft_margin || d_ap - d_an + self.margin > 0.0
    }

    fn mine(
        &self,
        anchor: usize,
        row: &[f64],
        positives: &[usize],
        negatives: &[usize],
        triplets: &mut Vec<Triplet>,
    ) {
        let closest = |candidates: &mut dyn Iterator<Item = usize>| {
            candidates.min_by(|&a, &b| row[a].total_cmp(&row[b]))
        };
        let hardest_negative =
            closest(&mut negatives.iter().copied()).expect("negatives is not empty");
        let triplet = |positive: usize, negative: usize| Triplet {
            anchor_positive: (anchor, positive),
            anchor_negative: (anchor, negative),
        };
        match self.mining {
            Mining::BatchHard => {
                let hardest_positive = positives
                    .iter()
                    .copied()
                    .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                    .expect("positives is not empty");
                triplets.push(triplet(hardest_positive, hardest_negative));
            }
            Mining::SemiHard => {
                for &positive in positives {
                    let semi_hard = closest(
                        &mut negatives
                            .iter()
                            .copied()
                            .filter(|&n| row[n] > row[positive]),
                    );
                    triplets.push(triplet(positive, semi_hard.unwrap_or(hardest_negative)));
                }
            }
            Mining::All => {
                for &positive in positives {
                    for &negative in negatives {
                        if self.hinge_is_active(row[positive], row[negative]) {
                            triplets.push(triplet(positive, negative));
                        }
                    }
                }
            }
        }
    }

    fn mean_triplet_loss(
        &self,
        distances: &Tensor,
        triplets: &[Triplet],
        emb: &Tensor,
    ) -> Result<Tensor> {
        if triplets.is_empty() {
            return batch::attached_zero(emb);
        }
        let positive_entries: Vec<_> = triplets.iter().map(|t| t.anchor_positive).collect();
        let negative_entries: Vec<_> = triplets.iter().map(|t| t.anchor_negative).collect();
        let d_ap = gather_entries(distances, &positive_entries)?;
        let d_an = gather_entries(distances, &negative_entries)?;
        let gap = d_ap.sub(&d_an)?;
        let per_triplet = if self.soft_margin {
            softplus(&gap)?
        } else {
            (gap + self.margin)?.relu()?
        };
        per_triplet.mean_all()
    }
}

/// `log(1 + exp(x))` as `relu(x) + log(1 + exp(−|x|))`, which cannot overflow.
fn softplus(x: &Tensor) -> Result<Tensor> {
    let tail = ((x.abs()?.neg()?.exp()? + 1.0)?).log()?;
    x.relu()?.add(&tail)
}
