//! What fine-tuning trains: a backbone's features, then a linear head and L2
//! normalisation; with the cosine-margin loss also one proxy per training subject.

use std::collections::HashMap;

use candle_core::{Device, Result, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::cosface::CosFaceLoss;
use super::trained_net::TrainedNet;

const HEAD_WEIGHT: &str = "head/weight";
const HEAD_BIAS: &str = "head/bias";
const PROXIES: &str = "loss/proxies";

pub struct FineTuneModel {
    pub net: TrainedNet,
    head_weight: Var,
    head_bias: Var,
    /// `[subjects, embedding_dim]` when the loss has proxies.
    proxies: Option<Var>,
}

impl FineTuneModel {
    /// `net` with a seeded random head `[embedding_dim, feature width]`, and seeded random
    /// proxies for `proxy_subjects` subjects when that is given.
    pub fn new(
        net: TrainedNet,
        embedding_dim: usize,
        proxy_subjects: Option<usize>,
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
        })
    }

    pub fn proxies(&self) -> Option<&Tensor> {
        self.proxies.as_ref().map(Var::as_tensor)
    }

    pub fn device(&self) -> &Device {
        self.head_weight.as_tensor().device()
    }

    /// Unit-length embeddings `[N, E]` of `x [N, 3, S, S]` in [0, 1].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let e = self
            .net
            .features(x)?
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

    /// Every trained value by parameter name.
    pub fn state(&self) -> HashMap<String, Tensor> {
        self.params(1.0)
            .into_iter()
            .map(|(n, v, _)| (n, v.as_tensor().clone()))
            .collect()
    }

    pub fn load_state(&self, state: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var, _) in self.params(1.0) {
            let v = state
                .get(&name)
                .ok_or_else(|| candle_core::Error::Msg(format!("checkpoint lacks `{name}`")))?;
            var.set(v)?;
        }
        Ok(())
    }
}
