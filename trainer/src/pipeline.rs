//! The whole training job as one call (used by `handmatch-train fit`, `matrix` and the
//! tests): export the backbone, extract (or reuse) features, fit the head, write the run's
//! files, and export the artefact with the validation results in its metadata.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use handmatch_core::dataset::hand_info::Dataset;
use handmatch_core::dataset::split::{SubjectSplit, Subset};
use handmatch_core::embed::RuntimeOptions;
use handmatch_core::hand_image::HandImage;
use handmatch_core::report::plot::{line_chart, Series};
use handmatch_core::training_summary::{SplitSummary, TrainingSummary, ValidationSummary};

use crate::artefact_writer::{write_artefact, PrecisionArgs};
use crate::extract::{extract, ExtractOptions, FeatureCache};
use crate::training::FitConfig;
use crate::training::{fit_selected, EpochRecord, FitOutcome, Selection, SelectionPlan};
use handmatch_export::artefact::{artefact_model, backbone_model, HeadSource};
use handmatch_export::backbone::BackboneSpec;

pub struct FitJob<'a> {
    pub backbone: BackboneSpec,
    pub image_size: usize,
    pub data: &'a Dataset,
    pub split: &'a SubjectSplit,
    pub out: PathBuf,
    /// Where the features are cached; shared between runs on the same backbone and data.
    pub cache: PathBuf,
    pub views: usize,
    pub config: FitConfig,
    /// Choose the settings by cross-validation inside the training subjects first.
    pub selection: Option<SelectionPlan>,
    pub runtime: RuntimeOptions,
    pub batch_size: usize,
    pub progress: bool,
    /// fp32, or int8 behind the quality gate.
    pub precision: PrecisionArgs,
}

pub struct FitReport {
    pub outcome: FitOutcome,
    /// With `FitJob::selection`: every candidate's cross-validated score.
    pub selection: Option<Selection>,
    pub model: PathBuf,
    pub backbone: PathBuf,
    pub extract_seconds: f64,
    pub fit_seconds: f64,
}

/// Exports the backbone at `image_size` to `path` (the graph the artefact contains, so
/// cached features are what the artefact computes).
pub fn export_backbone(spec: &BackboneSpec, image_size: usize, path: &Path) -> anyhow::Result<()> {
    let open = spec.open()?;
    backbone_model(open.as_ref(), image_size)?.save(path)?;
    Ok(())
}

pub fn images_of<'a>(data: &'a Dataset, subjects: &BTreeSet<String>) -> Vec<&'a HandImage> {
    data.images
        .iter()
        .filter(|i| subjects.contains(&i.subject))
        .collect()
}

pub fn run_fit(job: &FitJob) -> anyhow::Result<FitReport> {
    std::fs::create_dir_all(&job.out)?;
    let backbone = job.out.join("backbone.onnx");
    export_backbone(&job.backbone, job.image_size, &backbone)?;
    let train = job.split.subject_set(Subset::Train);
    let val = job.split.subject_set(Subset::Val);
    let started = Instant::now();
    let cache = extract_training_features(job, &backbone, &train, &val)?;
    let extract_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let progress = job.progress;
    let (outcome, selection) = fit_selected(
        &cache,
        &train,
        &val,
        &job.config,
        job.selection,
        |r: &EpochRecord| {
            if progress {
                print_epoch(r);
            }
        },
    )?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let config = selection.as_ref().map_or(&job.config, |s| &s.config);
    write_run_folder(job, config, &outcome, selection.as_ref())?;
    let model = export_trained(job, config, &cache, &outcome, selection.as_ref())?;
    Ok(FitReport {
        outcome,
        selection,
        model,
        backbone,
        extract_seconds,
        fit_seconds,
    })
}

