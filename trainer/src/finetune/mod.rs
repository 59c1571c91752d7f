//! Fine-tuning a backbone end to end: the ONNX graph of the hand landmark network
//! translated into a trainable candle network, trained with the triplet loss on aligned
//! crops, and its weights written back into a copy of the graph.

pub mod adamw;
pub mod checkpoint;
pub mod config;
pub mod conv;
pub mod crops;
pub mod graph_net;
pub mod initializers;
pub mod model;
pub mod train;

pub use config::FineTuneConfig;
pub use crops::AlignedCrops;
pub use graph_net::{GraphNet, TrainLayers};
pub use train::{fine_tune, FineTuneJob, FineTuneOutcome};
