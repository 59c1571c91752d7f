//! Mixed precision for fine-tuning's forward pass (`--autocast`): which dtype the products
//! run in. Its own module because both the run's settings and the networks read it.

/// Mixed precision for the forward pass: weights, gradients and updates stay f32.
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
pub enum Autocast {
    /// Everything in f32.
    #[default]
    Off,
    /// Matrix products and element-wise work in bf16; LayerNorm, softmax and the features
    /// in f32. For GPUs: on CPU it is no faster than f32 (docs/fine-tuning.md).
    Bf16,
}

impl Autocast {
    pub fn dtype(self) -> candle_core::DType {
        match self {
            Autocast::Off => candle_core::DType::F32,
            Autocast::Bf16 => candle_core::DType::BF16,
        }
    }
}
