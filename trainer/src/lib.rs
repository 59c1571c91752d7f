//! handmatch-train: builds the ONNX artefacts the service runs, and (later) trains and
//! evaluates their projection heads.

pub mod artefact;
pub mod atomic_file;
pub mod backbone;
pub mod backbone_session;
pub mod checkpoint;
pub mod error;
pub mod evaluate;
pub mod extract;
pub mod fit;
pub mod head;
pub mod onnx;
pub mod pipeline;
pub mod random_init;
pub mod tensor;
pub mod training;
