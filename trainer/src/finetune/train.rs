//! The fine-tuning loop: PK batches of aligned crops augmented on the fly, batch-hard
//! cross-view triplet loss, AdamW (the backbone at a fraction of the head's rate) with
//! warm-up then cosine decay, gradient accumulation, validation mAP each epoch with early
//! stopping, and a checkpoint after every epoch. Everything random is drawn from the seed,
//! the epoch and the batch, so a resumed run repeats an uninterrupted one.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use handmatch_core::dataset::augment::Augment;
use handmatch_core::metrics::{evaluate_protocols, EmbeddedImage};
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::adamw::AdamW;
use super::checkpoint::{self, FineTuneEpoch, Progress};
use super::config::{FineTuneConfig, FineTuneLoss};
use super::cosface::CosFaceLoss;
use super::crops::AlignedCrops;
use super::model::FineTuneModel;
use super::trained_net::{BackboneSource, NetOptions, TrainedNet};
use crate::fit::{CosineSchedule, PkSampler, TripletLoss, View};

pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const BEST: &str = "best.safetensors";

pub struct FineTuneJob<'a> {
    pub crops: &'a AlignedCrops,
    pub train: &'a BTreeSet<String>,
    pub val: &'a BTreeSet<String>,
    /// The network it starts from.
    pub source: &'a BackboneSource,
    pub config: FineTuneConfig,
    pub out: PathBuf,
    pub resume: bool,
    /// End this invocation after that epoch, leaving the checkpoint for a later `resume`
    /// (time-boxed sessions); `None` runs to the end.
    pub stop_after: Option<usize>,
    pub progress: bool,
}

pub struct FineTuneOutcome {
    /// The tuned hand model file, or DINOv2 checkpoint folder.
    pub tuned_model: PathBuf,
    pub progress: Progress,
}

/// Runs (or resumes) the job; writes the tuned network (`out/hand_finetuned.onnx` or
/// `out/checkpoint/`) from the best epoch.
pub fn fine_tune(job: &FineTuneJob) -> anyhow::Result<FineTuneOutcome> {
    std::fs::create_dir_all(&job.out)?;
    let cfg = &job.config;
    let device = cfg.device.open()?;
    let options = NetOptions {
        layers: cfg.train_layers,
        freeze_batchnorm: cfg.freeze_batchnorm,
        autocast: cfg.autocast,
    };
    let net = TrainedNet::open(job.source, options, &device)?;
    let proxies = (cfg.loss == FineTuneLoss::CosFace).then_some(job.train.len());
    let model = FineTuneModel::new(
        net,
        cfg.embedding_dim,
        proxies,
        cfg.feature_neck(),
        cfg.seed,
        &device,
    )?;
    let mut opt = AdamW::new(model.params(cfg.backbone_lr_factor), cfg.weight_decay)?;
    let rows = Rows::new(job.crops, job.train);
    let val_rows: Vec<usize> = (0..job.crops.len())
        .filter(|&i| job.val.contains(&job.crops.images[i].subject))
        .collect();
    let steps_per_epoch = PkSampler::new(&rows.subjects, &rows.views, cfg.p, cfg.k, 0)?
        .batches_per_epoch()
        .div_ceil(cfg.accumulate.max(1));
    let schedule = CosineSchedule {
        lr0: cfg.lr,
        lr_min: cfg.lr_min,
        total_steps: cfg.epochs * steps_per_epoch,
        warmup_steps: cfg.warmup_epochs * steps_per_epoch,
    };
    let mut progress = start(job, &model, &mut opt, &device)?;
    let mut stale = 0;
    for epoch in progress.epochs_done + 1..=cfg.epochs {
        let record = run_epoch(
            job,
            &model,
            &mut opt,
            &rows,
            &schedule,
            &mut progress,
            epoch,
        )?;
        let record = FineTuneEpoch {
            validation_map: validate(job, &model, &val_rows)?,
            ..record
        };
        if job.progress {
            eprintln!(
                "fine-tune epoch {epoch:>3}: loss {:.4}, lr {:.2e}, {:.1} images/s{}",
                record.mean_loss,
                record.lr,
                record.images_per_second,
                record
                    .validation_map
                    .map_or(String::new(), |m| format!(", validation mAP {m:.4}"))
            );
        }
        let improved = match (record.validation_map, progress.best_map) {
            (Some(m), Some(b)) => m > b,
            (Some(_), None) => true,
            (None, _) => true,
        };
        progress.epochs_done = epoch;
        progress.history.push(record.clone());
        if improved {
            progress.best_epoch = epoch;
            progress.best_map = record.validation_map;
            stale = 0;
            checkpoint::save(&job.out.join(BEST), &model.state(), &progress)?;
        } else {
            stale += 1;
        }
        save_checkpoint(job, &model, &opt, &progress)?;
        if job.stop_after == Some(epoch) {
            break;
        }
        if cfg.patience > 0 && stale >= cfg.patience {
            tracing::info!("no better validation mAP for {stale} epochs: stopping at {epoch}");
            break;
        }
    }
    let (best, _) = checkpoint::load(&job.out.join(BEST), &device)?;
    model.load_state(&best)?;
    let tuned_model = model.net.write(&job.out)?;
    std::fs::write(
        job.out.join("finetune.json"),
        serde_json::to_string_pretty(&progress)? + "\n",
    )?;
    Ok(FineTuneOutcome {
        tuned_model,
        progress,
    })
}

