//! The training loop: PK batches of cached augmented features, AdamW with a cosine schedule,
//! validation every few epochs by the reference protocol's mean rank, the best head kept.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use handmatch_core::metrics::{evaluate_protocols, EmbeddedImage, ProtocolResults};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::{FitConfig, LossChoice};
use super::open_set::{operating_point, scores, OperatingPoint};
use crate::extract::FeatureCache;
use crate::fit::{
    ContrastiveLoss, CosineSchedule, CrossBatchMemory, HeadConfig, HeadModel, PkSampler,
    TripletLoss, View,
};
use handmatch_export::head::ProjectionHead;

#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("training: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("training: {0}")]
    Sampler(#[from] crate::fit::sampler::SamplerError),
    #[error("validation: {0}")]
    Metrics(#[from] handmatch_core::metrics::MetricsError),
    #[error("{0}")]
    Data(String),
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub mean_loss: f64,
    pub lr: f64,
    pub seconds: f64,
    /// Validation results, on validation epochs.
    pub validation: Option<ProtocolResults>,
}

pub struct FitOutcome {
    pub head: ProjectionHead,
    pub best_epoch: usize,
    pub best_validation: ProtocolResults,
    pub history: Vec<EpochRecord>,
    pub operating_points: Vec<OperatingPoint>,
}

/// The head's embeddings of cached evaluation features (eval mode, CPU, f32): the same
/// function the exported graph computes.
pub fn embed_cached(
    head: &ProjectionHead,
    cache: &FeatureCache,
    rows: &[usize],
) -> Vec<EmbeddedImage> {
    let feats: Vec<f32> = rows
        .iter()
        .flat_map(|&r| cache.eval.row(r).to_vec())
        .collect();
    let e = head.forward(&feats);
    let dim = head.embedding_dim();
    rows.iter()
        .zip(e.chunks(dim))
        .map(|(&r, emb)| EmbeddedImage {
            subject: cache.images[r].subject.clone(),
            aspect: cache.images[r].aspect,
            accessories: cache.images[r].accessories,
            embedding: emb.to_vec(),
        })
        .collect()
}

/// The raw backbone features, L2-normalised: the baseline a trained head must beat.
pub fn raw_features(cache: &FeatureCache, rows: &[usize]) -> Vec<EmbeddedImage> {
    rows.iter()
        .map(|&r| {
            let mut e = cache.eval.row(r).to_vec();
            handmatch_core::template::l2_normalize(&mut e);
            EmbeddedImage {
                subject: cache.images[r].subject.clone(),
                aspect: cache.images[r].aspect,
                accessories: cache.images[r].accessories,
                embedding: e,
            }
        })
        .collect()
}

pub fn rows_of(cache: &FeatureCache, subjects: &BTreeSet<String>) -> Vec<usize> {
    (0..cache.images.len())
        .filter(|&i| subjects.contains(&cache.images[i].subject))
        .collect()
}

/// Lower mean rank wins; ties go to the higher R@1.
fn better(a: &ProtocolResults, b: &ProtocolResults) -> bool {
    let (ra, rb) = (&a.template_to_template, &b.template_to_template);
    let r1 =
        |m: &handmatch_core::metrics::RetrievalMetrics| m.recall_at(1).map_or(0.0, |r| r.value);
    ra.mean_rank < rb.mean_rank || (ra.mean_rank == rb.mean_rank && r1(ra) > r1(rb))
}

/// Per-feature mean and std over the training rows' evaluation features; a constant
/// feature keeps std 1 so it is only centred.
fn feature_statistics(cache: &FeatureCache, rows: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let d = cache.eval.ncols();
    let n = rows.len().max(1) as f64;
    let mut sum = vec![0.0f64; d];
    let mut sq = vec![0.0f64; d];
    for &r in rows {
        for (k, &x) in cache.eval.row(r).iter().enumerate() {
            sum[k] += x as f64;
            sq[k] += (x as f64) * (x as f64);
        }
    }
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let std = sum
        .iter()
        .zip(&sq)
        .map(|(s, q)| {
            let var = (q / n - (s / n) * (s / n)).max(0.0);
            if var > 1e-12 {
                var.sqrt() as f32
            } else {
                1.0
            }
        })
        .collect();
    (mean, std)
}

pub fn fit(
    cache: &FeatureCache,
    train: &BTreeSet<String>,
    val: &BTreeSet<String>,
    cfg: &FitConfig,
    mut on_epoch: impl FnMut(&EpochRecord),
) -> Result<FitOutcome, FitError> {
    let data = TrainingData::new(cache, train, val, cfg)?;
    let mut trainer = HeadTrainer::new(&data, cfg)?;
    let mut history = Vec::new();
    let mut best: Option<(usize, ProtocolResults, ProjectionHead)> = None;
    for epoch in 1..=cfg.epochs {
        let started = Instant::now();
        let losses = trainer.epoch(&data)?;
        let validation = if epoch % cfg.validate_every.max(1) == 0 || epoch == cfg.epochs {
            let head = trainer.head(&data)?;
            let results = evaluate_protocols(&embed_cached(&head, cache, &data.val_rows))?;
            if best.as_ref().is_none_or(|(_, b, _)| better(&results, b)) {
                best = Some((epoch, results.clone(), head));
            }
            Some(results)
        } else {
            None
        };
        let record = EpochRecord {
            epoch,
            mean_loss: losses.iter().sum::<f64>() / losses.len().max(1) as f64,
            lr: trainer.schedule.lr(trainer.step.saturating_sub(1)),
            seconds: started.elapsed().as_secs_f64(),
            validation,
        };
        on_epoch(&record);
        history.push(record);
    }
    let (best_epoch, best_validation, head) = best.expect("the last epoch always validates");
    let val_scores = scores(&embed_cached(&head, cache, &data.val_rows));
    let operating_points = [0.01, 0.001]
        .iter()
        .filter_map(|&t| operating_point(&val_scores, t))
        .collect();
    Ok(FitOutcome {
        head,
        best_epoch,
        best_validation,
        history,
        operating_points,
    })
}

/// The cached rows a head trains and validates on, with the training rows' labels and the
/// standardisation (identity unless `--standardize`).
struct TrainingData<'c> {
    cache: &'c FeatureCache,
    train_rows: Vec<usize>,
    val_rows: Vec<usize>,
    /// Per training row: the subject's index and the view.
    subjects: Vec<u32>,
    views: Vec<View>,
    mean: Vec<f32>,
    std: Vec<f32>,
    standardize: bool,
}

