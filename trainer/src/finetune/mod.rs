//! Fine-tuning a backbone end to end: the ONNX graph of the hand landmark network
//! translated into a trainable candle network (or DINOv2 or ResNet built from its checkpoint),
//! trained with the triplet (or a cosine-margin softmax) loss on aligned crops, and its weights written back into a copy
//! of the graph (or of the checkpoint).

pub mod adamw;
pub mod autocast;
pub mod checkpoint;
pub mod checkpoint_weights;
pub mod config;
pub mod conv;
pub mod cosface;
pub mod crops;
pub mod dinov2_net;
pub mod graph_net;
pub mod initializers;
pub mod model;
pub mod resnet_net;
pub mod train;
pub mod trained_net;

pub use autocast::Autocast;
pub use config::{ComputeDevice, FineTuneConfig, FineTuneLoss};
pub use crops::AlignedCrops;
pub use graph_net::{GraphNet, TrainLayers};
pub use train::{fine_tune, FineTuneJob, FineTuneOutcome};
pub use trained_net::{BackboneSource, NetOptions, TrainedNet};
