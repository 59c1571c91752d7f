//! Open-set thresholds: on validation subjects, each dorsal image is searched once against
//! the palmar templates with its own subject enrolled (a mated search) and once without it
//! (a non-mated search). A threshold t is then read off at a target false-positive
//! identification rate: the fraction of non-mated searches whose best score reaches t.

use handmatch_core::hand_image::Aspect;
use handmatch_core::metrics::EmbeddedImage;
use handmatch_core::template::{dot, mean_template};
pub use handmatch_core::training_summary::OperatingPoint;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scores {
    /// Each dorsal image's score against its own subject's template.
    pub mated: Vec<f32>,
    /// Each dorsal image's best score when its own subject is not enrolled.
    pub non_mated: Vec<f32>,
    /// Whether the own subject was rank 1 in the mated search.
    pub mated_rank1: Vec<bool>,
}

impl Scores {
    /// Adds another set of searches (another fold's).
    pub fn append(&mut self, other: Scores) {
        self.mated.extend(other.mated);
        self.non_mated.extend(other.non_mated);
        self.mated_rank1.extend(other.mated_rank1);
    }
}

pub fn scores(images: &[EmbeddedImage]) -> Scores {
    let mut subjects: Vec<&str> = images.iter().map(|i| i.subject.as_str()).collect();
    subjects.sort();
    subjects.dedup();
    let dim = images.first().map_or(0, |i| i.embedding.len());
    let templates: Vec<(&str, Vec<f32>)> = subjects
        .iter()
        .filter_map(|s| {
            let rows = images
                .iter()
                .filter(|i| i.subject == *s && i.aspect == Aspect::Palmar)
                .map(|i| i.embedding.as_slice());
            mean_template(rows, dim).map(|t| (*s, t))
        })
        .collect();
    let mut out = Scores {
        mated: Vec::new(),
        non_mated: Vec::new(),
        mated_rank1: Vec::new(),
    };
    for q in images.iter().filter(|i| i.aspect == Aspect::Dorsal) {
        let Some(own) = templates.iter().find(|(s, _)| *s == q.subject) else {
            continue;
        };
        let own_score = dot(&q.embedding, &own.1);
        let best_other = templates
            .iter()
            .filter(|(s, _)| *s != q.subject)
            .map(|(_, t)| dot(&q.embedding, t))
            .fold(f32::NEG_INFINITY, f32::max);
        if best_other.is_finite() {
            out.non_mated.push(best_other);
        }
        out.mated.push(own_score);
        out.mated_rank1.push(own_score > best_other);
    }
    out
}

/// The FPIRs every fitted head gets a threshold for.
pub const TARGET_FPIRS: [f64; 2] = [0.01, 0.001];

/// Thresholds at `TARGET_FPIRS`, each saying where its searches came from.
pub fn operating_points(scores: &Scores, source: &str) -> Vec<OperatingPoint> {
    TARGET_FPIRS
        .iter()
        .filter_map(|&t| operating_point(scores, t))
        .map(|p| OperatingPoint {
            source: source.to_string(),
            ..p
        })
        .collect()
}

/// The lowest threshold whose FPIR is at most `target` (or, when the searches are too few
/// for that target, just above the highest non-mated score).
pub fn operating_point(scores: &Scores, target: f64) -> Option<OperatingPoint> {
    if scores.non_mated.is_empty() || scores.mated.is_empty() {
        return None;
    }
    let mut non = scores.non_mated.clone();
    non.sort_by(|a, b| b.total_cmp(a));
    let allowed = (target * non.len() as f64).floor() as usize;
    // Scores ≥ t count as false positives: t just above the (allowed+1)-th highest.
    let threshold = next_up(non[allowed.min(non.len() - 1)]);
    let fp = non.iter().filter(|s| **s >= threshold).count();
    let misses = scores
        .mated
        .iter()
        .zip(&scores.mated_rank1)
        .filter(|(s, r1)| !**r1 || **s < threshold)
        .count();
    Some(OperatingPoint {
        target_fpir: target,
        threshold,
        fpir: fp as f64 / non.len() as f64,
        fnir: misses as f64 / scores.mated.len() as f64,
        mated_searches: scores.mated.len(),
        non_mated_searches: non.len(),
        source: String::new(),
    })
}

fn next_up(x: f32) -> f32 {
    f32::from_bits(if x >= 0.0 {
        x.to_bits() + 1
    } else {
        x.to_bits() - 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_keeps_fpir_at_or_below_the_target() {
        let s = Scores {
            mated: vec![0.9, 0.8, 0.3],
            non_mated: (0..100).map(|i| i as f32 / 100.0).collect(),
            mated_rank1: vec![true, true, false],
        };
        let p = operating_point(&s, 0.01).unwrap();
        assert!(p.fpir <= 0.01 && p.threshold > 0.98 && p.threshold < 0.99 + 1e-6);
        assert_eq!(p.fnir, 1.0, "all mated scores are below 0.98");
        let p = operating_point(&s, 0.5).unwrap();
        assert!((p.fpir - 0.5).abs() < 0.011, "{p:?}");
        assert!((p.fnir - 1.0 / 3.0).abs() < 1e-9, "{p:?}");
        // Too few searches for 0.1 %: the threshold goes above every non-mated score.
        let p = operating_point(&s, 0.001).unwrap();
        assert_eq!(p.fpir, 0.0);
    }
}
