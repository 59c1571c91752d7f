//! handmatch-core: what the server, the trainer and the evaluation client share. The
//! artefact contract (metadata), image decoding and the evaluation transform, hand
//! alignment, ONNX Runtime sessions and the batching queue, datasets, metrics and plots.
//! No gRPC, no database, no training framework.

pub mod args;
pub mod atomic_file;
pub mod dataset;
pub mod embed;
pub mod hand;
pub mod hand_image;
pub mod metrics;
pub mod onnx_proto;
pub mod progress;
pub mod report;
pub mod resize;
pub mod template;
pub mod training_summary;
