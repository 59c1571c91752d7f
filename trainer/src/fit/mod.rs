//! The candle side of training the projection head on cached backbone features: the
//! trainable model, the metric-learning losses, the batch sampler and the learning-rate
//! schedule. Everything here works in F32 (training) and F64 (gradient checks).

pub mod head_model;
pub mod linear_model;
pub mod losses;
pub mod sampler;
pub mod schedule;
pub mod view;

pub use head_model::{l2_normalize_rows, HeadConfig, HeadModel};
pub use losses::{ContrastiveLoss, CrossBatchMemory, Mining, TripletLoss};
pub use sampler::PkSampler;
pub use schedule::CosineSchedule;
pub use view::View;
