//! One head of the configured kind on all of a cache's columns: by gradient steps (`mlp`,
//! `linear`) or in closed form (`lda`). Ensembles fit their members through this.

use std::collections::BTreeSet;

use super::config::{FitConfig, HeadKind};
use super::error::FitError;
use super::gradient::fit_gradient;
use super::lda_head::fit_lda_head;
use super::outcome::{EpochRecord, FitOutcome};
use crate::extract::FeatureCache;

/// One head of `cfg.head`'s kind on all of `cache`'s columns.
pub fn fit_one(
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
