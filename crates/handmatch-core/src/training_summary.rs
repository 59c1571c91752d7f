//! What `handmatch-train fit` records in an artefact about how its head was trained: the
//! contract between the trainer (which writes it), the server (which passes it on in
//! GetInfo) and the evaluation client (which reads the open-set thresholds from it). One
//! typed struct, so a renamed field fails to parse instead of silently reading as nothing.

use crate::metrics::RetrievalMetrics;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainingSummary {
    /// The trainer's configuration as it ran, for people reading the artefact; nothing
    /// reads it back.
    pub config: serde_json::Value,
    /// The epoch whose head was kept.
    pub best_epoch: usize,
    /// The model id of the backbone whose features the head was trained on.
    pub backbone_model_id: String,
    pub split: SplitSummary,
    /// The kept head's validation results.
    pub validation: ValidationSummary,
    /// Score thresholds at target false-positive identification rates, best first.
    pub open_set: Vec<OperatingPoint>,
    /// How the settings were chosen, when `fit --folds` cross-validated them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionSummary>,
}

/// Model selection by K-fold cross-validation inside the training subjects.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SelectionSummary {
    pub folds: usize,
    /// What was maximised, e.g. "image → template mAP".
    pub score: String,
    /// Every candidate's best point, the chosen one first.
    pub candidates: Vec<CandidateSummary>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CandidateSummary {
    pub name: String,
    /// Its best epoch (0 for heads fitted in closed form).
    pub epoch: usize,
    /// Mean and standard deviation of the score over the folds at that epoch.
    pub mean: f64,
    pub std: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitSummary {
    pub seed: u64,
    /// Subjects in each subset.
    pub train: usize,
    pub val: usize,
    pub test: usize,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ValidationSummary {
    pub template_to_template: MetricsSummary,
    pub image_to_template: MetricsSummary,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricsSummary {
    pub r1: Option<f64>,
    pub r5: Option<f64>,
    pub r10: Option<f64>,
    pub mean_rank: f64,
    pub map: f64,
    pub queries: usize,
    pub gallery: usize,
}

impl From<&RetrievalMetrics> for MetricsSummary {
    fn from(m: &RetrievalMetrics) -> Self {
        Self {
            r1: m.recall_at(1).map(|r| r.value),
            r5: m.recall_at(5).map(|r| r.value),
            r10: m.recall_at(10).map(|r| r.value),
            mean_rank: m.mean_rank,
            map: m.mean_ap,
            queries: m.queries,
            gallery: m.gallery_size,
        }
    }
}

/// A score threshold read off at a target false-positive identification rate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OperatingPoint {
    pub target_fpir: f64,
    pub threshold: f32,
    /// What the data gives at `threshold` (it may not reach the target with few searches).
    pub fpir: f64,
    /// Mated searches whose own subject is not rank 1 with a score ≥ threshold.
    pub fnir: f64,
    pub mated_searches: usize,
    pub non_mated_searches: usize,
    /// Where the searches came from: the validation subjects, or the training subjects'
    /// out-of-fold scores under `fit --folds`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

impl TrainingSummary {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }

    /// Parses what `to_json` wrote; the error names the field that does not fit.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> TrainingSummary {
        let metrics = MetricsSummary {
            r1: Some(0.5),
            r5: Some(0.75),
            r10: None,
            mean_rank: 2.5,
            map: 0.6,
            queries: 11,
            gallery: 11,
        };
        TrainingSummary {
            config: serde_json::json!({"epochs": 30}),
            best_epoch: 20,
            backbone_model_id: "abc".into(),
            split: SplitSummary {
                seed: 0,
                train: 54,
                val: 11,
                test: 44,
            },
            validation: ValidationSummary {
                template_to_template: metrics.clone(),
                image_to_template: metrics,
            },
            open_set: vec![OperatingPoint {
                target_fpir: 0.01,
                threshold: 0.7,
                fpir: 0.009,
                fnir: 0.3,
                mated_searches: 100,
                non_mated_searches: 100,
                source: "out-of-fold (5 folds)".into(),
            }],
            selection: Some(SelectionSummary {
                folds: 5,
                score: "image → template mAP".into(),
                candidates: vec![CandidateSummary {
                    name: "shrinkage=0.6".into(),
                    epoch: 0,
                    mean: 0.4,
                    std: 0.05,
                }],
            }),
        }
    }

    #[test]
    fn a_summary_survives_its_json() {
        let s = summary();
        assert_eq!(TrainingSummary::from_json(&s.to_json()).unwrap(), s);
    }

    #[test]
    fn a_renamed_field_does_not_parse_and_the_error_names_it() {
        let text = summary()
            .to_json()
            .replace("\"open_set\"", "\"operating_points\"");
        let err = TrainingSummary::from_json(&text).unwrap_err().to_string();
        assert!(err.contains("open_set"), "{err}");
    }
}
