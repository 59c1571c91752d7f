//! The trainable projection head: Linear → BatchNorm1d → ReLU → Dropout → Linear →
//! L2-normalise, the same function as [`MlpHead`] (which the exporter consumes),
//! with its variables in a candle `VarMap` under the names of [`handmatch_export::head::names`], so
//! `VarMap::save` writes a file `MlpHead::load` reads (when the dtype is F32).

use std::sync::Mutex;

use candle_core::{bail, DType, Device, Module, ModuleT, Result, Tensor, Var};
use candle_nn::{BatchNorm, BatchNormConfig, Linear, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Uniform};

use handmatch_export::head::{names, MlpHead, BN_EPS};
use handmatch_export::tensor::Tensor as PlainTensor;

/// PyTorch's BatchNorm1d default: `running = (1 - momentum) * running + momentum * batch`.
pub const BN_MOMENTUM: f64 = 0.1;

/// Rows shorter than this are divided by it instead, as `torch.nn.functional.normalize`.
const NORM_FLOOR: f64 = 1e-12;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadConfig {
    pub input_dim: usize,
    pub hidden_dim: usize,
    pub embedding_dim: usize,
    /// Probability of zeroing a hidden unit in train mode; must be in `[0, 1)`.
    pub dropout: f64,
}

pub struct HeadModel {
    config: HeadConfig,
    fc1: Linear,
    bn: BatchNorm,
    fc2: Linear,
    /// candle's own dropout draws from an RNG we cannot seed reliably; training runs must
    /// be reproducible, so the masks come from here. A Mutex because `forward_t` takes
    /// `&self` (as `ModuleT` does).
    dropout_rng: Mutex<ChaCha8Rng>,
}

impl HeadModel {
    /// Writes PyTorch-style initial values into `varmap` (Linear weight and bias
    /// `U(-1/sqrt(in), 1/sqrt(in))`, BatchNorm weight 1, bias 0, running mean 0, running
    /// var 1), drawn from `seed`, then builds the model on them. Variables already in
    /// `varmap` under these names are overwritten in place.
    pub fn init(
        varmap: &VarMap,
        config: HeadConfig,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        validate(&config)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (fc1_weight, fc1_bias) =
            pytorch_linear_init(&mut rng, config.hidden_dim, config.input_dim);
        let (fc2_weight, fc2_bias) =
            pytorch_linear_init(&mut rng, config.embedding_dim, config.hidden_dim);
        let h = config.hidden_dim;
        let initial: [(&str, Vec<f64>, Vec<usize>); 8] = [
            (names::FC1_WEIGHT, fc1_weight, vec![h, config.input_dim]),
            (names::FC1_BIAS, fc1_bias, vec![h]),
            (names::BN_WEIGHT, vec![1.0; h], vec![h]),
            (names::BN_BIAS, vec![0.0; h], vec![h]),
            (names::BN_MEAN, vec![0.0; h], vec![h]),
            (names::BN_VAR, vec![1.0; h], vec![h]),
            (names::FC2_WEIGHT, fc2_weight, vec![config.embedding_dim, h]),
            (names::FC2_BIAS, fc2_bias, vec![config.embedding_dim]),
        ];
        {
            let mut vars = varmap.data().lock().unwrap();
            for (name, values, shape) in initial {
                let value = Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?;
                match vars.get(name) {
                    Some(var) => var.set(&value)?,
                    None => {
                        vars.insert(name.to_string(), Var::from_tensor(&value)?);
                    }
                }
            }
        }
        // The dropout stream must not repeat the init stream, hence a derived seed.
        let vb = VarBuilder::from_varmap(varmap, dtype, device);
        Self::new(vb, config, seed ^ 0xd50f_0e11)
    }

