//! What a training run is: the reference study's settings by default, each one a flag.

use crate::fit::Mining;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LossChoice {
    Triplet {
        #[serde(with = "mining_name")]
        mining: Mining,
        margin: f64,
        soft_margin: bool,
    },
    Contrastive {
        margin: f64,
    },
}

mod mining_name {
    use crate::fit::Mining;
    pub fn serialize<S: serde::Serializer>(m: &Mining, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match m {
            Mining::BatchHard => "batch_hard",
            Mining::SemiHard => "semi_hard",
            Mining::All => "all",
        })
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Mining, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        match s.as_str() {
            "batch_hard" => Ok(Mining::BatchHard),
            "semi_hard" => Ok(Mining::SemiHard),
            "all" => Ok(Mining::All),
            other => Err(serde::de::Error::custom(format!(
                "unknown mining `{other}`"
            ))),
        }
    }
}

/// Which head is fitted.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    /// Linear → BatchNorm → ReLU → Dropout → Linear, trained with the loss (the reference).
    #[default]
    Mlp,
    /// A closed-form linear discriminant projection (no gradient steps).
    Lda,
    /// One Linear, initialised from the LDA projection, then trained with the loss.
    Linear,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FitConfig {
    #[serde(default)]
    pub head: HeadKind,
    /// LDA's within-class shrinkage in [0, 1]; `None` estimates it (Ledoit–Wolf).
    #[serde(default)]
    pub shrinkage: Option<f64>,
    /// LDA: weight of the scatter of each subject's dorsal-minus-palmar mean difference,
    /// added to the within-subject covariance, so that directions along which the two views
    /// of a hand differ are suppressed even under strong shrinkage. 0: plain LDA.
    #[serde(default)]
    pub cross_view: f64,
    /// `linear` heads: weight of `‖W − W_lda‖²` in the loss, which keeps the trained head
    /// near its closed-form start.
    #[serde(default)]
    pub init_penalty: f64,
    pub loss: LossChoice,
    pub hidden_dim: usize,
    pub embedding_dim: usize,
    pub dropout: f64,
    /// Subjects per batch.
    pub p: usize,
    /// Images per view per subject in a batch.
    pub k: usize,
    pub epochs: usize,
    /// Stop after this epoch (the learning-rate schedule still spans `epochs`) and keep that
    /// head, instead of the epoch that validated best: what model selection by
    /// cross-validation chose.
    #[serde(default)]
    pub stop_at: Option<usize>,
    pub lr: f64,
    pub lr_min: f64,
    pub weight_decay: f64,
    pub validate_every: usize,
    /// Cross-batch memory size in embeddings; 0 turns it off.
    pub memory: usize,
    pub seed: u64,
    /// Train on features standardised per dimension (training-set mean and std), folded
    /// into the head at the end. Matters when feature groups differ in scale (hand
    /// geometry next to a CNN's pooled activations).
    #[serde(default)]
    pub standardize: bool,
    /// Several heads of this kind on feature parts, `PARTS[:WEIGHT];…` (see
    /// `training::ensemble`); `None`: one head on all features.
    #[serde(default)]
    pub ensemble: Option<String>,
}

impl FitConfig {
    /// The reference study: triplet loss, margin 0.5, batch-hard mining, 8 subjects with
    /// one image per view, AdamW 3e-4 / 1e-4, cosine to 1e-6, 30 epochs, validation every 5.
    pub fn reference_triplet() -> Self {
        Self {
            head: HeadKind::Mlp,
            shrinkage: None,
            cross_view: 0.0,
            init_penalty: 0.0,
            loss: LossChoice::Triplet {
                mining: Mining::BatchHard,
                margin: 0.5,
                soft_margin: false,
            },
            hidden_dim: 512,
            embedding_dim: 256,
            dropout: 0.1,
            p: 8,
            k: 1,
            epochs: 30,
            stop_at: None,
            lr: 3e-4,
            lr_min: 1e-6,
            weight_decay: 1e-4,
            validate_every: 5,
            memory: 0,
            seed: 0,
            standardize: false,
            ensemble: None,
        }
    }

    /// The baseline: contrastive pairs, margin 2.0, 128-d embeddings.
    pub fn reference_contrastive() -> Self {
        Self {
            loss: LossChoice::Contrastive { margin: 2.0 },
            embedding_dim: 128,
            ..Self::reference_triplet()
        }
    }
}