/// Fresh progress, or with `resume` the checkpoint's (weights and moments restored).
fn start(
    job: &FineTuneJob,
    model: &FineTuneModel,
    opt: &mut AdamW,
    device: &Device,
) -> anyhow::Result<Progress> {
    let path = job.out.join(CHECKPOINT);
    if !(job.resume && path.is_file()) {
        return Ok(Progress {
            config: job.config.clone(),
            epochs_done: 0,
            optimizer_steps: 0,
            best_epoch: 0,
            best_map: None,
            history: Vec::new(),
        });
    }
    let (tensors, progress) = checkpoint::load(&path, device)?;
    anyhow::ensure!(
        progress.config == job.config,
        "{}: made with other settings ({:?}); start afresh without --resume",
        path.display(),
        progress.config
    );
    model.load_state(&tensors)?;
    let adam: HashMap<String, Tensor> = tensors
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("adam/")?.to_string(), v.clone())))
        .collect();
    opt.restore(&adam, progress.optimizer_steps)?;
    tracing::info!("resuming after epoch {}", progress.epochs_done);
    Ok(progress)
}

fn save_checkpoint(
    job: &FineTuneJob,
    model: &FineTuneModel,
    opt: &AdamW,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut tensors = model.state();
    let (moments, _) = opt.state();
    tensors.extend(moments.into_iter().map(|(k, v)| (format!("adam/{k}"), v)));
    checkpoint::save(&job.out.join(CHECKPOINT), &tensors, progress)
}

/// The training rows: crop index, subject number and view.
struct Rows {
    crop: Vec<usize>,
    subjects: Vec<u32>,
    views: Vec<View>,
}

impl Rows {
    fn new(crops: &AlignedCrops, train: &BTreeSet<String>) -> Self {
        let ids: HashMap<&String, u32> = train.iter().zip(0..).collect();
        let mut rows = Rows {
            crop: Vec::new(),
            subjects: Vec::new(),
            views: Vec::new(),
        };
        for (i, img) in crops.images.iter().enumerate() {
            if let Some(&id) = ids.get(&img.subject) {
                rows.crop.push(i);
                rows.subjects.push(id);
                rows.views.push(View::from(img.aspect));
            }
        }
        rows
    }
}

