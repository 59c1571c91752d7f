//! Checks and helpers every loss applies to its batch of rows.

use candle_core::{bail, Result, Tensor};

use crate::fit::view::View;

pub(super) fn check_rows(emb: &Tensor, subjects: &[u32], views: &[View]) -> Result<()> {
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
pub(super) fn attached_zero(emb: &Tensor) -> Result<Tensor> {
    emb.sum_all()? * 0.0
}
