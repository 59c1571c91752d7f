//! ONNX's own schema, generated in `handmatch-core` (which reads graphs too).

pub use handmatch_core::onnx_proto::*;
