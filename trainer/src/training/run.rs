//! Fitting a head on cached features: by gradient steps (`mlp`) or in closed form (`lda`).

use std::collections::BTreeSet;

use super::config::{FitConfig, HeadKind};
use super::error::FitError;
use super::gradient::fit_gradient;
use super::lda_head::fit_lda_head;
use super::outcome::{EpochRecord, FitOutcome};
use crate::extract::FeatureCache;

/// Fits the head `cfg.head` names on the training subjects' cached features; validates on
/// the validation subjects. `on_epoch` sees each epoch of a gradient fit.
pub fn fit(
    cache: &FeatureCache,
    train: &BTreeSet<String>,
    val: &BTreeSet<String>,
    cfg: &FitConfig,
    on_epoch: impl FnMut(&EpochRecord),
) -> Result<FitOutcome, FitError> {
    match cfg.head {
        HeadKind::Mlp | HeadKind::Linear => fit_gradient(cache, train, val, cfg, on_epoch),
        HeadKind::Lda => fit_lda_head(cache, train, val, cfg),
    }
}
