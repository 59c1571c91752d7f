//! Metric-learning losses on a batch of L2-normalised embeddings `emb [B, E]` with one
//! subject id and one [`View`](super::View) per row. Distances are Euclidean between rows.
//! Mining decisions are taken on detached values; the chosen distances are then gathered
//! from the differentiable distance matrix, so gradients flow only through them.

mod contrastive;
mod distance;
mod memory;
mod triplet;

pub use contrastive::ContrastiveLoss;
pub use distance::pairwise_distances;
pub use memory::CrossBatchMemory;
pub use triplet::{Mining, TripletLoss};

use candle_core::{bail, Result, Tensor};

use super::View;

fn check_rows(emb: &Tensor, subjects: &[u32], views: &[View]) -> Result<()> {
    let rows = emb.dim(0)?;
    if subjects.len() != rows || views.len() != rows {
        bail!(
            "loss on {rows} embeddings with {} subjects and {} views",
            subjects.len(),
            views.len()
        );
    }
    Ok(())
}

/// A zero loss that still belongs to `emb`'s graph, so `backward` yields (zero) gradients
/// for the head instead of none, and the optimiser step stays uniform.
fn attached_zero(emb: &Tensor) -> Result<Tensor> {
    emb.sum_all()? * 0.0
}