impl<'c> TrainingData<'c> {
    fn new(
        cache: &'c FeatureCache,
        train: &BTreeSet<String>,
        val: &BTreeSet<String>,
        cfg: &FitConfig,
    ) -> Result<Self, FitError> {
        let train_rows = rows_of(cache, train);
        let val_rows = rows_of(cache, val);
        if train_rows.is_empty() || val_rows.is_empty() {
            return Err(FitError::Data(format!(
                "{} training and {} validation images: both must be non-empty",
                train_rows.len(),
                val_rows.len()
            )));
        }
        let ids: BTreeMap<&str, u32> = train
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i as u32))
            .collect();
        let subjects = train_rows
            .iter()
            .map(|&r| ids[cache.images[r].subject.as_str()])
            .collect();
        let views = train_rows
            .iter()
            .map(|&r| View::from(cache.images[r].aspect))
            .collect();
        let d = cache.eval.ncols();
        let (mean, std) = if cfg.standardize {
            feature_statistics(cache, &train_rows)
        } else {
            (vec![0.0; d], vec![1.0; d])
        };
        Ok(Self {
            cache,
            train_rows,
            val_rows,
            subjects,
            views,
            mean,
            std,
            standardize: cfg.standardize,
        })
    }

    fn dim(&self) -> usize {
        self.cache.eval.ncols()
    }

    /// A batch's input features: one augmented view drawn per row (the evaluation view when
    /// the cache has none), standardised.
    fn batch_features(&self, batch: &[usize], rng: &mut ChaCha8Rng) -> Vec<f32> {
        let d = self.dim();
        let n_views = self.cache.views.shape()[1];
        let mut feats: Vec<f32> = Vec::with_capacity(batch.len() * d);
        for &i in batch {
            let row = self.train_rows[i];
            if n_views > 0 {
                let v = rng.random_range(0..n_views);
                feats.extend(self.cache.views.slice(ndarray::s![row, v, ..]).iter());
            } else {
                feats.extend(self.cache.eval.row(row).iter());
            }
        }
        if self.standardize {
            for row in feats.chunks_mut(d) {
                for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                    *x = (*x - m) / s;
                }
            }
        }
        feats
    }

    /// The exported head: the standardisation folded into its first Linear.
    fn exported(&self, head: ProjectionHead) -> ProjectionHead {
        if self.standardize {
            head.with_input_standardisation(&self.mean, &self.std)
        } else {
            head
        }
    }
}

