//! Model selection by subject-disjoint K-fold cross-validation inside the training
//! subjects (`fit --folds K`, `--tune`): every candidate configuration is fitted K times,
//! each time validated on the fold left out; the candidate and epoch with the best mean
//! score win. The same folds, refitted at the winning settings, give out-of-fold scores of
//! every training subject, pooled for the open-set thresholds.

use std::collections::{BTreeMap, BTreeSet};

use handmatch_core::dataset::folds::k_folds;
use handmatch_core::metrics::ProtocolResults;
use handmatch_core::training_summary::{CandidateSummary, SelectionSummary};

use super::config::{FitConfig, HeadKind, LossChoice};
use super::data::{embed_cached, rows_of};
use super::error::FitError;
use super::open_set::{operating_points, scores, Scores};
use super::outcome::{EpochRecord, FitOutcome};
use super::run::fit;
use crate::extract::FeatureCache;

/// `--folds K` (and `--tune`): how the settings are chosen before the final fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectionPlan {
    pub folds: usize,
    pub tune: bool,
}

/// Fits `cfg` on `train` (validated on `val`); with a plan, the settings are chosen by
/// cross-validation inside `train` first, and the open-set thresholds come from the
/// pooled out-of-fold scores instead of the validation subjects.
pub fn fit_selected(
    cache: &FeatureCache,
    train: &BTreeSet<String>,
    val: &BTreeSet<String>,
    cfg: &FitConfig,
    plan: Option<SelectionPlan>,
    on_epoch: impl FnMut(&EpochRecord),
) -> Result<(FitOutcome, Option<Selection>), FitError> {
    let Some(plan) = plan else {
        return Ok((fit(cache, train, val, cfg, on_epoch)?, None));
    };
    let selection = select(
        cache,
        train,
        &candidates(cfg, plan.tune),
        plan.folds,
        cfg.seed,
    )?;
    let mut outcome = fit(cache, train, val, &selection.config, on_epoch)?;
    let source = format!(
        "out-of-fold scores of the training subjects ({} folds)",
        plan.folds
    );
    outcome.operating_points = operating_points(&selection.out_of_fold, &source);
    Ok((outcome, Some(selection)))
}

/// The score selection maximises: image → template mean average precision (with one
/// template per subject, the mean reciprocal rank of the own subject). Every query counts
/// by how far down its subject is, so it moves less from fold to fold than R@1.
pub fn selection_score(results: &ProtocolResults) -> f64 {
    results.image_to_template.mean_ap
}

/// One configuration's cross-validated scores.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CandidateResult {
    pub name: String,
    /// `(epoch, mean, std)` over the folds at each validation epoch (epoch 0 for LDA).
    pub curve: Vec<(usize, f64, f64)>,
    /// Its best point on the curve.
    pub epoch: usize,
    pub mean: f64,
    pub std: f64,
    /// For heads that validate once (closed form, ensembles of them): each fold's searches
    /// by the head fitted without it, pooled — the out-of-fold scores, if this one wins.
    #[serde(skip)]
    out_of_fold: Option<Scores>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Selection {
    pub folds: usize,
    pub score: &'static str,
    pub candidates: Vec<CandidateResult>,
    /// Index into `candidates`.
    pub chosen: usize,
    /// The winner, with `stop_at` set for gradient heads.
    pub config: FitConfig,
    #[serde(skip)]
    pub out_of_fold: Scores,
}

impl Selection {
    /// What the artefact's training summary records: every candidate, the chosen first.
    pub fn summary(&self) -> SelectionSummary {
        let mut order: Vec<usize> = (0..self.candidates.len()).collect();
        order.sort_by_key(|&i| i != self.chosen);
        SelectionSummary {
            folds: self.folds,
            score: self.score.to_string(),
            candidates: order
                .into_iter()
                .map(|i| {
                    let c = &self.candidates[i];
                    CandidateSummary {
                        name: c.name.clone(),
                        epoch: c.epoch,
                        mean: c.mean,
                        std: c.std,
                    }
                })
                .collect(),
        }
    }
}

/// The candidates `--tune` tries for each head: a small grid around the settings that
/// matter most in the small-data regime; without `tune`, the given configuration alone.
pub fn candidates(base: &FitConfig, tune: bool) -> Vec<(String, FitConfig)> {
    if !tune {
        return vec![("as given".into(), base.clone())];
    }
    match base.head {
        HeadKind::Lda => [0.2, 0.4, 0.6, 0.8, 0.9]
            .into_iter()
            .map(|s| {
                let cfg = FitConfig {
                    shrinkage: Some(s),
                    ..base.clone()
                };
                (format!("shrinkage={s}"), cfg)
            })
            .collect(),
        HeadKind::Linear => [0.0, 0.1, 1.0]
            .into_iter()
            .map(|p| {
                let cfg = FitConfig {
                    init_penalty: p,
                    ..base.clone()
                };
                (format!("init_penalty={p}"), cfg)
            })
            .collect(),
        HeadKind::Mlp => {
            let mut out = Vec::new();
            for margin in [0.3, 0.5] {
                for weight_decay in [1e-4, 1e-2] {
                    let loss = match base.loss {
                        LossChoice::Triplet {
                            mining,
                            soft_margin,
                            ..
                        } => LossChoice::Triplet {
                            mining,
                            margin,
                            soft_margin,
                        },
                        LossChoice::Contrastive { .. } => LossChoice::Contrastive { margin },
                    };
                    let cfg = FitConfig {
                        loss,
                        weight_decay,
                        ..base.clone()
                    };
                    out.push((format!("margin={margin},weight_decay={weight_decay}"), cfg));
                }
            }
            out
        }
    }
}

