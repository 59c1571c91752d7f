//! What fine-tuning trains: a backbone's features, optionally centred, then a linear head and L2
//! normalisation; with the cosine-margin loss also one proxy per training subject.
//!
//! Why centre: a random (or keypoint-trained) backbone maps every image close to one
//! common direction (random DINOv2: cosine about 0.999 between different hands), so after
//! the head and L2 normalisation all embeddings nearly coincide, the loss sees almost no
//! difference between subjects and its gradients carry almost none: a random `dinov2-tiny`
//! trained whole stayed at the uninformative loss (`ln(subjects)` plus the margin term).
//! Subtracting the mean feature removes that common part, as re-identification's
//! "BNNeck" does: training subtracts the batch's mean (gradients pass through it) and
//! keeps a running mean, which evaluation subtracts, so an embedding never depends on the
//! other images of its batch.
//!
//! Why standardise as well (BNNeck's full batch norm, without its affine part): centred
//! features of a random backbone are small and of very unequal spread, so the head's
//! updates barely move the embeddings and a few wide features decide them. Dividing each
//! feature by its spread (the batch's in training, a running variance in evaluation) gives
//! every feature unit scale. On synthetic hands it let the whole network end above a head
//! trained the same way on its frozen features, though not above a head on raw features
//! (docs/fine-tuning.md).

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{Device, Result, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::cosface::CosFaceLoss;
use super::trained_net::TrainedNet;

const HEAD_WEIGHT: &str = "head/weight";
const HEAD_BIAS: &str = "head/bias";
const PROXIES: &str = "loss/proxies";
const FEATURE_MEAN: &str = "neck/feature_mean";
const FEATURE_VAR: &str = "neck/feature_var";
/// Added to the variance before its square root, as batch norm does.
const VAR_EPSILON: f64 = 1e-5;
/// Weight of each training batch's mean in the running mean (batch norm's default).
const MEAN_MOMENTUM: f64 = 0.1;

pub struct FineTuneModel {
    pub net: TrainedNet,
    head_weight: Var,
    head_bias: Var,
    /// `[subjects, embedding_dim]` when the loss has proxies.
    proxies: Option<Var>,
    /// `Some` when features are centred.
    centring: Option<RunningMean>,
    /// `Some` when centred features are also divided by their spread: the running mean of
    /// their squared deviation.
    scaling: Option<RunningMean>,
}

/// What happens to the backbone's features before the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureNeck {
    Raw,
    /// The mean feature subtracted.
    Centred,
    /// Centred, then each feature divided by its standard deviation.
    Standardised,
}

/// An exponentially weighted mean `[1, width]` over the training batches so far (of the
/// features, or of their squared deviations); `None` until the first batch.
#[derive(Default)]
struct RunningMean(Mutex<Option<Tensor>>);

impl RunningMean {
    fn get(&self) -> Option<Tensor> {
        self.lock().clone()
    }

    fn set(&self, mean: Option<Tensor>) {
        *self.lock() = mean;
    }

    /// Moves the mean toward a batch's (detached) value.
    fn update(&self, batch_mean: Tensor) -> Result<()> {
        let mut mean = self.lock();
        *mean = Some(match mean.take() {
            Some(m) => ((m * (1.0 - MEAN_MOMENTUM))? + (batch_mean * MEAN_MOMENTUM)?)?,
            None => batch_mean,
        });
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Tensor>> {
        // A poisoned lock only means a panic elsewhere mid-update; the value is whole.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FineTuneModel {
    /// `net` with a seeded random head `[embedding_dim, feature width]`, and seeded random
    /// proxies for `proxy_subjects` subjects when that is given; `neck` says how features
    /// are normalised before the head.
    pub fn new(
        net: TrainedNet,
        embedding_dim: usize,
        proxy_subjects: Option<usize>,
        neck: FeatureNeck,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let width = net.feature_dim();
        // Glorot-scaled normal, drawn from our own seeded generator so runs repeat.
        let normal = Normal::new(0.0f32, (2.0 / (width + embedding_dim) as f32).sqrt())
            .expect("a positive deviation");
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4ead);
        let w: Vec<f32> = (0..embedding_dim * width)
            .map(|_| normal.sample(&mut rng))
            .collect();
        Ok(Self {
            net,
            head_weight: Var::from_tensor(&Tensor::from_vec(w, (embedding_dim, width), device)?)?,
            head_bias: Var::from_tensor(&Tensor::zeros(
                embedding_dim,
                candle_core::DType::F32,
                device,
            )?)?,
            proxies: proxy_subjects
                .map(|n| CosFaceLoss::proxies(n, embedding_dim, seed, device))
                .transpose()?,
            centring: (neck != FeatureNeck::Raw).then(RunningMean::default),
            scaling: (neck == FeatureNeck::Standardised).then(RunningMean::default),
        })
    }

    pub fn proxies(&self) -> Option<&Tensor> {
        self.proxies.as_ref().map(Var::as_tensor)
    }

    pub fn device(&self) -> &Device {
        self.head_weight.as_tensor().device()
    }

    /// Unit-length embeddings `[N, E]` of `x [N, 3, S, S]` in [0, 1], normalised by the
    /// running statistics: each image's embedding is independent of the rest of the batch.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut f = self.net.features(x, false)?;
        if let Some(mean) = self.centring.as_ref().and_then(RunningMean::get) {
            f = f.broadcast_sub(&mean)?;
        }
        if let Some(var) = self.scaling.as_ref().and_then(RunningMean::get) {
            f = f.broadcast_div(&(var + VAR_EPSILON)?.sqrt()?)?;
        }
        self.embed(&f)
    }

