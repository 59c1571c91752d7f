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

use crate::artefact_writer::{hand_fp32_reference, write_artefact, PrecisionArgs};
use crate::extract::{extract, ExtractOptions, FeatureCache};
use crate::finetune::{fine_tune, AlignedCrops, BackboneSource, FineTuneConfig, FineTuneJob};
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
    /// Fine-tune the backbone (the hand network's trunk, or DINOv2) on the training
    /// subjects first, then read the features from the tuned copy.
    pub fine_tune: Option<FineTuneSettings>,
}

pub struct FineTuneSettings {
    pub config: FineTuneConfig,
    /// Continue from `OUT/finetune/checkpoint.safetensors` when it is there.
    pub resume: bool,
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
    let train = job.split.subject_set(Subset::Train);
    let val = job.split.subject_set(Subset::Val);
    let (spec, tuned) = match &job.fine_tune {
        Some(settings) => tuned_backbone(job, settings, &train, &val)?,
        None => (job.backbone.clone(), None),
    };
    let backbone = job.out.join("backbone.onnx");
    export_backbone(&spec, job.image_size, &backbone)?;
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
    let trained = Trained {
        spec: &spec,
        config,
        fine_tune: tuned,
    };
    let model = export_trained(job, &trained, &cache, &outcome, selection.as_ref())?;
    Ok(FitReport {
        outcome,
        selection,
        model,
        backbone,
        extract_seconds,
        fit_seconds,
    })
}

/// Fine-tunes the backbone on the training subjects (a hand network on crops aligned by the
/// original network, as the artefact aligns; DINOv2 on the artefact's centre crops) into
/// `OUT/finetune/`; the backbone that reads the tuned weights.
fn tuned_backbone(
    job: &FitJob,
    settings: &FineTuneSettings,
    train: &BTreeSet<String>,
    val: &BTreeSet<String>,
) -> anyhow::Result<(BackboneSpec, Option<serde_json::Value>)> {
    let both: BTreeSet<String> = train.union(val).cloned().collect();
    let (spec, summary) = tune_backbone(&BackboneTuning {
        backbone: &job.backbone,
        image_size: job.image_size,
        images: &images_of(job.data, &both),
        train,
        val,
        dir: job.out.join("finetune"),
        crops_cache: job.cache.with_extension("crops.safetensors"),
        runtime: &job.runtime,
        settings,
        progress: job.progress,
    })?;
    Ok((spec, Some(summary)))
}

/// One fine-tuning of a backbone.
pub struct BackboneTuning<'a> {
    /// A hand-landmarks backbone (its features will read the tuned trunk) or a DINOv2
    /// checkpoint.
    pub backbone: &'a BackboneSpec,
    pub image_size: usize,
    /// Images to crop (at least the training and validation subjects').
    pub images: &'a [&'a HandImage],
    pub train: &'a BTreeSet<String>,
    pub val: &'a BTreeSet<String>,
    /// Checkpoints, the tuned network and `finetune.json` go here.
    pub dir: PathBuf,
    /// The hand network's aligned crops, reused when made from the same images.
    pub crops_cache: PathBuf,
    pub runtime: &'a RuntimeOptions,
    pub settings: &'a FineTuneSettings,
    pub progress: bool,
}

/// Fine-tunes the backbone; the backbone that reads the tuned weights, and what the
/// artefact's training summary records of it (the epochs and the weights it started from).
pub fn tune_backbone(t: &BackboneTuning) -> anyhow::Result<(BackboneSpec, serde_json::Value)> {
    std::fs::create_dir_all(&t.dir)?;
    let (source, crops) = tuning_source(t)?;
    let outcome = fine_tune(&FineTuneJob {
        crops: &crops,
        train: t.train,
        val: t.val,
        source: &source,
        config: t.settings.config.clone(),
        out: t.dir.clone(),
        resume: t.settings.resume,
        stop_after: None,
        progress: t.progress,
    })?;
    let summary = serde_json::json!({
        "from": source.describe(),
        "tuned_model": outcome.tuned_model.display().to_string(),
        "progress": outcome.progress,
    });
    let spec = match source {
        BackboneSource::HandGraph(_) => BackboneSpec {
            hand_trunk: Some(outcome.tuned_model),
            ..t.backbone.clone()
        },
        BackboneSource::Checkpoint { .. } => BackboneSpec {
            hf_dir: Some(outcome.tuned_model),
            ..t.backbone.clone()
        },
    };
    Ok((spec, summary))
}

/// What trains, and the crops it trains on.
fn tuning_source(t: &BackboneTuning) -> anyhow::Result<(BackboneSource, AlignedCrops)> {
    match (&t.backbone.hand_model, &t.backbone.hf_dir) {
        (Some(hand_model), None) => {
            let aligner = t.dir.join("hand-backbone.onnx");
            export_backbone(&BackboneSpec::hand(hand_model), t.image_size, &aligner)?;
            let crops =
                AlignedCrops::build(t.images, &aligner, &t.crops_cache, t.runtime, t.progress)?;
            Ok((BackboneSource::HandGraph(hand_model.clone()), crops))
        }
        // TrainedNet::open refuses a checkpoint of another architecture.
        (None, Some(dir)) => {
            let crops = AlignedCrops::centre_cropped(t.images, t.image_size as u32)?;
            let source = BackboneSource::Checkpoint {
                dir: dir.clone(),
                image_size: t.image_size,
            };
            Ok((source, crops))
        }
        _ => {
            anyhow::bail!("--fine-tune trains one network: a DINOv2 or ResNet checkpoint, or the hand network")
        }
    }
}

/// What the artefact is exported from besides the head.
struct Trained<'a> {
    spec: &'a BackboneSpec,
    config: &'a FitConfig,
    fine_tune: Option<serde_json::Value>,
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
    trained: &Trained,
    cache: &FeatureCache,
    outcome: &FitOutcome,
    selection: Option<&Selection>,
) -> anyhow::Result<PathBuf> {
    let mut config_json = serde_json::to_value(trained.config).expect("the config serialises");
    if let (Some(tuned), Some(map)) = (&trained.fine_tune, config_json.as_object_mut()) {
        map.insert("fine_tune".into(), tuned.clone());
    }
    let training = TrainingSummary {
        config: config_json,
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
    let build = |spec: &BackboneSpec, training| -> anyhow::Result<_> {
        let head = HeadSource::Trained(Box::new(outcome.head.clone()));
        Ok(artefact_model(
            spec.open()?.as_ref(),
            job.image_size,
            head,
            training,
        )?)
    };
    let reference = hand_fp32_reference(trained.spec, &job.precision, |s| Ok(build(s, None)?.0))?;
    let (model, meta) = build(trained.spec, Some(training))?;
    let model_path = job.out.join("model.onnx");
    write_artefact(
        model,
        meta,
        reference,
        &model_path,
        &job.precision,
        &job.runtime,
    )?;
    Ok(model_path)
}
