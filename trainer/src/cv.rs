//! Repeated subject-disjoint K-fold cross-validation over all subjects of a folder: for each
//! repeat the subjects are dealt into K folds; each fold is the test set once, a head is
//! fitted on the others (a seeded share of them held out for validation: epoch choice and
//! thresholds) and scored on the test fold under every protocol. Results are reported as
//! mean ± std over the K × repeats test folds, for each configuration given.

use std::borrow::Borrow;
use std::collections::BTreeSet;

use handmatch_core::dataset::folds::{hold_out, k_folds};
use handmatch_core::metrics::protocols::PROTOCOL_NAMES;
use handmatch_core::metrics::{evaluate_protocols, ProtocolResults, RetrievalMetrics};

use crate::extract::FeatureCache;
use crate::training::data::embed_cached;
use crate::training::data::rows_of;
use crate::training::selection::mean_std;
use crate::training::{fit_selected, FitConfig, FitError, SelectionPlan};

/// One configuration under test.
#[derive(Debug, Clone)]
pub struct Variant {
    pub name: String,
    pub config: FitConfig,
}

pub struct CvPlan {
    pub folds: usize,
    pub repeats: usize,
    /// Share of each training part held out for validation.
    pub val_fraction: f64,
    /// Repeat r deals the folds with seed `seed + r`.
    pub seed: u64,
    /// Model selection inside each training part (nested cross-validation).
    pub selection: Option<SelectionPlan>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FoldResult {
    pub repeat: usize,
    pub fold: usize,
    pub train_subjects: usize,
    pub val_subjects: usize,
    pub test_subjects: usize,
    pub results: ProtocolResults,
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct MeanStd {
    pub mean: f64,
    pub std: f64,
}

impl MeanStd {
    fn of(values: &[f64]) -> Self {
        let (mean, std) = mean_std(values);
        Self { mean, std }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ProtocolSummary {
    pub protocol: String,
    /// The folds whose test subjects had this protocol (the accessory-free ones can be
    /// absent in a fold); the means run over these.
    pub folds: usize,
    pub r1: MeanStd,
    pub r5: MeanStd,
    pub r10: MeanStd,
    pub mean_rank: MeanStd,
    pub map: MeanStd,
    /// Chance R@1 averaged over the folds.
    pub chance_r1: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VariantReport {
    pub name: String,
    pub config: FitConfig,
    pub folds: Vec<FoldResult>,
    pub protocols: Vec<ProtocolSummary>,
    /// Image → template CMC averaged over folds, up to the smallest gallery.
    pub mean_cmc: Vec<f64>,
}

/// Cross-validates every variant on the same folds of `subjects`, all on one feature cache.
pub fn cross_validate(
    cache: &FeatureCache,
    subjects: &[String],
    variants: &[Variant],
    plan: &CvPlan,
) -> anyhow::Result<Vec<VariantReport>> {
    cross_validate_per_fold(subjects, variants, plan, |_| Ok(cache))
}

/// Cross-validates every variant on the same folds of `subjects`, each fold on its own
/// features: `features(fold)` makes them from that fold's training subjects alone (a
/// backbone fine-tuned on them), so the test subjects stay unseen.
pub fn cross_validate_per_fold<C: Borrow<FeatureCache>>(
    subjects: &[String],
    variants: &[Variant],
    plan: &CvPlan,
    mut features: impl FnMut(&CvFold) -> anyhow::Result<C>,
) -> anyhow::Result<Vec<VariantReport>> {
    let mut results = vec![Vec::new(); variants.len()];
    for fold in plan_folds(subjects, plan) {
        let cache = features(&fold)?;
        for (v, r) in variants.iter().zip(&mut results) {
            r.push(run_fold(cache.borrow(), v, &fold, plan.selection)?);
        }
    }
    Ok(variants
        .iter()
        .zip(results)
        .map(|(v, r)| summarise(v, r))
        .collect())
}

/// The (repeat, fold, train, val, test) subject sets every variant is run on.
pub struct CvFold {
    pub repeat: usize,
    pub fold: usize,
    pub train: BTreeSet<String>,
    pub val: BTreeSet<String>,
    pub test: BTreeSet<String>,
}

fn plan_folds(subjects: &[String], plan: &CvPlan) -> Vec<CvFold> {
    let mut out = Vec::new();
    for repeat in 0..plan.repeats {
        let seed = plan.seed + repeat as u64;
        let folds = k_folds(subjects, plan.folds, seed);
        for (fold, test) in folds.iter().enumerate() {
            let rest: BTreeSet<String> = folds
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != fold)
                .flat_map(|(_, f)| f.iter().cloned())
                .collect();
            let (train, val) = hold_out(&rest, plan.val_fraction, seed ^ (fold as u64) << 16);
            out.push(CvFold {
                repeat,
                fold,
                train,
                val,
                test: test.clone(),
            });
        }
    }
    out
}

fn run_fold(
    cache: &FeatureCache,
    v: &Variant,
    f: &CvFold,
    selection: Option<SelectionPlan>,
) -> Result<FoldResult, FitError> {
    let (outcome, _) = fit_selected(cache, &f.train, &f.val, &v.config, selection, |_| {})?;
    let test_rows = rows_of(cache, &f.test);
    let results = evaluate_protocols(&embed_cached(&outcome.head, cache, &test_rows))?;
    let i2t = &results.image_to_template;
    tracing::info!(
        variant = v.name,
        repeat = f.repeat,
        fold = f.fold,
        "test R@1 image→template {:.3}, template→template {:.3}",
        r_at(i2t, 1),
        r_at(&results.template_to_template, 1)
    );
    Ok(FoldResult {
        repeat: f.repeat,
        fold: f.fold,
        train_subjects: f.train.len(),
        val_subjects: f.val.len(),
        test_subjects: f.test.len(),
        results,
    })
}

fn r_at(m: &RetrievalMetrics, k: usize) -> f64 {
    m.recall_at(k).map_or(f64::NAN, |r| r.value)
}

/// The protocols a report shows, by name.
pub const PROTOCOLS: [&str; 6] = PROTOCOL_NAMES;

fn summarise(v: &Variant, folds: Vec<FoldResult>) -> VariantReport {
    let protocols = PROTOCOLS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let present: Vec<&RetrievalMetrics> = folds
                .iter()
                .filter_map(|r| r.results.named()[i].1)
                .collect();
            let of = |f: &dyn Fn(&RetrievalMetrics) -> f64| {
                MeanStd::of(&present.iter().map(|m| f(m)).collect::<Vec<_>>())
            };
            ProtocolSummary {
                protocol: name.to_string(),
                folds: present.len(),
                r1: of(&|m| r_at(m, 1)),
                r5: of(&|m| r_at(m, 5)),
                r10: of(&|m| r_at(m, 10)),
                mean_rank: of(&|m| m.mean_rank),
                map: of(&|m| m.mean_ap),
                chance_r1: of(&|m| 1.0 / m.gallery_size.max(1) as f64).mean,
            }
        })
        .collect();
    let depth = folds
        .iter()
        .map(|f| f.results.image_to_template.cmc.len())
        .min()
        .unwrap_or(0);
    let mean_cmc = (0..depth)
        .map(|k| {
            folds
                .iter()
                .map(|f| f.results.image_to_template.cmc[k])
                .sum::<f64>()
                / folds.len() as f64
        })
        .collect();
    VariantReport {
        name: v.name.clone(),
        config: v.config.clone(),
        folds,
        protocols,
        mean_cmc,
    }
}

/// One Markdown table: a row per variant and protocol.
pub fn markdown(reports: &[VariantReport], protocols: &[usize]) -> String {
    let mut t = String::from(
        "| configuration | protocol | R@1 | R@5 | R@10 | mean rank | mAP | chance R@1 |\n|---|---|---|---|---|---|---|---:|\n",
    );
    let ms = |m: MeanStd| format!("{:.3} ± {:.3}", m.mean, m.std);
    for r in reports {
        for &i in protocols {
            let p = &r.protocols[i];
            if p.folds == 0 {
                continue;
            }
            t += &format!(
                "| {} | {} | {} | {} | {} | {:.2} ± {:.2} | {} | {:.3} |\n",
                r.name,
                p.protocol,
                ms(p.r1),
                ms(p.r5),
                ms(p.r10),
                p.mean_rank.mean,
                p.mean_rank.std,
                ms(p.map),
                p.chance_r1
            );
        }
    }
    t
}
