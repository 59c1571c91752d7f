//! The differentiable Euclidean distance matrix the losses mine and gather from.

use candle_core::{DType, Result, Tensor};

/// Squared distances below this are raised to it before the square root: the derivative
/// of `sqrt` at 0 is infinite, and rounding can make a true zero slightly negative.
pub const MIN_SQUARED_DISTANCE: f64 = 1e-12;

/// `[B, E] × [M, E] → [B, M]` with `d_ij = sqrt(max(‖a_i − c_j‖², 1e-12))`.
/// Expanded as `‖a‖² + ‖c‖² − 2 a·c` so memory stays `O(B·M)` even with a large
/// cross-batch memory; the cancellation this costs is far below the margins in use.
pub fn pairwise_distances(anchors: &Tensor, candidates: &Tensor) -> Result<Tensor> {
    let anchor_sq = anchors.sqr()?.sum_keepdim(1)?;
    let candidate_sq = candidates.sqr()?.sum_keepdim(1)?.t()?;
    let gram = anchors.matmul(&candidates.t()?)?;
    let squared = anchor_sq
        .broadcast_add(&candidate_sq)?
        .sub(&(gram * 2.0)?)?
        .maximum(MIN_SQUARED_DISTANCE)?;
    squared.sqrt()
}

/// Detached copy of a `[B, M]` matrix for the mining decisions, in f64 whatever the dtype.
pub(crate) fn detached_rows(matrix: &Tensor) -> Result<Vec<Vec<f64>>> {
    matrix.detach().to_dtype(DType::F64)?.to_vec2::<f64>()
}

/// Gathers `matrix[i, j]` for each `(i, j)` into a 1-D tensor that keeps the graph.
pub(crate) fn gather_entries(matrix: &Tensor, entries: &[(usize, usize)]) -> Result<Tensor> {
    let cols = matrix.dim(1)?;
    let flat_index: Vec<u32> = entries
        .iter()
        .map(|&(i, j)| u32::try_from(i * cols + j).expect("distance matrix fits u32 indices"))
        .collect();
    let index = Tensor::from_vec(flat_index, entries.len(), matrix.device())?;
    matrix.flatten_all()?.index_select(&index, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_direct_euclidean_distances() {
        let a = Tensor::new(&[[1.0f64, 0.0], [0.6, 0.8]], &Device::Cpu).unwrap();
        let c = Tensor::new(&[[0.0f64, 1.0], [1.0, 0.0], [0.6, 0.8]], &Device::Cpu).unwrap();
        let d = pairwise_distances(&a, &c)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        let expected = [
            [2f64.sqrt(), 0.0, 0.8f64.sqrt()],
            [0.4f64.sqrt(), 0.8f64.sqrt(), 0.0],
        ];
        for (row, expected_row) in d.iter().zip(expected) {
            for (got, want) in row.iter().zip(expected_row) {
                // A true zero comes out as sqrt(MIN_SQUARED_DISTANCE) = 1e-6.
                assert!((got - want).abs() <= 1e-6, "{got} vs {want}");
            }
        }
    }
}
