//! The settings of one fine-tuning run (`fit --fine-tune`, recipe keys of the same names).

use super::autocast::Autocast;
use super::graph_net::TrainLayers;
use super::model::FeatureNeck;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FineTuneConfig {
    pub epochs: usize,
    /// Subjects per batch.
    pub p: usize,
    /// Images per subject and view in a batch.
    pub k: usize,
    /// The head's peak learning rate.
    pub lr: f64,
    /// The backbone's rate as a fraction of the head's.
    pub backbone_lr_factor: f64,
    pub lr_min: f64,
    pub warmup_epochs: usize,
    pub weight_decay: f64,
    /// What the network is trained to minimise.
    #[serde(default)]
    pub loss: FineTuneLoss,
    /// The triplet margin, or the cosine margin of `cosface`.
    pub margin: f64,
    /// The softmax's inverse temperature (`cosface` only).
    #[serde(default = "default_cosface_scale")]
    pub cosface_scale: f64,
    pub embedding_dim: usize,
    /// Subtract the mean feature before the head (see `finetune::model`); off unless asked
    /// for: it gained nothing on hands-dev (docs/fine-tuning.md).
    #[serde(default)]
    pub centre_features: bool,
    /// Centre and divide each feature by its spread before the head (implies centring;
    /// see `finetune::model`).
    #[serde(default)]
    pub standardise_features: bool,
    #[serde(with = "train_layers_text")]
    pub train_layers: TrainLayers,
    /// Batches whose gradients are summed before one optimiser step.
    pub accumulate: usize,
    /// Stop after this many epochs without a better validation mAP (0: never).
    pub patience: usize,
    /// Keep normalisation statistics fixed. Off, a ResNet's batch norms in the layers that
    /// train normalise each training batch by its own statistics and update their running
    /// ones (see `finetune::resnet_net`). The hand landmark network has its batch norms
    /// folded into the convolutions and DINOv2 has none, so for them it changes nothing.
    pub freeze_batchnorm: bool,
    pub seed: u64,
    /// Where the network trains (`fit --device`; CUDA needs a build with the `cuda` feature).
    #[serde(with = "device_text")]
    pub device: ComputeDevice,
    /// The forward pass's arithmetic (DINOv2 only; see `finetune::dinov2_net`).
    #[serde(default)]
    pub autocast: Autocast,
}

/// The fine-tuning objective.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum FineTuneLoss {
    /// Batch-hard cross-view triplets (the study's loss).
    #[default]
    Triplet,
    /// Large-margin cosine softmax over the training subjects, one proxy each
    /// (see `finetune::cosface` for when it is the better choice).
    #[value(name = "cosface")]
    CosFace,
}

fn default_cosface_scale() -> f64 {
    16.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeDevice {
    #[default]
    Cpu,
    /// The CUDA device of this ordinal.
    Cuda(usize),
}

impl ComputeDevice {
    /// Where the runtime's `--device` puts training too.
    pub fn for_runtime(device: handmatch_core::embed::runtime::Device) -> Self {
        use handmatch_core::embed::runtime::Device;
        match device {
            Device::Cpu => ComputeDevice::Cpu,
            Device::Cuda => ComputeDevice::Cuda(0),
            Device::Auto if candle_core::utils::cuda_is_available() => ComputeDevice::Cuda(0),
            Device::Auto => ComputeDevice::Cpu,
        }
    }

    /// The candle device; a build without the `cuda` feature says so here.
    pub fn open(self) -> anyhow::Result<candle_core::Device> {
        match self {
            ComputeDevice::Cpu => Ok(candle_core::Device::Cpu),
            ComputeDevice::Cuda(n) => candle_core::Device::new_cuda(n).map_err(|e| {
                anyhow::anyhow!(
                    "--device cuda:{n}: {e} (build handmatch-train with `--features cuda`)"
                )
            }),
        }
    }
}

impl std::fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComputeDevice::Cpu => f.write_str("cpu"),
            ComputeDevice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl std::str::FromStr for ComputeDevice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(ComputeDevice::Cpu),
            "cuda" => Ok(ComputeDevice::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(ComputeDevice::Cuda)
                .ok_or_else(|| format!("`{s}`: expected cpu, cuda or cuda:N")),
        }
    }
}

impl FineTuneConfig {
    /// How features are normalised before the head.
    pub fn feature_neck(&self) -> FeatureNeck {
        if self.standardise_features {
            FeatureNeck::Standardised
        } else if self.centre_features {
            FeatureNeck::Centred
        } else {
            FeatureNeck::Raw
        }
    }
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            p: 8,
            k: 2,
            lr: 1e-3,
            backbone_lr_factor: 0.1,
            lr_min: 1e-6,
            warmup_epochs: 1,
            weight_decay: 1e-4,
            loss: FineTuneLoss::Triplet,
            margin: 0.3,
            cosface_scale: default_cosface_scale(),
            embedding_dim: 128,
            centre_features: false,
            standardise_features: false,
            train_layers: TrainLayers::Last(6),
            accumulate: 1,
            patience: 0,
            freeze_batchnorm: true,
            seed: 0,
            device: ComputeDevice::Cpu,
            autocast: Autocast::Off,
        }
    }
}

mod train_layers_text {
    use super::TrainLayers;

    pub fn serialize<S: serde::Serializer>(v: &TrainLayers, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&match v {
            TrainLayers::All => "all".to_string(),
            TrainLayers::Last(n) => format!("last-{n}"),
        })
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<TrainLayers, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

mod device_text {
    use super::ComputeDevice;

    pub fn serialize<S: serde::Serializer>(v: &ComputeDevice, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ComputeDevice, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print_back() {
        for text in ["cpu", "cuda:0", "cuda:3"] {
            let d: ComputeDevice = text.parse().unwrap();
            assert_eq!(d.to_string(), text);
        }
        assert_eq!("cuda".parse::<ComputeDevice>(), Ok(ComputeDevice::Cuda(0)));
        assert!("gpu".parse::<ComputeDevice>().unwrap_err().contains("gpu"));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_refused_with_the_way_to_get_it() {
        let e = ComputeDevice::Cuda(0).open().unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
}
