//! Metric-learning losses on a batch of L2-normalised embeddings `emb [B, E]` with one
//! subject id and one [`View`](super::View) per row. Distances are Euclidean between rows.
//! Mining decisions are taken on detached values; the chosen distances are then gathered
//! from the differentiable distance matrix, so gradients flow only through them.

mod batch;
mod contrastive;
mod distance;
mod memory;
mod triplet;

pub use contrastive::ContrastiveLoss;
pub use distance::pairwise_distances;
pub use memory::CrossBatchMemory;
pub use triplet::{Mining, TripletLoss};
