//! Writing ONNX graphs: the generated protobuf types, a small graph builder and the
//! model file writer.

pub mod conv_int8;
pub mod graph;
pub mod half_precision;
pub mod model;
pub mod optimised;
pub mod quantize;

#[allow(clippy::all, missing_docs)]
pub mod proto;

pub use graph::{Dim, GraphBuilder};
pub use model::{ModelFile, OPSET};
