//! Heads trained by gradient descent: PK batches of cached (augmented) features, triplet or
//! contrastive loss, AdamW with a cosine schedule, validation every few epochs.

use std::collections::BTreeSet;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use handmatch_core::metrics::{evaluate_protocols, ProtocolResults};
use handmatch_export::head::Head;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::config::{FitConfig, HeadKind, LossChoice};
use super::data::{embed_cached, TrainingData};
use super::error::FitError;
use super::lda_head::lda_fit;
use super::outcome::{EpochRecord, FitOutcome};
use crate::extract::FeatureCache;
use crate::fit::linear_model::LinearModel;
use crate::fit::{
    ContrastiveLoss, CosineSchedule, CrossBatchMemory, HeadConfig, HeadModel, PkSampler,
    TripletLoss, View,
};

/// Trains the head with gradient steps, validating every few epochs; the best by
/// validation mean rank is kept, or with `stop_at` the head of that epoch.
pub fn fit_gradient(
    cache: &FeatureCache,
    train: &BTreeSet<String>,
    val: &BTreeSet<String>,
    cfg: &FitConfig,
    mut on_epoch: impl FnMut(&EpochRecord),
) -> Result<FitOutcome, FitError> {
    let mut data = TrainingData::new(cache, train, val, cfg)?;
    let mut trainer = HeadTrainer::new(&mut data, cfg)?;
    let mut history = Vec::new();
    let mut best: Option<(usize, ProtocolResults, Head)> = None;
    let last = cfg.stop_at.map_or(cfg.epochs, |e| e.clamp(1, cfg.epochs));
    for epoch in 1..=last {
        let started = Instant::now();
        let losses = trainer.epoch(&data)?;
        let validation = if epoch % cfg.validate_every.max(1) == 0 || epoch == last {
            let head = trainer.head(&data)?;
            let results = evaluate_protocols(&embed_cached(&head, cache, &data.val_rows))?;
            let keep = match cfg.stop_at {
                Some(_) => epoch == last,
                None => best.as_ref().is_none_or(|(_, b, _)| better(&results, b)),
            };
            if keep {
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
    Ok(FitOutcome::new(
        head,
        best_epoch,
        best_validation,
        history,
        cache,
        &data.val_rows,
    ))
}

/// Lower mean rank wins; ties go to the higher R@1.
fn better(a: &ProtocolResults, b: &ProtocolResults) -> bool {
    let (ra, rb) = (&a.template_to_template, &b.template_to_template);
    let r1 =
        |m: &handmatch_core::metrics::RetrievalMetrics| m.recall_at(1).map_or(0.0, |r| r.value);
    ra.mean_rank < rb.mean_rank || (ra.mean_rank == rb.mean_rank && r1(ra) > r1(rb))
}

/// The model being trained.
enum Trainable {
    /// The MLP; the `VarMap` owns its variables (the optimiser holds them too).
    Mlp(Box<HeadModel>, VarMap),
    Linear(LinearModel),
}

impl Trainable {
    /// A fresh MLP, or for `linear` the LDA projection of the training rows (whose
    /// standardisation `data` then uses).
    fn new(
        data: &mut TrainingData<'_>,
        cfg: &FitConfig,
        device: &Device,
    ) -> Result<Self, FitError> {
        if cfg.head == HeadKind::Linear {
            let lda = lda_fit(data, cfg)?;
            data.use_standardisation(lda.mean.clone(), lda.std.clone());
            return Ok(Trainable::Linear(LinearModel::from_head(
                &lda.projection,
                device,
            )?));
        }
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
            device,
        )?;
        Ok(Trainable::Mlp(Box::new(model), varmap))
    }

    fn vars(&self) -> Vec<candle_core::Var> {
        match self {
            Trainable::Mlp(_, varmap) => HeadModel::trainable_vars(varmap),
            Trainable::Linear(m) => m.trainable_vars(),
        }
    }

    fn forward_train(&self, x: &Tensor) -> Result<Tensor, FitError> {
        Ok(match self {
            Trainable::Mlp(m, _) => m.forward_t(x, true)?,
            Trainable::Linear(m) => m.forward(x)?,
        })
    }

    /// The loss's regulariser beyond AdamW's weight decay: for `linear`, the pull back
    /// toward the LDA start.
    fn penalty(&self, cfg: &FitConfig) -> Result<Option<Tensor>, FitError> {
        match self {
            Trainable::Linear(m) if cfg.init_penalty > 0.0 => {
                Ok(Some((m.distance_from_start()? * cfg.init_penalty)?))
            }
            _ => Ok(None),
        }
    }

    /// The head on standardised features (eval mode).
    fn to_head(&self) -> Result<Head, FitError> {
        Ok(match self {
            Trainable::Mlp(m, _) => m.to_mlp_head()?.into(),
            Trainable::Linear(m) => m.to_linear_head()?.into(),
        })
    }
}

/// The head being trained, its optimiser and schedule, and where training stands.
struct HeadTrainer {
    model: Trainable,
    opt: AdamW,
    schedule: CosineSchedule,
    sampler: PkSampler,
    memory: Option<CrossBatchMemory>,
    rng: ChaCha8Rng,
    step: usize,
    cfg: FitConfig,
    device: Device,
}

impl HeadTrainer {
    fn new(data: &mut TrainingData<'_>, cfg: &FitConfig) -> Result<Self, FitError> {
        let device = Device::Cpu;
        let sampler = PkSampler::new(&data.subjects, &data.views, cfg.p, cfg.k, cfg.seed)?;
        let model = Trainable::new(data, cfg, &device)?;
        let opt = AdamW::new(
            model.vars(),
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
            opt,
            schedule,
            sampler,
            memory: (cfg.memory > 0).then(|| CrossBatchMemory::new(cfg.memory)),
            rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x7ea1),
            step: 0,
            cfg: cfg.clone(),
            device,
        })
    }

    /// One pass over the sampler's batches; the loss of each step.
    fn epoch(&mut self, data: &TrainingData<'_>) -> Result<Vec<f64>, FitError> {
        let mut losses = Vec::new();
        for batch in self.sampler.epoch() {
            let feats = data.batch_features(&batch, &mut self.rng);
            let x = Tensor::from_vec(feats, (batch.len(), data.dim()), &self.device)?;
            let emb = self.model.forward_train(&x)?;
            let subjects: Vec<u32> = batch.iter().map(|&i| data.subjects[i]).collect();
            let views: Vec<View> = batch.iter().map(|&i| data.views[i]).collect();
            let mut loss = self.batch_loss(&emb, &subjects, &views)?;
            if let Some(p) = self.model.penalty(&self.cfg)? {
                loss = (loss + p)?;
            }
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
        Ok(match self.cfg.loss {
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
    fn head(&self, data: &TrainingData<'_>) -> Result<Head, FitError> {
        Ok(data.exported(self.model.to_head()?))
    }
}