fn run_epoch(
    job: &FineTuneJob,
    model: &FineTuneModel,
    opt: &mut AdamW,
    rows: &Rows,
    schedule: &CosineSchedule,
    progress: &mut Progress,
    epoch: usize,
) -> anyhow::Result<FineTuneEpoch> {
    let cfg = &job.config;
    let started = Instant::now();
    let seed = cfg.seed ^ ((epoch as u64) << 40);
    let mut sampler = PkSampler::new(&rows.subjects, &rows.views, cfg.p, cfg.k, seed)?;
    let batches = sampler.epoch();
    let images: usize = batches.iter().map(Vec::len).sum();
    let bar = handmatch_core::progress::bar(
        images as u64,
        &format!("fine-tune epoch {epoch}/{}", cfg.epochs),
        "images",
        job.progress,
    );
    let augment = Augment::aligned_hand(job.crops.side);
    let objective = Objective::of(cfg);
    let params = model.params(1.0);
    let mut summed: HashMap<String, Tensor> = HashMap::new();
    let mut pending = 0usize;
    let mut losses = Vec::new();
    let mut lr = 0.0;
    for (b, batch) in batches.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (b as u64).wrapping_mul(0x9e37_79b9));
        let crops: Vec<RgbImage> = batch
            .iter()
            .map(|&r| augment.apply(&job.crops.crop(rows.crop[r]), &mut rng))
            .collect();
        let emb = model.forward_train(&to_input(&crops, model.device())?)?;
        let subjects: Vec<u32> = batch.iter().map(|&r| rows.subjects[r]).collect();
        let views: Vec<View> = batch.iter().map(|&r| rows.views[r]).collect();
        let loss = objective.forward(model, &emb, &subjects, &views)?;
        losses.push(f64::from(loss.to_scalar::<f32>()?));
        let grads = loss.backward()?;
        for (name, var, _) in &params {
            if let Some(g) = grads.get(var.as_tensor()) {
                let sum = match summed.remove(name) {
                    Some(s) => (s + g)?,
                    None => g.clone(),
                };
                summed.insert(name.clone(), sum);
            }
        }
        pending += 1;
        if pending == cfg.accumulate.max(1) || b + 1 == batches.len() {
            let n = std::mem::take(&mut pending) as f64;
            let mean: HashMap<String, Tensor> = summed
                .drain()
                .map(|(k, v)| Ok((k, (v / n)?)))
                .collect::<candle_core::Result<_>>()?;
            lr = schedule.lr(progress.optimizer_steps);
            opt.step(&mean, lr)?;
            progress.optimizer_steps += 1;
        }
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    Ok(FineTuneEpoch {
        epoch,
        mean_loss: losses.iter().sum::<f64>() / losses.len().max(1) as f64,
        lr,
        seconds,
        images_per_second: images as f64 / seconds,
        validation_map: None,
    })
}

/// The configured loss, ready to apply to a batch.
enum Objective {
    Triplet(TripletLoss),
    CosFace(CosFaceLoss),
}

impl Objective {
    fn of(cfg: &FineTuneConfig) -> Self {
        match cfg.loss {
            FineTuneLoss::Triplet => Objective::Triplet(TripletLoss {
                margin: cfg.margin,
                ..TripletLoss::default()
            }),
            FineTuneLoss::CosFace => Objective::CosFace(CosFaceLoss {
                scale: cfg.cosface_scale,
                margin: cfg.margin,
            }),
        }
    }

    fn forward(
        &self,
        model: &FineTuneModel,
        emb: &Tensor,
        subjects: &[u32],
        views: &[View],
    ) -> candle_core::Result<Tensor> {
        match self {
            Objective::Triplet(loss) => loss.forward(emb, subjects, views),
            Objective::CosFace(loss) => {
                let proxies = model
                    .proxies()
                    .expect("cosface models are built with proxies");
                loss.forward(emb, subjects, proxies)
            }
        }
    }
}

/// `[N, 3, S, S]` in [0, 1], what the hand network reads.
fn to_input(crops: &[RgbImage], device: &Device) -> candle_core::Result<Tensor> {
    let s = crops[0].width() as usize;
    let mut data = vec![0f32; crops.len() * 3 * s * s];
    for (i, crop) in crops.iter().enumerate() {
        for (x, y, p) in crop.enumerate_pixels() {
            for c in 0..3 {
                data[((i * 3 + c) * s + y as usize) * s + x as usize] = f32::from(p[c]) / 255.0;
            }
        }
    }
    Tensor::from_vec(data, (crops.len(), 3, s, s), device)
}

/// Image → template mAP of the validation subjects' unaugmented crops.
fn validate(
    job: &FineTuneJob,
    model: &FineTuneModel,
    rows: &[usize],
) -> anyhow::Result<Option<f64>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let mut images = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(32) {
        let crops: Vec<RgbImage> = chunk.iter().map(|&i| job.crops.crop(i)).collect();
        let emb = model
            .forward(&to_input(&crops, model.device())?)?
            .detach()
            .to_vec2::<f32>()?;
        for (&i, e) in chunk.iter().zip(emb) {
            let img = &job.crops.images[i];
            images.push(EmbeddedImage {
                subject: img.subject.clone(),
                aspect: img.aspect,
                accessories: img.accessories,
                embedding: e,
            });
        }
    }
    Ok(Some(evaluate_protocols(&images)?.image_to_template.mean_ap))
}