    /// Builds the model on whatever `vb` holds, e.g. a `VarMap` about to be loaded from a
    /// checkpoint. Variables it lacks are created with candle's initialisers, which are
    /// neither PyTorch's nor seeded: use [`HeadModel::init`] for a fresh model.
    /// `dropout_seed` seeds the dropout masks.
    pub fn new(vb: VarBuilder, config: HeadConfig, dropout_seed: u64) -> Result<Self> {
        validate(&config)?;
        let fc1 = candle_nn::linear(config.input_dim, config.hidden_dim, vb.pp("fc1"))?;
        let bn_config = BatchNormConfig {
            eps: f64::from(BN_EPS),
            remove_mean: true,
            affine: true,
            momentum: BN_MOMENTUM,
        };
        let bn = candle_nn::batch_norm(config.hidden_dim, bn_config, vb.pp("bn"))?;
        let fc2 = candle_nn::linear(config.hidden_dim, config.embedding_dim, vb.pp("fc2"))?;
        Ok(Self {
            config,
            fc1,
            bn,
            fc2,
            dropout_rng: Mutex::new(ChaCha8Rng::seed_from_u64(dropout_seed)),
        })
    }

    pub fn config(&self) -> HeadConfig {
        self.config
    }

    /// The variables an optimiser should update: everything but the BatchNorm running
    /// statistics, which live in the same `VarMap` (so they are saved) but are updated by
    /// train-mode forwards, not by gradients (AdamW's weight decay would otherwise shrink
    /// them).
    pub fn trainable_vars(varmap: &VarMap) -> Vec<Var> {
        let vars = varmap.data().lock().unwrap();
        let mut named: Vec<(&String, &Var)> = vars
            .iter()
            .filter(|(name, _)| name.as_str() != names::BN_MEAN && name.as_str() != names::BN_VAR)
            .collect();
        // HashMap order varies between runs; optimiser state order should not.
        named.sort_by(|a, b| a.0.cmp(b.0));
        named.into_iter().map(|(_, var)| var.clone()).collect()
    }

    /// `x [N, D]` → L2-normalised `[N, E]`. Train mode normalises with the batch
    /// statistics, updates the running ones and applies dropout; eval mode uses the running
    /// statistics and no dropout.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.fc1.forward(x)?;
        let h = self.bn.forward_t(&h, train)?;
        let h = h.relu()?;
        let h = if train { self.dropout(&h)? } else { h };
        let e = self.fc2.forward(&h)?;
        l2_normalize_rows(&e)
    }

    fn dropout(&self, h: &Tensor) -> Result<Tensor> {
        let p = self.config.dropout;
        if p == 0.0 {
            return Ok(h.clone());
        }
        // Inverted dropout, as PyTorch: survivors are scaled so eval needs no rescaling.
        let keep_scale = 1.0 / (1.0 - p);
        let mask: Vec<f64> = {
            let mut rng = self.dropout_rng.lock().unwrap();
            (0..h.elem_count())
                .map(|_| {
                    if rng.random::<f64>() < p {
                        0.0
                    } else {
                        keep_scale
                    }
                })
                .collect()
        };
        let mask = Tensor::from_vec(mask, h.shape(), h.device())?.to_dtype(h.dtype())?;
        h.mul(&mask)
    }

    /// The current weights and running statistics as the exporter's plain f32 struct.
    pub fn to_mlp_head(&self) -> Result<MlpHead> {
        let Some((bn_weight, bn_bias)) = self.bn.weight_and_bias() else {
            bail!("the head's BatchNorm was built without an affine transform");
        };
        let (Some(fc1_bias), Some(fc2_bias)) = (self.fc1.bias(), self.fc2.bias()) else {
            bail!("the head's Linear layers were built without biases");
        };
        Ok(MlpHead {
            fc1_weight: to_plain(self.fc1.weight())?,
            fc1_bias: to_plain(fc1_bias)?,
            bn_weight: to_plain(bn_weight)?,
            bn_bias: to_plain(bn_bias)?,
            bn_mean: to_plain(self.bn.running_mean())?,
            bn_var: to_plain(self.bn.running_var())?,
            fc2_weight: to_plain(self.fc2.weight())?,
            fc2_bias: to_plain(fc2_bias)?,
        })
    }
}

impl ModuleT for HeadModel {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        HeadModel::forward_t(self, x, train)
    }
}

/// `x / max(‖x‖₂, 1e-12)` per row of `x [N, E]`, as `torch.nn.functional.normalize` and
/// the exported graph.
pub fn l2_normalize_rows(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(NORM_FLOOR)?;
    x.broadcast_div(&norm)
}

