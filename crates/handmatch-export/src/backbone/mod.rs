//! Backbones: Hugging Face checkpoints turned into ONNX subgraphs that map normalised
//! `pixel_values [N, 3, S, S]` to features `[N, D]`, exactly as transformers'
//! `pooler_output` does.

pub mod crop_points;
pub mod dinov2;
pub mod features;
pub mod hand;
pub mod hand_features;
pub mod hand_int8;
pub mod interpolate;
pub mod landmark_samples;
pub mod layers;
pub mod resnet;
pub mod silhouette;
pub mod source;
pub mod spec;
pub mod tta;

pub use features::Features;
pub use hand::HandModel;
pub use hand_features::{HandFeatureGroup, HandFeatureSet};
pub use source::{build, build_any, Backbone, BackboneRef, Built};
pub use spec::{BackboneSpec, OpenBackbone};
pub use tta::Tta;
