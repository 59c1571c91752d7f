//! Open-set decisions for Identify: the model's own threshold at a false-positive
//! identification rate (written into the artefact by `handmatch-train fit`), and whether
//! the best candidate reaches it.

use super::error::ServiceError;
use crate::index::Match;
use handmatch_core::embed::metadata::ArtefactMetadata;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatingPoint {
    Fpir1Pct,
    Fpir01Pct,
}

impl OperatingPoint {
    pub fn target_fpir(self) -> f64 {
        match self {
            Self::Fpir1Pct => 0.01,
            Self::Fpir01Pct => 0.001,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Fpir1Pct => "FPIR 1 %",
            Self::Fpir01Pct => "FPIR 0.1 %",
        }
    }

    /// The model's threshold for this point, or why there is none.
    pub fn threshold(self, model: &ArtefactMetadata) -> Result<f32, ServiceError> {
        let Some(training) = &model.training else {
            return Err(ServiceError::FailedPrecondition(format!(
                "operating_point {}: the model records no open-set thresholds (its head was \
                 not trained by `handmatch-train fit`)",
                self.label()
            )));
        };
        training
            .open_set
            .iter()
            .find(|p| (p.target_fpir - self.target_fpir()).abs() < 1e-12)
            .map(|p| p.threshold)
            .ok_or_else(|| {
                ServiceError::FailedPrecondition(format!(
                    "operating_point {}: the model records no threshold for it",
                    self.label()
                ))
            })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub point: OperatingPoint,
    pub threshold: f32,
    pub best: Match,
    pub is_match: bool,
}

impl Decision {
    pub fn new(point: OperatingPoint, threshold: f32, best: Match) -> Self {
        Self {
            point,
            threshold,
            is_match: best.score >= threshold,
            best,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use handmatch_core::training_summary::{
        MetricsSummary, OperatingPoint as Recorded, SplitSummary, TrainingSummary,
        ValidationSummary,
    };

    fn model(points: &[(f64, f32)]) -> ArtefactMetadata {
        let m = MetricsSummary {
            r1: None,
            r5: None,
            r10: None,
            mean_rank: 1.0,
            map: 1.0,
            queries: 1,
            gallery: 1,
        };
        ArtefactMetadata {
            model_id: "m".into(),
            backbone: "b".into(),
            input_size: 224,
            resize_short_side: 256,
            mean: [0.0; 3],
            std: [1.0; 3],
            embedding_dim: 8,
            created_at: String::new(),
            trainer_version: String::new(),
            hand_alignment: None,
            precision: Default::default(),
            decode: Default::default(),
            training: Some(TrainingSummary {
                config: Default::default(),
                best_epoch: 0,
                backbone_model_id: "b".into(),
                split: SplitSummary {
                    seed: 0,
                    train: 1,
                    val: 1,
                    test: 1,
                },
                validation: ValidationSummary {
                    template_to_template: m.clone(),
                    image_to_template: m,
                },
                open_set: points
                    .iter()
                    .map(|&(target_fpir, threshold)| Recorded {
                        target_fpir,
                        threshold,
                        fpir: target_fpir,
                        fnir: 0.5,
                        mated_searches: 100,
                        non_mated_searches: 100,
                        source: String::new(),
                    })
                    .collect(),
                selection: None,
            }),
        }
    }

    #[test]
    fn thresholds_come_from_the_model_and_missing_ones_say_so() {
        let meta = model(&[(0.01, 0.4), (0.001, 0.55)]);
        assert_eq!(OperatingPoint::Fpir1Pct.threshold(&meta).unwrap(), 0.4);
        assert_eq!(OperatingPoint::Fpir01Pct.threshold(&meta).unwrap(), 0.55);
        let only_one = model(&[(0.01, 0.4)]);
        let e = OperatingPoint::Fpir01Pct.threshold(&only_one).unwrap_err();
        assert!(e.to_string().contains("FPIR 0.1 %"), "{e}");
        let mut untrained = model(&[]);
        untrained.training = None;
        let e = OperatingPoint::Fpir1Pct.threshold(&untrained).unwrap_err();
        assert!(matches!(e, ServiceError::FailedPrecondition(_)), "{e}");
    }

    #[test]
    fn the_best_candidate_matches_at_or_above_the_threshold() {
        let best = |score| Match {
            subject_id: "a".into(),
            score,
        };
        assert!(Decision::new(OperatingPoint::Fpir1Pct, 0.4, best(0.4)).is_match);
        assert!(!Decision::new(OperatingPoint::Fpir1Pct, 0.4, best(0.3999)).is_match);
    }
}
