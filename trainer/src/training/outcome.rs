//! What a head fit returns: the head, how it validated, and its open-set thresholds.

use handmatch_core::metrics::ProtocolResults;
use handmatch_export::head::Head;

use super::data::embed_cached;
use super::open_set::{operating_points, scores, OperatingPoint};
use crate::extract::FeatureCache;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub mean_loss: f64,
    pub lr: f64,
    pub seconds: f64,
    /// Validation results, on validation epochs.
    pub validation: Option<ProtocolResults>,
}

pub struct FitOutcome {
    pub head: Head,
    /// The epoch whose head was kept (0 for heads fitted in closed form).
    pub best_epoch: usize,
    pub best_validation: ProtocolResults,
    pub history: Vec<EpochRecord>,
    pub operating_points: Vec<OperatingPoint>,
}

impl FitOutcome {
    /// The kept head's outcome, with thresholds at FPIR 1 % and 0.1 % read off its scores on
    /// the validation rows.
    pub fn new(
        head: Head,
        best_epoch: usize,
        best_validation: ProtocolResults,
        history: Vec<EpochRecord>,
        cache: &FeatureCache,
        val_rows: &[usize],
    ) -> Self {
        let val_scores = scores(&embed_cached(&head, cache, val_rows));
        let operating_points = operating_points(&val_scores, "validation subjects");
        Self {
            head,
            best_epoch,
            best_validation,
            history,
            operating_points,
        }
    }
}
