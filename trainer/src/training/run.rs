//! Fitting a head on cached features: by gradient steps (`mlp`, `linear`), in closed form
//! (`lda`), or as an ensemble of either.

use std::collections::BTreeSet;

use super::config::FitConfig;
use super::ensemble::fit_ensemble;
use super::error::FitError;
use super::one_head::fit_one;
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
    match &cfg.ensemble {
        Some(spec) => fit_ensemble(cache, train, val, cfg, spec, on_epoch),
        None => fit_one(cache, train, val, cfg, on_epoch),
    }
}