/// Features of the training and validation subjects' images (cached).
fn extract_training_features(
    job: &FitJob,
    backbone: &Path,
    train: &BTreeSet<String>,
    val: &BTreeSet<String>,
) -> anyhow::Result<FeatureCache> {
    let both: BTreeSet<String> = train.union(val).cloned().collect();
    let images = images_of(job.data, &both);
    Ok(extract(
        &images,
        &job.cache,
        &ExtractOptions {
            backbone: backbone.to_path_buf(),
            views: job.views,
            seed: job.config.seed,
            batch_size: job.batch_size,
            runtime: job.runtime.clone(),
            progress: job.progress,
        },
    )?)
}

fn print_epoch(r: &EpochRecord) {
    let val = r.validation.as_ref().map_or(String::new(), |v| {
        format!(
            ", validation mean rank {:.2}, R@1 {:.3}",
            v.template_to_template.mean_rank,
            v.template_to_template.recall_at(1).map_or(0.0, |x| x.value)
        )
    });
    eprintln!(
        "epoch {:>3}: loss {:.4}, lr {:.2e}{val}",
        r.epoch, r.mean_loss, r.lr
    );
}

/// config.json (the settings the final head was fitted with), history.json,
/// head.safetensors, selection.json (with `--folds`) and (for gradient fits) training.png.
fn write_run_folder(
    job: &FitJob,
    config: &FitConfig,
    outcome: &FitOutcome,
    selection: Option<&Selection>,
) -> anyhow::Result<()> {
    let write = |name: &str, value: &serde_json::Value| -> anyhow::Result<()> {
        let path = job.out.join(name);
        handmatch_core::atomic_file::AtomicFile::write(
            &path,
            (serde_json::to_string_pretty(value)? + "\n").as_bytes(),
        )?;
        Ok(())
    };
    write("config.json", &serde_json::to_value(config)?)?;
    write("history.json", &serde_json::to_value(&outcome.history)?)?;
    if let Some(s) = selection {
        write("selection.json", &serde_json::to_value(s)?)?;
    }
    outcome.head.save(&job.out.join("head.safetensors"))?;
    // A closed-form head (LDA) has no epochs to plot.
    if outcome.history.is_empty() {
        return Ok(());
    }
    training_chart(&job.out.join("training.png"), &outcome.history)
}

fn training_chart(path: &Path, history: &[EpochRecord]) -> anyhow::Result<()> {
    let loss = Series {
        name: "training loss".into(),
        points: history
            .iter()
            .map(|r| (r.epoch as f64, r.mean_loss))
            .collect(),
    };
    let r1 = Series {
        name: "validation R@1 (template → template)".into(),
        points: history
            .iter()
            .filter_map(|r| {
                let v = r.validation.as_ref()?;
                Some((r.epoch as f64, v.template_to_template.recall_at(1)?.value))
            })
            .collect(),
    };
    line_chart(path, "Training", "epoch", "loss / recall", &[loss, r1])?;
    Ok(())
}

/// The artefact with the trained head and its training summary: `out/model.onnx`.
fn export_trained(
    job: &FitJob,
    config: &FitConfig,
    cache: &FeatureCache,
    outcome: &FitOutcome,
    selection: Option<&Selection>,
) -> anyhow::Result<PathBuf> {
    let training = TrainingSummary {
        config: serde_json::to_value(config).expect("the config serialises"),
        best_epoch: outcome.best_epoch,
        backbone_model_id: cache.key.backbone_model_id.clone(),
        split: SplitSummary {
            seed: job.split.seed,
            train: job.split.train.len(),
            val: job.split.val.len(),
            test: job.split.test.len(),
        },
        validation: ValidationSummary {
            template_to_template: (&outcome.best_validation.template_to_template).into(),
            image_to_template: (&outcome.best_validation.image_to_template).into(),
        },
        open_set: outcome.operating_points.clone(),
        selection: selection.map(Selection::summary),
    };
    let open = job.backbone.open()?;
    let (model, meta) = artefact_model(
        open.as_ref(),
        job.image_size,
        HeadSource::Trained(Box::new(outcome.head.clone())),
        Some(training),
    )?;
    let model_path = job.out.join("model.onnx");
    write_artefact(model, meta, &model_path, &job.precision, &job.runtime)?;
    Ok(model_path)
}