fn validate(config: &HeadConfig) -> Result<()> {
    if !(0.0..1.0).contains(&config.dropout) {
        bail!("dropout must be in [0, 1), is {}", config.dropout);
    }
    if config.input_dim == 0 || config.hidden_dim == 0 || config.embedding_dim == 0 {
        bail!("head dimensions must be positive: {config:?}");
    }
    Ok(())
}

/// PyTorch's `nn.Linear` default (kaiming_uniform with a=sqrt(5) reduces to this bound for
/// the weight; the bias uses the same bound): `([out * in], [out])`.
fn pytorch_linear_init(rng: &mut ChaCha8Rng, out: usize, inp: usize) -> (Vec<f64>, Vec<f64>) {
    let bound = 1.0 / (inp as f64).sqrt();
    let uniform = Uniform::new_inclusive(-bound, bound).expect("bound is finite and positive");
    let weight = (0..out * inp).map(|_| uniform.sample(rng)).collect();
    let bias = (0..out).map(|_| uniform.sample(rng)).collect();
    (weight, bias)
}

fn to_plain(t: &Tensor) -> Result<PlainTensor> {
    let data = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(PlainTensor::new(t.dims().to_vec(), data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> HeadConfig {
        HeadConfig {
            input_dim: 12,
            hidden_dim: 16,
            embedding_dim: 6,
            dropout: 0.3,
        }
    }

    fn random_features(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..rows * cols)
            .map(|_| rng.random_range(-2.0f32..2.0) + 0.5)
            .collect()
    }

    #[test]
    fn exported_head_matches_eval_forward_after_training_forwards() {
        let device = Device::Cpu;
        let varmap = VarMap::new();
        let model = HeadModel::init(&varmap, config(), 7, DType::F32, &device).unwrap();
        for step in 0..4 {
            let x =
                Tensor::from_vec(random_features(10, 12, 100 + step), (10, 12), &device).unwrap();
            model.forward_t(&x, true).unwrap();
        }
        let head = model.to_mlp_head().unwrap();
        // The running statistics must have moved, or the comparison proves little.
        assert!(head.bn_mean.data.iter().any(|m| m.abs() > 1e-3));
        assert!(head.bn_var.data.iter().any(|v| (v - 1.0).abs() > 1e-3));

        let features = random_features(5, 12, 999);
        let x = Tensor::from_vec(features.clone(), (5, 12), &device).unwrap();
        let candle_out = model
            .forward_t(&x, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let reference = head.forward(&features);
        assert_eq!(candle_out.len(), reference.len());
        for (a, b) in candle_out.iter().zip(&reference) {
            assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn init_is_deterministic_for_a_seed_and_follows_pytorch_bounds() {
        let device = Device::Cpu;
        let build = |seed| {
            let varmap = VarMap::new();
            HeadModel::init(&varmap, config(), seed, DType::F64, &device)
                .unwrap()
                .to_mlp_head()
                .unwrap()
        };
        let (a, b, c) = (build(3), build(3), build(4));
        assert_eq!(a, b);
        assert_ne!(a.fc1_weight, c.fc1_weight);
        let bound = 1.0 / (12f32).sqrt();
        assert!(a.fc1_weight.data.iter().all(|w| w.abs() <= bound));
        assert!(a.bn_weight.data.iter().all(|w| *w == 1.0));
        assert!(a.bn_var.data.iter().all(|v| *v == 1.0));
    }

    #[test]
    fn train_mode_dropout_is_seeded_and_eval_mode_is_deterministic() {
        let device = Device::Cpu;
        let x = Tensor::from_vec(random_features(6, 12, 1), (6, 12), &device).unwrap();
        let run = || {
            let varmap = VarMap::new();
            let model = HeadModel::init(&varmap, config(), 11, DType::F64, &device).unwrap();
            let x = x.to_dtype(DType::F64).unwrap();
            let train = model.forward_t(&x, true).unwrap().to_vec2::<f64>().unwrap();
            let eval = model
                .forward_t(&x, false)
                .unwrap()
                .to_vec2::<f64>()
                .unwrap();
            (train, eval)
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn trainable_vars_exclude_running_statistics() {
        let varmap = VarMap::new();
        HeadModel::init(&varmap, config(), 0, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(varmap.all_vars().len(), 8);
        assert_eq!(HeadModel::trainable_vars(&varmap).len(), 6);
    }
}