/// Cross-validates every candidate on `folds` subject-disjoint folds of `train`, picks
/// the best, and pools that winner's out-of-fold scores.
pub fn select(
    cache: &FeatureCache,
    train: &BTreeSet<String>,
    candidates: &[(String, FitConfig)],
    folds: usize,
    seed: u64,
) -> Result<Selection, FitError> {
    let subjects: Vec<String> = train.iter().cloned().collect();
    if folds < 2 || subjects.len() < 2 * folds {
        return Err(FitError::Data(format!(
            "--folds {folds} needs at least 2 folds and 2 training subjects per fold ({} subjects)",
            subjects.len()
        )));
    }
    let parts = k_folds(&subjects, folds, seed);
    let mut results = Vec::new();
    for (name, cfg) in candidates {
        results.push(cross_validate(cache, train, &parts, name, cfg)?);
    }
    let chosen = (0..results.len())
        .max_by(|&a, &b| results[a].mean.total_cmp(&results[b].mean))
        .expect("at least one candidate");
    let mut config = candidates[chosen].1.clone();
    // Closed-form heads and ensembles validate once (epoch 0): nothing to stop at, and
    // their fold fits already gave the out-of-fold scores.
    let out_of_fold = match results[chosen].out_of_fold.take() {
        Some(scores) => scores,
        None => {
            config.stop_at = Some(results[chosen].epoch);
            pooled_scores(cache, train, &parts, &config)?
        }
    };
    Ok(Selection {
        folds,
        score: "image → template mAP",
        candidates: results,
        chosen,
        config,
        out_of_fold,
    })
}

fn cross_validate(
    cache: &FeatureCache,
    train: &BTreeSet<String>,
    parts: &[BTreeSet<String>],
    name: &str,
    cfg: &FitConfig,
) -> Result<CandidateResult, FitError> {
    // epoch → one score per fold.
    let mut by_epoch: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut out_of_fold = Scores::default();
    for held_out in parts {
        let inner: BTreeSet<String> = train.difference(held_out).cloned().collect();
        let outcome = fit(cache, &inner, held_out, cfg, |_| {})?;
        if outcome.history.is_empty() {
            by_epoch
                .entry(0)
                .or_default()
                .push(selection_score(&outcome.best_validation));
            out_of_fold.append(held_out_scores(cache, &outcome, held_out));
        }
        for r in &outcome.history {
            if let Some(v) = &r.validation {
                by_epoch
                    .entry(r.epoch)
                    .or_default()
                    .push(selection_score(v));
            }
        }
    }
    let curve: Vec<(usize, f64, f64)> = by_epoch
        .into_iter()
        .map(|(epoch, s)| {
            let (mean, std) = mean_std(&s);
            (epoch, mean, std)
        })
        .collect();
    let &(epoch, mean, std) = curve
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("every fit validates at least once");
    tracing::info!(candidate = name, epoch, mean, std, "cross-validated");
    Ok(CandidateResult {
        name: name.to_string(),
        curve,
        epoch,
        mean,
        std,
        out_of_fold: (epoch == 0).then_some(out_of_fold),
    })
}

/// The held-out subjects searched by a head fitted without them.
fn held_out_scores(
    cache: &FeatureCache,
    outcome: &FitOutcome,
    held_out: &BTreeSet<String>,
) -> Scores {
    scores(&embed_cached(
        &outcome.head,
        cache,
        &rows_of(cache, held_out),
    ))
}

/// Each fold's subjects searched by the head fitted without them, at the chosen settings
/// (a gradient head stopped at the chosen epoch, so refitted).
fn pooled_scores(
    cache: &FeatureCache,
    train: &BTreeSet<String>,
    parts: &[BTreeSet<String>],
    cfg: &FitConfig,
) -> Result<Scores, FitError> {
    let mut pooled = Scores::default();
    for held_out in parts {
        let inner: BTreeSet<String> = train.difference(held_out).cloned().collect();
        let outcome = fit(cache, &inner, held_out, cfg, |_| {})?;
        pooled.append(held_out_scores(cache, &outcome, held_out));
    }
    Ok(pooled)
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}