    /// Embeddings for a training step: normalised by the batch's own statistics, which
    /// then move the running ones.
    pub fn forward_train(&self, x: &Tensor) -> Result<Tensor> {
        let f = self.net.features(x, true)?;
        let Some(centring) = &self.centring else {
            return self.embed(&f);
        };
        let batch_mean = f.mean_keepdim(0)?;
        centring.update(batch_mean.detach())?;
        let centred = f.broadcast_sub(&batch_mean)?;
        let Some(scaling) = &self.scaling else {
            return self.embed(&centred);
        };
        let batch_var = centred.sqr()?.mean_keepdim(0)?;
        scaling.update(batch_var.detach())?;
        self.embed(&centred.broadcast_div(&(batch_var + VAR_EPSILON)?.sqrt()?)?)
    }

    /// The running statistics this model keeps, by checkpoint name.
    fn statistics(&self) -> impl Iterator<Item = (&'static str, &RunningMean)> {
        [(FEATURE_MEAN, &self.centring), (FEATURE_VAR, &self.scaling)]
            .into_iter()
            .filter_map(|(name, stat)| Some((name, stat.as_ref()?)))
    }

    fn embed(&self, features: &Tensor) -> Result<Tensor> {
        let e = features
            .matmul(&self.head_weight.as_tensor().t()?)?
            .broadcast_add(self.head_bias.as_tensor())?;
        let norm = e
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::INFINITY)?;
        e.broadcast_div(&norm)
    }

    /// `(name, variable, learning-rate factor)` for the optimiser: the head (and proxies)
    /// at the full rate, the backbone at `backbone_factor`.
    pub fn params(&self, backbone_factor: f64) -> Vec<(String, Var, f64)> {
        let mut out: Vec<(String, Var, f64)> = self
            .net
            .vars()
            .into_iter()
            .map(|(n, v)| (format!("net/{n}"), v, backbone_factor))
            .collect();
        out.push((HEAD_WEIGHT.into(), self.head_weight.clone(), 1.0));
        out.push((HEAD_BIAS.into(), self.head_bias.clone(), 1.0));
        if let Some(p) = &self.proxies {
            out.push((PROXIES.into(), p.clone(), 1.0));
        }
        out
    }

    /// The variables a checkpoint keeps: every trained one, and the backbone's running
    /// statistics (state, but not trained).
    fn state_vars(&self) -> impl Iterator<Item = (String, Var)> {
        let trained = self.params(1.0).into_iter().map(|(n, v, _)| (n, v));
        let statistics = self.net.statistics().into_iter();
        trained.chain(statistics.map(|(n, v)| (format!("net/{n}"), v)))
    }

    /// Every trained value by parameter name, the backbone's running statistics, and the
    /// neck's once there are some.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut state: HashMap<String, Tensor> = self
            .state_vars()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        for (name, stat) in self.statistics() {
            if let Some(value) = stat.get() {
                state.insert(name.into(), value);
            }
        }
        state
    }

    pub fn load_state(&self, state: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.state_vars() {
            let v = state
                .get(&name)
                .ok_or_else(|| candle_core::Error::Msg(format!("checkpoint lacks `{name}`")))?;
            var.set(v)?;
        }
        for (name, stat) in self.statistics() {
            stat.set(state.get(name).cloned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finetune::graph_net::TrainLayers;
    use crate::finetune::trained_net::{BackboneSource, NetOptions};
    use handmatch_export::random_init::{self, Arch};

    fn model(dir: &std::path::Path, neck: FeatureNeck) -> FineTuneModel {
        random_init::write(Arch::Dinov2Tiny, 5, &dir.join("dinov2")).unwrap();
        let source = BackboneSource::Checkpoint {
            dir: dir.join("dinov2"),
            image_size: 28,
        };
        let options = NetOptions {
            layers: TrainLayers::All,
            freeze_batchnorm: true,
            autocast: Default::default(),
        };
        let net = TrainedNet::open(&source, options, &Device::Cpu).unwrap();
        FineTuneModel::new(net, 8, None, neck, 1, &Device::Cpu).unwrap()
    }

    fn images(n: usize, seed: u64) -> Tensor {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let data: Vec<f32> = (0..n * 3 * 28 * 28)
            .map(|_| rand::Rng::random::<f32>(&mut rng))
            .collect();
        Tensor::from_vec(data, (n, 3, 28, 28), &Device::Cpu).unwrap()
    }

    /// Per-feature biased variance over the batch, as training computes it.
    fn batch_variance(features: &Tensor) -> Tensor {
        let mean = features.mean_keepdim(0).unwrap();
        let centred = features.broadcast_sub(&mean).unwrap();
        centred.sqr().unwrap().mean_keepdim(0).unwrap()
    }

    /// The running statistic after `first` then `second`, with the momentum.
    fn blended(first: Tensor, second: Tensor) -> Tensor {
        ((first * 0.9).unwrap() + (second * 0.1).unwrap()).unwrap()
    }

    /// Evaluation: each image's embedding alone equals its row of `batch`'s.
    fn assert_each_image_alone_equals_its_row(m: &FineTuneModel, batch: &Tensor) -> Tensor {
        let all = m.forward(batch).unwrap();
        for i in 0..batch.dim(0).unwrap() {
            let alone = m.forward(&batch.narrow(0, i, 1).unwrap()).unwrap();
            let row = all.narrow(0, i, 1).unwrap();
            assert!(largest_difference(&alone, &row) <= 1e-5, "image {i}");
        }
        all
    }

    fn largest_difference(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).and_then(|d| d.abs()).and_then(|d| d.max_all());
        d.and_then(|d| d.to_scalar()).unwrap()
    }

    #[test]
    fn centred_embeddings_use_the_running_mean_and_not_the_rest_of_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(dir.path(), FeatureNeck::Centred);
        let batch = images(6, 1);
        let trained = m.forward_train(&batch).unwrap();
        // After one batch the running mean is that batch's mean feature.
        let mean = m.state()[FEATURE_MEAN].clone();
        let expected = m
            .net
            .features(&batch, false)
            .unwrap()
            .mean_keepdim(0)
            .unwrap();
        assert!(largest_difference(&mean, &expected) <= 1e-6);
        let evaluated = m.forward(&batch).unwrap();
        assert!(largest_difference(&trained, &evaluated) <= 1e-5);
        // A second batch moves the running mean by the momentum.
        let other = images(4, 2);
        m.forward_train(&other).unwrap();
        let moved = m.state()[FEATURE_MEAN].clone();
        let other_mean = m
            .net
            .features(&other, false)
            .unwrap()
            .mean_keepdim(0)
            .unwrap();
        assert!(largest_difference(&moved, &blended(expected, other_mean)) <= 1e-6);
        let all = assert_each_image_alone_equals_its_row(&m, &batch);
        // Centring matters: the raw model embeds the same images elsewhere.
        let raw = model(dir.path(), FeatureNeck::Raw);
        assert!(!raw.state().contains_key(FEATURE_MEAN));
        assert!(largest_difference(&raw.forward(&batch).unwrap(), &all) > 1e-2);
    }

    #[test]
    fn standardised_embeddings_divide_by_the_running_spread_and_not_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(dir.path(), FeatureNeck::Standardised);
        let batch = images(6, 1);
        let trained = m.forward_train(&batch).unwrap();
        // After one batch the running variance is that batch's (biased) variance.
        let expected = batch_variance(&m.net.features(&batch, false).unwrap());
        let var = m.state()[FEATURE_VAR].clone();
        assert!(largest_difference(&var, &expected) <= 1e-6);
        // With the running statistics equal to the batch's, training and evaluation agree.
        let all = m.forward(&batch).unwrap();
        assert!(largest_difference(&trained, &all) <= 1e-4);
        // A second batch moves the variance by the momentum; evaluation stays per image.
        let other = images(4, 2);
        m.forward_train(&other).unwrap();
        let moved = m.state()[FEATURE_VAR].clone();
        let other_var = batch_variance(&m.net.features(&other, false).unwrap());
        assert!(largest_difference(&moved, &blended(expected, other_var)) <= 1e-6);
        let all = assert_each_image_alone_equals_its_row(&m, &batch);
        // Dividing by the spread matters: centring alone embeds the images elsewhere.
        let centred_only = model(dir.path(), FeatureNeck::Centred);
        centred_only.forward_train(&batch).unwrap();
        centred_only.forward_train(&other).unwrap();
        assert!(!centred_only.state().contains_key(FEATURE_VAR));
        let elsewhere = centred_only.forward(&batch).unwrap();
        assert!(largest_difference(&elsewhere, &all) > 1e-2);
    }
}
