//! `handmatch-train cv`: repeated subject-disjoint K-fold cross-validation over all subjects
//! of a folder, for one or more head configurations on the same folds: every protocol's
//! mean ± std, a Markdown table, a JSON file and a CMC plot with one curve per configuration.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use handmatch_core::dataset::folds::eligible_subjects;
use handmatch_core::hand_image::HandImage;
use handmatch_core::report::plot::cmc_chart;
use handmatch_export::backbone::BackboneSpec;
use handmatch_trainer::cv::{cross_validate, cross_validate_per_fold, markdown, CvFold};
use handmatch_trainer::cv::{CvPlan, Variant, VariantReport};
use handmatch_trainer::extract::{extract, ExtractOptions, FeatureCache};
use handmatch_trainer::pipeline::{export_backbone, images_of, tune_backbone, BackboneTuning};
use handmatch_trainer::training::{FitConfig, SelectionPlan};

use super::fine_tune::FineTuneArgs;
use super::fit::TrainingArgs;
use super::{BackboneArgs, DataArgs, RuntimeArgs};

#[derive(Args)]
pub struct CvArgs {
    /// A TOML file of these flags (e.g. recipes/hand.toml); flags given here override it.
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    #[command(flatten)]
    pub backbone: BackboneArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Augmented views per image in the feature cache.
    #[arg(long, default_value_t = 0)]
    pub views: usize,
    #[arg(long, default_value_t = 2)]
    pub folds: usize,
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Share of each training part held out for validation (epoch choice, thresholds).
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f64,
    /// Configurations to compare, each `NAME` or `NAME:KEY=VALUE,KEY=VALUE` over the
    /// training flags' configuration (keys as in config.json, e.g. `head=lda`,
    /// `hidden_dim=128`, `loss.margin=0.3`). Default: one, from the flags.
    #[arg(long = "variant")]
    pub variants: Vec<String>,
    #[command(flatten)]
    pub training: TrainingArgs,
    /// With --fine-tune: every fold fine-tunes the backbone on its own training subjects,
    /// then extracts all images' features with that fold's tuned network.
    #[command(flatten)]
    pub fine_tune: FineTuneArgs,
    /// Nested model selection: inside each training part, choose the epoch (and with
    /// --tune the settings) by this many subject-disjoint folds, as `fit --folds` does.
    #[arg(long)]
    pub inner_folds: Option<usize>,
    /// With --inner-folds: try `fit --tune`'s grid too.
    #[arg(long, requires = "inner_folds")]
    pub tune: bool,
    /// cv.md, cv.json, cmc.png and the feature cache go here.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

pub fn run(a: CvArgs) -> anyhow::Result<()> {
    let (ds, _) = a.data.load()?;
    let subjects = eligible_subjects(&ds);
    anyhow::ensure!(
        subjects.len() >= 2 * a.folds,
        "{} subjects with both views: too few for {} folds",
        subjects.len(),
        a.folds
    );
    std::fs::create_dir_all(&a.out)?;
    let images = images_of(&ds, &subjects.iter().cloned().collect());
    let base = a.training.config();
    // A lone configuration is named after its recipe, if it has one.
    let default_name = a
        .recipe
        .as_ref()
        .and_then(|r| r.file_stem())
        .map_or("flags".to_string(), |s| s.to_string_lossy().into_owned());
    let variants = variants(&a.variants, &base, &default_name)?;
    let plan = CvPlan {
        folds: a.folds,
        repeats: a.repeats,
        val_fraction: a.val_fraction,
        seed: base.seed,
        selection: a.inner_folds.map(|folds| SelectionPlan {
            folds,
            tune: a.tune,
        }),
    };
    let reports = if a.fine_tune.fine_tune {
        cross_validate_tuned(&a, &images, &subjects, &variants, &plan)?
    } else {
        let cache = extract_features(&a, &images, &a.backbone.spec()?, &a.out)?;
        cross_validate(&cache, &subjects, &variants, &plan)?
    };
    let table = markdown(&reports, &[0, 1, 2]);
    std::fs::write(a.out.join("cv.md"), &table)?;
    std::fs::write(
        a.out.join("cv.json"),
        serde_json::to_string_pretty(&reports)? + "\n",
    )?;
    let curves: Vec<(String, Vec<f64>)> = reports
        .iter()
        .map(|r| (r.name.clone(), r.mean_cmc.clone()))
        .collect();
    cmc_chart(
        &a.out.join("cmc.png"),
        &format!(
            "Image → template CMC, {}×{}-fold cross-validation",
            a.repeats, a.folds
        ),
        &curves,
    )?;
    println!(
        "{} subjects, {} folds × {} repeats (about {} test subjects each)\n",
        subjects.len(),
        a.folds,
        a.repeats,
        subjects.len() / a.folds
    );
    print!("{table}");
    Ok(())
}

/// The backbone exported into `dir`, and every image's features through it (cached there).
fn extract_features(
    a: &CvArgs,
    images: &[&HandImage],
    spec: &BackboneSpec,
    dir: &Path,
) -> anyhow::Result<FeatureCache> {
    std::fs::create_dir_all(dir)?;
    let backbone = dir.join("backbone.onnx");
    export_backbone(spec, a.backbone.image_size, &backbone)?;
    Ok(extract(
        images,
        &dir.join("features.safetensors"),
        &ExtractOptions {
            backbone,
            views: a.views,
            seed: a.training.seed,
            batch_size: a.runtime.batch_size,
            runtime: a.runtime.options(),
            progress: true,
        },
    )?)
}

/// Every fold fine-tunes the backbone on its training subjects (`OUT/fold-R-F/finetune`), then
/// extracts all images' features with it; a hand network's aligned crops are made once.
fn cross_validate_tuned(
    a: &CvArgs,
    images: &[&HandImage],
    subjects: &[String],
    variants: &[Variant],
    plan: &CvPlan,
) -> anyhow::Result<Vec<VariantReport>> {
    let settings = a
        .fine_tune
        .settings(a.training.seed, a.runtime.runtime.device)
        .expect("--fine-tune is on");
    let spec = a.backbone.spec()?;
    let runtime = a.runtime.options();
    cross_validate_per_fold(subjects, variants, plan, |fold: &CvFold| {
        let dir = a.out.join(format!("fold-{}-{}", fold.repeat, fold.fold));
        let (tuned, _) = tune_backbone(&BackboneTuning {
            backbone: &spec,
            image_size: a.backbone.image_size,
            images,
            train: &fold.train,
            val: &fold.val,
            dir: dir.join("finetune"),
            crops_cache: a.out.join("crops.safetensors"),
            runtime: &runtime,
            settings: &settings,
            progress: true,
        })?;
        extract_features(a, images, &tuned, &dir)
    })
}

/// Each `NAME[:KEY=VALUE,...]` applied to the base configuration.
fn variants(
    specs: &[String],
    base: &FitConfig,
    default_name: &str,
) -> anyhow::Result<Vec<Variant>> {
    if specs.is_empty() {
        return Ok(vec![Variant {
            name: default_name.into(),
            config: base.clone(),
        }]);
    }
    specs
        .iter()
        .map(|spec| {
            let (name, overrides) = spec.split_once(':').unwrap_or((spec, ""));
            let config =
                with_overrides(base, overrides).with_context(|| format!("--variant {spec}"))?;
            Ok(Variant {
                name: name.to_string(),
                config,
            })
        })
        .collect()
}

/// `base` with `KEY=VALUE` pairs (comma-separated, dotted keys for nested fields) set;
/// values are JSON (`0.3`, `true`, `"x"`) or else plain strings (`lda`).
fn with_overrides(base: &FitConfig, overrides: &str) -> anyhow::Result<FitConfig> {
    let mut value = serde_json::to_value(base)?;
    for pair in overrides.split(',').filter(|p| !p.trim().is_empty()) {
        let (key, raw) = pair
            .split_once('=')
            .with_context(|| format!("`{pair}` is not KEY=VALUE"))?;
        let parsed = serde_json::from_str(raw.trim())
            .unwrap_or_else(|_| serde_json::Value::String(raw.trim().to_string()));
        let mut slot = &mut value;
        for part in key.trim().split('.') {
            slot = slot
                .get_mut(part)
                .with_context(|| format!("no configuration field `{key}`"))?;
        }
        *slot = parsed;
    }
    Ok(serde_json::from_value(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_set_top_level_and_nested_fields_and_refuse_unknown_ones() {
        let base = FitConfig::reference_triplet();
        let c = with_overrides(&base, "head=lda, hidden_dim=128,loss.margin=0.3").unwrap();
        assert_eq!(c.head, handmatch_trainer::training::HeadKind::Lda);
        assert_eq!(c.hidden_dim, 128);
        match c.loss {
            handmatch_trainer::training::LossChoice::Triplet { margin, .. } => {
                assert_eq!(margin, 0.3)
            }
            other => panic!("{other:?}"),
        }
        let err = with_overrides(&base, "hiden_dim=3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hiden_dim"), "{err}");
    }
}
