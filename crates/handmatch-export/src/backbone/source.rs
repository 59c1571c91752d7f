//! The backbone an artefact is built on (a checkpoint, the hand network, or both), and
//! building it into a graph.

use super::features::Features;
use super::hand::{self, HandModel};
use super::tta::Tta;
use super::{dinov2, resnet};
use crate::checkpoint::Checkpoint;
use crate::error::{ExportError, Result};
use crate::onnx::graph::Attr;
use crate::onnx::GraphBuilder;

#[derive(Clone, Copy)]
pub enum BackboneRef<'a> {
    Checkpoint(&'a Checkpoint),
    Hand(&'a HandModel),
    Combined(&'a Checkpoint, &'a HandModel),
}

impl<'a> From<&'a Checkpoint> for BackboneRef<'a> {
    fn from(c: &'a Checkpoint) -> Self {
        BackboneRef::Checkpoint(c)
    }
}

impl<'a> From<&'a HandModel> for BackboneRef<'a> {
    fn from(h: &'a HandModel) -> Self {
        BackboneRef::Hand(h)
    }
}

/// A backbone and the test-time views its features are averaged over.
#[derive(Clone, Copy)]
pub struct Backbone<'a> {
    pub source: BackboneRef<'a>,
    pub tta: &'a Tta,
}

static NO_TTA: Tta = Tta::none();

impl<'a> From<BackboneRef<'a>> for Backbone<'a> {
    fn from(source: BackboneRef<'a>) -> Self {
        Self {
            source,
            tta: &NO_TTA,
        }
    }
}

impl<'a> From<&'a Checkpoint> for Backbone<'a> {
    fn from(c: &'a Checkpoint) -> Self {
        BackboneRef::Checkpoint(c).into()
    }
}

impl<'a> From<&'a HandModel> for Backbone<'a> {
    fn from(h: &'a HandModel) -> Self {
        BackboneRef::Hand(h).into()
    }
}

/// A built backbone: its features and, with the hand model, what alignment needs.
pub struct Built {
    pub features: Features,
    /// `(presence, landmarks)` of the hand model on the input crop.
    pub hand: Option<(String, String)>,
}

/// Adds the backbone to `g`, reading ImageNet-normalised `pixels` at `image_size`. With
/// test-time views, the features are the mean over the views and a separate copy of the
/// hand network finds the hand in the crop alone (alignment's cost stays one view).
pub fn build_any(
    g: &mut GraphBuilder,
    backbone: Backbone<'_>,
    pixels: &str,
    image_size: usize,
) -> Result<Built> {
    if backbone.tta.is_empty() {
        return build_views(g, backbone.source, pixels, image_size);
    }
    let views = backbone.tta.expand(g, pixels, image_size);
    let all = build_views(g, backbone.source, &views, image_size)?;
    let value = backbone
        .tta
        .average(g, &all.features.value, all.features.dim);
    let hand = match backbone.source {
        BackboneRef::Checkpoint(_) => None,
        BackboneRef::Hand(h) | BackboneRef::Combined(_, h) => {
            Some(hand::detection(g, h, pixels, image_size, "hand_detect")?)
        }
    };
    Ok(Built {
        features: Features {
            value,
            dim: all.features.dim,
            description: format!("{}+tta({})", all.features.description, backbone.tta),
            layout: all.features.layout,
        },
        hand,
    })
}

fn build_views(
    g: &mut GraphBuilder,
    source: BackboneRef<'_>,
    pixels: &str,
    image_size: usize,
) -> Result<Built> {
    Ok(match source {
        BackboneRef::Checkpoint(c) => Built {
            features: build(g, c, pixels, image_size)?,
            hand: None,
        },
        BackboneRef::Hand(h) => {
            let b = hand::build(g, h, pixels, image_size, "hand")?;
            Built {
                features: b.features,
                hand: Some((b.presence, b.landmarks)),
            }
        }
        BackboneRef::Combined(c, h) => {
            let first = build(g, c, pixels, image_size)?;
            let b = hand::build(g, h, pixels, image_size, "hand")?;
            let value = g.op(
                "Concat",
                &[&first.value, &b.features.value],
                vec![("axis", Attr::Int(1))],
            );
            Built {
                features: Features {
                    value,
                    dim: first.dim + b.features.dim,
                    description: format!("{}+{}", first.description, b.features.description),
                    layout: first.layout.into_iter().chain(b.features.layout).collect(),
                },
                hand: Some((b.presence, b.landmarks)),
            }
        }
    })
}

/// Adds the checkpoint's backbone to `g`, reading `pixels` at `image_size`.
pub fn build(
    g: &mut GraphBuilder,
    ckpt: &Checkpoint,
    pixels: &str,
    image_size: usize,
) -> Result<Features> {
    match ckpt.model_type()? {
        "dinov2" => dinov2::build(g, ckpt, pixels, image_size),
        "resnet" => resnet::build(g, ckpt, pixels, image_size),
        other => Err(ExportError::UnsupportedModelType {
            path: ckpt.config_path().to_path_buf(),
            found: other.to_string(),
        }),
    }
}
