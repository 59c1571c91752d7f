//! One query's place in a ranked gallery.

use crate::template::dot;

use super::error::MetricsError;

/// Where the true label lands when one query is ranked against a gallery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryRank {
    /// 1-based position of the first gallery item with the true label.
    pub rank: usize,
    /// Average precision over every gallery item with the true label.
    pub average_precision: f64,
    /// How many gallery items carry the true label.
    pub correct: usize,
}

/// Ranks `vectors` (labelled by `labels`) against `query` by f32 dot product, best first;
/// equal scores go to the smaller label and then the smaller gallery index, matching the
/// server's tie-break so ranks are reproducible there. AP is computed over the ranking as
/// ordered, i.e. ties are not averaged.
pub fn rank_query<L: AsRef<str>, V: AsRef<[f32]>>(
    query: &[f32],
    labels: &[L],
    vectors: &[V],
    true_label: &str,
) -> Result<QueryRank, MetricsError> {
    if labels.len() != vectors.len() {
        return Err(MetricsError::GalleryLengthMismatch {
            labels: labels.len(),
            vectors: vectors.len(),
        });
    }
    // A short vector would silently score on a prefix through `zip`.
    if let Some(v) = vectors.iter().find(|v| v.as_ref().len() != query.len()) {
        return Err(MetricsError::DimensionMismatch {
            expected: query.len(),
            found: v.as_ref().len(),
        });
    }
    let mut order: Vec<(f32, usize)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (dot(query, v.as_ref()), i))
        .collect();
    order.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| labels[a.1].as_ref().cmp(labels[b.1].as_ref()))
            .then_with(|| a.1.cmp(&b.1))
    });

    let mut first = None;
    let mut hits = 0usize;
    let mut precision_sum = 0.0;
    for (position, &(_, i)) in order.iter().enumerate() {
        if labels[i].as_ref() == true_label {
            hits += 1;
            precision_sum += hits as f64 / (position + 1) as f64;
            first.get_or_insert(position + 1);
        }
    }
    let rank = first.ok_or_else(|| MetricsError::TrueLabelAbsent {
        label: true_label.to_string(),
    })?;
    Ok(QueryRank {
        rank,
        average_precision: precision_sum / hits as f64,
        correct: hits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tie_goes_to_smaller_label_then_smaller_index() {
        // "b" and "a" score the same; "a" wins the tie even though it comes later.
        let labels = ["b", "a", "c"];
        let vectors = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
        let q = [1.0, 0.0];
        assert_eq!(rank_query(&q, &labels, &vectors, "a").unwrap().rank, 1);
        assert_eq!(rank_query(&q, &labels, &vectors, "b").unwrap().rank, 2);
        assert_eq!(rank_query(&q, &labels, &vectors, "c").unwrap().rank, 3);

        // Same label and same score: the smaller index comes first, so both are found
        // at ranks 1 and 2 and AP is 1.
        let labels = ["x", "x", "y"];
        let r = rank_query(&q, &labels, &vectors, "x").unwrap();
        assert_eq!((r.rank, r.correct, r.average_precision), (1, 2, 1.0));
    }

    #[test]
    fn average_precision_over_all_correct_items() {
        // Scores for query [1, 0]: 0.9 (b), 0.8 (a), 0.5 (c), 0.3 (a), 0.1 (a).
        // Correct "a" at positions 2, 4, 5: AP = (1/2 + 2/4 + 3/5) / 3 = 1.6 / 3.
        let labels = ["a", "b", "a", "c", "a"];
        let vectors = [[0.8, 0.0], [0.9, 0.0], [0.1, 0.0], [0.5, 0.0], [0.3, 0.0]];
        let r = rank_query(&[1.0, 0.0], &labels, &vectors, "a").unwrap();
        assert_eq!(r.rank, 2);
        assert_eq!(r.correct, 3);
        assert!((r.average_precision - 1.6 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn absent_label_and_bad_shapes_are_errors() {
        let labels = ["a"];
        let vectors = [[1.0, 0.0]];
        assert_eq!(
            rank_query(&[1.0, 0.0], &labels, &vectors, "z"),
            Err(MetricsError::TrueLabelAbsent { label: "z".into() })
        );
        assert!(matches!(
            rank_query(&[1.0, 0.0, 0.0], &labels, &vectors, "a"),
            Err(MetricsError::DimensionMismatch { .. })
        ));
        assert!(matches!(
            rank_query(&[1.0, 0.0], &["a", "b"], &vectors, "a"),
            Err(MetricsError::GalleryLengthMismatch { .. })
        ));
    }
}
