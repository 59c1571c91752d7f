//! Backbones: Hugging Face checkpoints turned into ONNX subgraphs that map normalised
//! `pixel_values [N, 3, S, S]` to features `[N, D]`, exactly as transformers'
//! `pooler_output` does.

pub mod dinov2;
pub mod features;
pub mod hand;
pub mod interpolate;
pub mod layers;
pub mod resnet;
pub mod source;
pub mod spec;

pub use features::Features;
pub use hand::HandModel;
pub use source::{build, build_any, BackboneRef, Built};
pub use spec::{BackboneSpec, OpenBackbone};
