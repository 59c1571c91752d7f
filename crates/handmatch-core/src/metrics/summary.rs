//! Summaries of many queries' ranks: recall@k with intervals and chance levels, CMC, mean
//! rank and mean average precision.

use serde::{Deserialize, Serialize};

use super::chance::chance_recall_at_k;
use super::error::MetricsError;
use super::wilson::wilson_interval;

/// The cut-offs reported as recall@k.
pub const RECALL_KS: [usize; 3] = [1, 5, 10];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecallAtK {
    pub k: usize,
    /// Fraction of queries whose first correct item is within the top `k`.
    pub value: f64,
    /// 95% Wilson score interval of `value`.
    pub wilson_low: f64,
    pub wilson_high: f64,
    /// Expected `value` of a ranking that ignores the query. For a gallery of distinct
    /// subjects (one correct item per query) this is `min(k, gallery_size) / gallery_size`;
    /// when queries have several correct items it is the exact chance of at least one of
    /// them landing in the top `k`, averaged over queries.
    pub chance: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    pub queries: usize,
    pub gallery_size: usize,
    /// One entry per `RECALL_KS`.
    pub recall: Vec<RecallAtK>,
    pub mean_rank: f64,
    pub mean_ap: f64,
    /// `cmc[k - 1]` is the fraction of queries with rank `<= k`, for `k` in `1..=gallery_size`.
    pub cmc: Vec<f64>,
}

impl RetrievalMetrics {
    /// Summary for a gallery of distinct subjects: each query has exactly one correct item.
    pub fn from_ranks(
        ranks: &[usize],
        aps: &[f64],
        gallery_size: usize,
    ) -> Result<Self, MetricsError> {
        Self::from_ranks_with_correct_counts(ranks, aps, gallery_size, &vec![1; ranks.len()])
    }

    /// Summary for a gallery where query `i` has `correct[i]` correct items (e.g. every
    /// palmar image of its subject); only the chance levels depend on those counts.
    pub fn from_ranks_with_correct_counts(
        ranks: &[usize],
        aps: &[f64],
        gallery_size: usize,
        correct: &[usize],
    ) -> Result<Self, MetricsError> {
        if ranks.len() != aps.len() {
            return Err(MetricsError::RanksApsMismatch {
                ranks: ranks.len(),
                aps: aps.len(),
            });
        }
        if ranks.len() != correct.len() {
            return Err(MetricsError::CorrectCountsMismatch {
                ranks: ranks.len(),
                correct: correct.len(),
            });
        }
        if ranks.is_empty() {
            return Err(MetricsError::NoQueries);
        }
        if let Some(&rank) = ranks.iter().find(|&&r| r == 0 || r > gallery_size) {
            return Err(MetricsError::RankOutOfRange { rank, gallery_size });
        }
        if let Some(&m) = correct.iter().find(|&&m| m == 0 || m > gallery_size) {
            return Err(MetricsError::CorrectCountOutOfRange {
                correct: m,
                gallery_size,
            });
        }

        let queries = ranks.len();
        let mut rank_counts = vec![0usize; gallery_size + 1];
        ranks.iter().for_each(|&r| rank_counts[r] += 1);
        let mut within = 0usize;
        let cmc: Vec<f64> = rank_counts[1..]
            .iter()
            .map(|&c| {
                within += c;
                within as f64 / queries as f64
            })
            .collect();

        let recall = RECALL_KS
            .iter()
            .map(|&k| {
                let successes = ranks.iter().filter(|&&r| r <= k).count();
                let (wilson_low, wilson_high) = wilson_interval(successes, queries);
                let chance = correct
                    .iter()
                    .map(|&m| chance_recall_at_k(k, gallery_size, m))
                    .sum::<f64>()
                    / queries as f64;
                RecallAtK {
                    k,
                    value: successes as f64 / queries as f64,
                    wilson_low,
                    wilson_high,
                    chance,
                }
            })
            .collect();

        Ok(Self {
            queries,
            gallery_size,
            recall,
            mean_rank: ranks.iter().sum::<usize>() as f64 / queries as f64,
            mean_ap: aps.iter().sum::<f64>() / queries as f64,
            cmc,
        })
    }

    /// Recall at `k` when `k` is one of `RECALL_KS`.
    pub fn recall_at(&self, k: usize) -> Option<&RecallAtK> {
        self.recall.iter().find(|r| r.k == k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_cmc_and_means_from_ranks() {
        let ranks = [1, 1, 2, 7, 12];
        let aps = [1.0, 1.0, 0.5, 1.0 / 7.0, 1.0 / 12.0];
        let m = RetrievalMetrics::from_ranks(&ranks, &aps, 12).unwrap();
        assert_eq!((m.queries, m.gallery_size), (5, 12));
        let values: Vec<f64> = m.recall.iter().map(|r| r.value).collect();
        assert_eq!(values, [0.4, 0.6, 0.8]);
        let chances: Vec<f64> = m.recall.iter().map(|r| r.chance).collect();
        for (c, expected) in chances.iter().zip([1.0 / 12.0, 5.0 / 12.0, 10.0 / 12.0]) {
            assert!((c - expected).abs() < 1e-12);
        }
        assert!((m.mean_rank - 23.0 / 5.0).abs() < 1e-12);
        let expected_map = (2.5 + 1.0 / 7.0 + 1.0 / 12.0) / 5.0;
        assert!((m.mean_ap - expected_map).abs() < 1e-12);
        assert_eq!(m.cmc.len(), 12);
        assert_eq!(m.cmc[0], 0.4);
        assert_eq!(m.cmc[1], 0.6);
        assert_eq!(m.cmc[6], 0.8);
        assert!(m.cmc.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*m.cmc.last().unwrap(), 1.0);
        let r1 = m.recall_at(1).unwrap();
        assert!(r1.wilson_low < 0.4 && 0.4 < r1.wilson_high);
    }

    #[test]
    fn chance_saturates_on_small_gallery() {
        let m = RetrievalMetrics::from_ranks(&[1, 2], &[1.0, 0.5], 3).unwrap();
        let chances: Vec<f64> = m.recall.iter().map(|r| r.chance).collect();
        assert!((chances[0] - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(&chances[1..], [1.0, 1.0]);
        assert_eq!(m.cmc, [0.5, 1.0, 1.0]);
    }

    #[test]
    fn chance_with_several_correct_items_is_averaged() {
        // n = 5: m = 2 gives 1 - 3/5 = 0.4 at k = 1; m = 1 gives 0.2. Mean 0.3.
        let m = RetrievalMetrics::from_ranks_with_correct_counts(
            &[1, 3],
            &[1.0, 1.0 / 3.0],
            5,
            &[2, 1],
        )
        .unwrap();
        assert!((m.recall[0].chance - 0.3).abs() < 1e-12);
    }

    #[test]
    fn invalid_inputs_are_named() {
        assert_eq!(
            RetrievalMetrics::from_ranks(&[], &[], 3),
            Err(MetricsError::NoQueries)
        );
        assert_eq!(
            RetrievalMetrics::from_ranks(&[4], &[0.25], 3),
            Err(MetricsError::RankOutOfRange {
                rank: 4,
                gallery_size: 3
            })
        );
        assert!(matches!(
            RetrievalMetrics::from_ranks(&[1], &[], 3),
            Err(MetricsError::RanksApsMismatch { .. })
        ));
    }

    #[test]
    fn round_trips_through_json() {
        let m = RetrievalMetrics::from_ranks(&[1, 2], &[1.0, 0.5], 3).unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<RetrievalMetrics>(&json).unwrap(), m);
    }
}
