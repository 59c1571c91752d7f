//! The closed-form head: a linear discriminant projection of the training rows (both views
//! pooled, augmented views included as extra rows), validated once.

use std::collections::BTreeSet;

use handmatch_core::metrics::evaluate_protocols;
use handmatch_export::head::Head;

use super::config::FitConfig;
use super::data::{embed_cached, TrainingData};
use super::error::FitError;
use super::outcome::FitOutcome;
use crate::extract::FeatureCache;
use crate::lda::{fit_lda, LdaFit, LdaOptions, Shrinkage};

pub fn fit_lda_head(
    cache: &FeatureCache,
    train: &BTreeSet<String>,
    val: &BTreeSet<String>,
    cfg: &FitConfig,
) -> Result<FitOutcome, FitError> {
    let data = TrainingData::new(cache, train, val, cfg)?;
    let head: Head = lda_fit(&data, cfg)?.head().into();
    let validation = evaluate_protocols(&embed_cached(&head, cache, &data.val_rows))?;
    Ok(FitOutcome::new(
        head,
        0,
        validation,
        Vec::new(),
        cache,
        &data.val_rows,
    ))
}

/// The LDA projection of `data`'s training rows: what `--head lda` exports and what
/// `--head linear` starts from.
pub fn lda_fit(data: &TrainingData<'_>, cfg: &FitConfig) -> Result<LdaFit, FitError> {
    let cache = data.cache;
    let n_views = cache.views.shape()[1];
    let mut rows: Vec<&[f32]> = Vec::new();
    let mut labels: Vec<u32> = Vec::new();
    let mut views = Vec::new();
    for (i, &r) in data.train_rows.iter().enumerate() {
        rows.push(cache.eval.row(r).to_slice().expect("rows are contiguous"));
        labels.push(data.subjects[i]);
        views.push(data.views[i]);
        for v in 0..n_views {
            let view = cache.views.slice(ndarray::s![r, v, ..]);
            rows.push(view.to_slice().expect("views are contiguous"));
            labels.push(data.subjects[i]);
            views.push(data.views[i]);
        }
    }
    let shrinkage = match cfg.shrinkage {
        None => Shrinkage::LedoitWolf,
        Some(amount) => Shrinkage::Fixed { amount },
    };
    let fit = fit_lda(
        &rows,
        &labels,
        &views,
        &LdaOptions {
            components: cfg.embedding_dim,
            shrinkage,
            cross_view: cfg.cross_view,
        },
    )?;
    tracing::info!(
        components = fit.projection.embedding_dim(),
        shrinkage = fit.shrinkage,
        rows = rows.len(),
        "LDA head fitted"
    );
    Ok(fit)
}