/// The candle head, its optimiser and schedule, and where training stands.
struct HeadTrainer {
    model: HeadModel,
    // Owns the head's variables; the optimiser holds them too.
    _varmap: VarMap,
    opt: AdamW,
    schedule: CosineSchedule,
    sampler: PkSampler,
    memory: Option<CrossBatchMemory>,
    rng: ChaCha8Rng,
    step: usize,
    loss: LossChoice,
    device: Device,
}

impl HeadTrainer {
    fn new(data: &TrainingData<'_>, cfg: &FitConfig) -> Result<Self, FitError> {
        let device = Device::Cpu;
        let sampler = PkSampler::new(&data.subjects, &data.views, cfg.p, cfg.k, cfg.seed)?;
        let varmap = VarMap::new();
        let model = HeadModel::init(
            &varmap,
            HeadConfig {
                input_dim: data.dim(),
                hidden_dim: cfg.hidden_dim,
                embedding_dim: cfg.embedding_dim,
                dropout: cfg.dropout,
            },
            cfg.seed,
            DType::F32,
            &device,
        )?;
        let opt = AdamW::new(
            HeadModel::trainable_vars(&varmap),
            ParamsAdamW {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?;
        let schedule = CosineSchedule {
            lr0: cfg.lr,
            lr_min: cfg.lr_min,
            total_steps: cfg.epochs * sampler.batches_per_epoch(),
            warmup_steps: 0,
        };
        Ok(Self {
            model,
            _varmap: varmap,
            opt,
            schedule,
            sampler,
            memory: (cfg.memory > 0).then(|| CrossBatchMemory::new(cfg.memory)),
            rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x7ea1),
            step: 0,
            loss: cfg.loss,
            device,
        })
    }

    /// One pass over the sampler's batches; the loss of each step.
    fn epoch(&mut self, data: &TrainingData<'_>) -> Result<Vec<f64>, FitError> {
        let mut losses = Vec::new();
        for batch in self.sampler.epoch() {
            let feats = data.batch_features(&batch, &mut self.rng);
            let x = Tensor::from_vec(feats, (batch.len(), data.dim()), &self.device)?;
            let emb = self.model.forward_t(&x, true)?;
            let subjects: Vec<u32> = batch.iter().map(|&i| data.subjects[i]).collect();
            let views: Vec<View> = batch.iter().map(|&i| data.views[i]).collect();
            let loss = self.batch_loss(&emb, &subjects, &views)?;
            self.opt.set_learning_rate(self.schedule.lr(self.step));
            self.opt.backward_step(&loss)?;
            if let Some(m) = self.memory.as_mut() {
                m.push(&emb.detach(), &subjects, &views)?;
            }
            losses.push(loss.to_scalar::<f32>()? as f64);
            self.step += 1;
        }
        Ok(losses)
    }

    fn batch_loss(
        &self,
        emb: &Tensor,
        subjects: &[u32],
        views: &[View],
    ) -> Result<Tensor, FitError> {
        Ok(match self.loss {
            LossChoice::Triplet {
                mining,
                margin,
                soft_margin,
            } => TripletLoss {
                margin,
                mining,
                soft_margin,
            }
            .forward_with_memory(emb, subjects, views, self.memory.as_ref())?,
            LossChoice::Contrastive { margin } => {
                ContrastiveLoss { margin }.forward(emb, subjects, views)?
            }
        })
    }

    /// The head as it stands, exported (eval mode, standardisation folded in).
    fn head(&self, data: &TrainingData<'_>) -> Result<ProjectionHead, FitError> {
        Ok(data.exported(self.model.to_projection_head()?))
    }
}
