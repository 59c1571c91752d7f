//! Static int8 quantisation of a convolutional network (the hand landmark network), written
//! by us rather than by ONNX Runtime's Python tooling, with the two corrections that keep
//! the hand on it (docs/performance.md, "int8 and the hand landmark network"):
//!
//! 1. **bounded equalisation** (`equalise`): across each Conv → Clip(0, 6) → Conv pair, a
//!    channel whose calibrated range is far below the tensor's largest is enlarged (and
//!    the reader's weights shrunk to match), so one u8 scale per tensor no longer wipes it
//!    out; the Clip stays as it is, so ONNX Runtime still fuses it;
//! 2. **bias correction** (`bias`): rounding the weights shifts each output channel by
//!    (W_q − W)·E[x] on average; that is subtracted from the bias;
//! 3. **QDQ** (`qdq`): u8 activations with calibrated per-tensor ranges, s8 weights per
//!    output channel, int32 biases, as `QuantizeLinear` → `DequantizeLinear` pairs around
//!    every convolution and addition, which ONNX Runtime fuses into `QLinearConv` and
//!    `QLinearAdd`.
//!
//! Each step reads statistics gathered by running the graph the previous step left on the
//! calibration inputs (`calibrate`); the rewrites themselves run nothing. `network` chains
//! them; the trainer's `quantize-hand` calibrates on aligned hand crops.

pub mod bias;
pub mod calibrate;
pub mod equalise;
mod graph_index;
pub mod network;
pub mod qdq;
pub mod stats;
pub mod weights;

pub use network::{quantise_network, ConvInt8Options, ConvInt8Report};
pub use stats::TensorStats;
