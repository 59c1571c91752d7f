//! handmatch-export: builds the ONNX artefacts the service runs. Hugging Face DINOv2 and
//! ResNet checkpoints and the imported hand landmark network become backbone graphs; a
//! projection head (safetensors) and L2 normalisation complete the artefact.

pub mod artefact;
pub mod backbone;
pub mod checkpoint;
pub mod error;
pub mod head;
pub mod onnx;
pub mod precision;
pub mod quality_gate;
pub mod random_init;
pub mod tensor;
