//! Recall@k of a ranking that ignores the query: the floor any real matcher must beat.

/// Probability that a uniformly random ordering of a gallery of `gallery_size` items, of
/// which `correct` carry the query's label, puts at least one of them in the top `k`:
/// `1 - prod_{i<k} (n - m - i) / (n - i)`. With one correct item (a gallery of distinct
/// subjects) this is `min(k, n) / n`.
pub fn chance_recall_at_k(k: usize, gallery_size: usize, correct: usize) -> f64 {
    let (n, m) = (gallery_size, correct);
    if m == 0 || n == 0 {
        return 0.0;
    }
    let mut all_missed = 1.0;
    for i in 0..k {
        if i + m >= n {
            return 1.0;
        }
        all_missed *= (n - m - i) as f64 / (n - i) as f64;
    }
    1.0 - all_missed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_correct_item_gives_k_over_n() {
        assert!((chance_recall_at_k(1, 10, 1) - 0.1).abs() < 1e-12);
        assert!((chance_recall_at_k(5, 10, 1) - 0.5).abs() < 1e-12);
        assert_eq!(chance_recall_at_k(10, 10, 1), 1.0);
        assert_eq!(chance_recall_at_k(10, 4, 1), 1.0);
    }

    #[test]
    fn several_correct_items() {
        // n = 5, m = 2, k = 2: 1 - (3/5)(2/4) = 0.7.
        assert!((chance_recall_at_k(2, 5, 2) - 0.7).abs() < 1e-12);
        // Only 3 wrong items, so any top-4 holds a correct one.
        assert_eq!(chance_recall_at_k(4, 5, 2), 1.0);
        assert_eq!(chance_recall_at_k(3, 5, 0), 0.0);
    }
}
