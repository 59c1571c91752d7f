//! Fine-tuning a backbone end to end: the ONNX graph of the hand landmark network
//! translated into a trainable candle network, trained with the triplet loss on aligned
//! crops, and its weights written back into a copy of the graph.

pub mod adamw;
pub mod conv;
pub mod graph_net;
pub mod initializers;

pub use graph_net::{GraphNet, TrainLayers};
