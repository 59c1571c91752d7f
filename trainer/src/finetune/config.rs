//! The settings of one fine-tuning run (`fit --fine-tune`, recipe keys of the same names).

use super::graph_net::TrainLayers;

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
    pub margin: f64,
    pub embedding_dim: usize,
    #[serde(with = "train_layers_text")]
    pub train_layers: TrainLayers,
    /// Batches whose gradients are summed before one optimiser step.
    pub accumulate: usize,
    /// Stop after this many epochs without a better validation mAP (0: never).
    pub patience: usize,
    /// Keep normalisation statistics fixed. The hand landmark network has its batch norms
    /// folded into the convolutions, so for it this is always the case; recorded so that
    /// a run states it.
    pub freeze_batchnorm: bool,
    pub seed: u64,
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
            margin: 0.3,
            embedding_dim: 128,
            train_layers: TrainLayers::Last(6),
            accumulate: 1,
            patience: 0,
            freeze_batchnorm: true,
            seed: 0,
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
